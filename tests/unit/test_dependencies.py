"""Issue 9, item 2: a lost Postgres or Redis connection answers 503 with Retry-After and the
API's {detail, code} body (a styled "try again" page for browsers), never 500; a change saved
while the broker is down answers 202 and reconciliation sends its task again.

The database failure is raised where a query would fail (a selector); the broker failure is
real: Celery, no longer eager, publishing to a Redis port nothing listens on.
tests/e2e/test_dependency_restarts.py restarts real Postgres and Redis under load.
"""
from __future__ import annotations

import socket

import pytest
from django.db import OperationalError
from django.test import Client

from spaces.models import Space

pytestmark = pytest.mark.usefixtures("hub")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _db_down(*args, **kwargs):
    raise OperationalError("server closed the connection unexpectedly")


def test_api_answers_503_with_retry_after_when_the_database_is_lost(api, olive, monkeypatch, settings):
    from spaces.catalog import api as catalog_api

    settings.DEPENDENCY_RETRY_AFTER = 7
    monkeypatch.setattr(catalog_api, "space_filter", _db_down)
    resp = api(olive).get("/api/spaces")
    assert resp.status_code == 503 and resp["Retry-After"] == "7"
    body = resp.json()
    assert body["code"] == "unavailable" and "database" in body["detail"], body


def test_a_page_answers_the_styled_try_again_page(olive, monkeypatch, settings):
    from spaces.catalog import pages

    settings.DEPENDENCY_RETRY_AFTER = 5
    monkeypatch.setattr(pages, "space_list_context", _db_down)
    client = Client(raise_request_exception=False)
    resp = client.get("/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 503 and resp["Retry-After"] == "5"
    html = resp.content.decode()
    assert "Try again in a moment" in html and "/static/hub.css" in html and "Nothing you saved was lost" in html


def test_other_errors_stay_500(olive, monkeypatch):
    from spaces.catalog import pages

    def bug(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(pages, "space_list_context", bug)
    resp = Client(raise_request_exception=False).get("/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 500


@pytest.fixture
def broker_down(settings):
    """Celery as in production (not eager), its broker a port nothing listens on."""
    from hub.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url, app.conf.task_publish_retry_policy)
    app.conf.task_always_eager = False
    app.conf.broker_url = f"redis://127.0.0.1:{_closed_port()}/0"
    app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1}
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield app
    finally:
        app.conf.task_always_eager, app.conf.broker_url, app.conf.task_publish_retry_policy = saved
        app._pool = None
        app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_a_change_saved_while_the_broker_is_down_answers_202_and_reconcile_sends_it(
        api, olive, broker_down, settings):
    resp = api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json")
    assert resp.status_code == 202 and resp["X-Demohub-Deferred"] == "broker"
    body = resp.json()
    assert body["name"] == "demo" and "reconciliation" in body["deferred"]
    assert int(resp["Content-Length"]) == len(resp.content)   # the body grew: so did its length
    space = Space.objects.get(name="demo")
    resp = api(olive).patch("/api/spaces/olive/demo", {"visibility": "private"}, format="json")
    assert resp.status_code == 202 and resp.json()["visibility"] == "private"
    space.refresh_from_db()
    assert space.visibility == "private"                      # saved
    flag = settings.PROXY_ROUTES_DIR.parent / "state" / f"{space.label}.private"
    assert not flag.exists()                                  # its route task was not sent
    # The broker answers again: reconciliation converges the proxy on the database.
    broker_down.conf.task_always_eager = True
    from spaces.lifecycle.converge import reconcile

    reconcile()
    assert flag.exists()


def test_outside_a_request_a_failed_send_still_raises(broker_down):
    import kombu.exceptions

    from spaces.lifecycle.tasks import publish_route_task

    with pytest.raises(kombu.exceptions.OperationalError):
        publish_route_task.delay(1)
