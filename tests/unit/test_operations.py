"""Operations (spaces/operations/): /healthz, /readyz, /metrics, request ids and JSON logs, on
the real Postgres and Redis (the engine is the fake backend; tests/e2e/test_operations.py runs
the same on the real stack)."""
from __future__ import annotations

import io
import json
import logging
import uuid
from unittest import mock

import pytest
import redis
from django.db import OperationalError
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.helpers import assert_error

pytestmark = pytest.mark.usefixtures("hub")
TOKEN = "unit-metrics-token-" + "x" * 20


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    # The broker of these tests: the unit Redis db, under a prefix of this test's own.
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                                                "global_keyprefix": f"demohub:{settings.DEMOHUB_INSTANCE}:"}
    return settings


def scrape(client) -> dict[str, dict]:
    """name -> {tuple(sorted labels): value} for every sample of GET /metrics."""
    r = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert r.status_code == 200, r.content
    assert r["Content-Type"].startswith("text/plain; version=")
    found: dict[str, dict] = {}
    for family in text_string_to_metric_families(r.content.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


# ----------------------------------------------------------------------------- /healthz
REDIS_DOWN = mock.patch("redis.connection.AbstractConnection.connect",
                        side_effect=redis.ConnectionError("Error 111 connecting"))
DB_DOWN = mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("gone"))


def test_healthz_says_up_even_when_the_database_and_redis_are_down(client):
    with DB_DOWN, REDIS_DOWN:
        r = client.get("/healthz", HTTP_AUTHORIZATION="Bearer dh_not-a-token")  # not even read
    assert r.status_code == 200 and r.json() == {"status": "up"}
    assert r["Cache-Control"] == "no-store"


def test_readyz_names_redis_when_the_broker_is_down(client):
    with REDIS_DOWN:
        r = client.get("/readyz")
    assert r.status_code == 503 and r["Retry-After"] == "5"
    body = r.json()
    assert body["failing"] == ["broker"] and "(Redis)" in body["message"]


# ----------------------------------------------------------------------------- /metrics
def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert_error(client.get("/metrics"), 404, "not_found")


def test_metrics_need_the_metrics_token_whoever_asks(client, api, people, make_user, metrics_on):
    """No persona's session or API token opens /metrics: only METRICS_TOKEN does."""
    staff = make_user("root", is_staff=True, is_superuser=True)
    for who in [*people.values(), staff]:
        for c in (api(who), client):
            if who is not None and c is client:
                client.force_login(who)
            r = c.get("/metrics")
            assert_error(r, 401, "not_authenticated")
            assert r["WWW-Authenticate"] == 'Bearer realm="metrics"'
            assert b"demohub_" not in r.content
    client.logout()
    assert_error(client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong"), 401)
    assert_error(client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}"), 401)
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_parse_and_count_requests_builds_and_queue_depths(client, api, people, make_space, upload, repo,
                                                                  hub, metrics_on):
    owner = people["owner"]
    before = scrape(client)
    depth_key = (("queue", "builds"),)
    assert before["demohub_queue_depth"][depth_key] == 0

    space = make_space(owner, "counted", sdk="gradio")
    r = upload(api(owner), space, repo.gradio)
    assert r.status_code == 202, r.content
    space.refresh_from_db()
    assert space.latest_revision.status == "succeeded"  # built by the fake backend, eagerly
    hub.backend.fail_build = "no such package: numpyy"
    assert upload(api(owner), space, dict(repo.gradio, **{"app.py": "print(2)\n"})).status_code == 202

    # A task waiting in the builds queue (the Redis list Celery keeps it in, with its prefix).
    broker = redis.Redis.from_url(metrics_on.CELERY_BROKER_URL)
    key = f"demohub:{metrics_on.DEMOHUB_INSTANCE}:builds"
    broker.lpush(key, "{}")
    try:
        after = scrape(client)
    finally:
        broker.delete(key)

    def moved(name, **labels):
        lk = tuple(sorted(labels.items()))
        return after.get(name, {}).get(lk, 0) - before.get(name, {}).get(lk, 0)

    assert moved("demohub_builds_total", sdk="gradio", outcome="succeeded") == 1
    assert moved("demohub_builds_total", sdk="gradio", outcome="failed") == 1
    assert moved("demohub_build_duration_seconds_count", sdk="gradio") == 2
    assert moved("demohub_celery_tasks_total", task="spaces.tasks.build_revision_task", outcome="succeeded") == 2
    assert after["demohub_queue_depth"][depth_key] == 1
    route = "api/spaces/<str:owner>/<str:name>/revisions"
    assert moved("demohub_http_requests_total", route=route, method="POST", status="2xx") == 2
    assert moved("demohub_http_request_duration_seconds_count", route=route, method="POST") == 2
    # Spaces by status, every status present (zeros included): the one space failed its newest build
    # while its first revision is what would run (the fake engine starts nothing that answers).
    statuses = after["demohub_spaces"]
    assert len(statuses) >= 10 and sum(statuses.values()) >= 1
    assert (("tier", "frozen"),) in after["demohub_spaces_sleeping"]
    # Labels are patterns, never paths: no owner or space name appears anywhere.
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert owner.username not in text and "counted" not in text


def test_metrics_answer_503_when_the_database_or_the_broker_is_down(client, metrics_on):
    with DB_DOWN:
        r = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    body = assert_error(r, 503, "database_unavailable")
    assert r["Retry-After"] == "5" and "gone" not in body["detail"]
    with REDIS_DOWN:
        r = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert_error(r, 503, "broker_unavailable")
    assert r["Retry-After"] == "5"


# ----------------------------------------------------------------------------- request ids and logs
def test_the_request_id_is_taken_or_made_and_sent_back(client):
    given = "proxy-" + uuid.uuid4().hex
    assert client.get("/healthz", HTTP_X_REQUEST_ID=given)["X-Request-ID"] == given
    made = client.get("/healthz", HTTP_X_REQUEST_ID='bad id "quoted"')["X-Request-ID"]
    assert made != 'bad id "quoted"' and len(made) == 32
    assert client.get("/healthz")["X-Request-ID"] != made


def test_the_request_id_bound_when_a_build_is_sent_is_in_the_build_log(people, make_space, push, repo):
    """Eager here: the build runs in the sender's context. Through a real broker and worker (the
    message header): tests/e2e/test_operations.py."""
    import structlog

    owner = people["owner"]
    space = make_space(owner, "traced", sdk="gradio")
    rid = "trace-" + uuid.uuid4().hex
    with structlog.contextvars.bound_contextvars(request_id=rid):
        rev = push(space, repo.gradio, owner)
    first, second = rev.build_log.splitlines()[:2]
    assert first.startswith(f"==> commit {rev.commit}")  # the build names its commit first (issue 10)
    assert second == f"==> revision 1 of {owner.username}/traced (gradio), request {rid}"


def test_celery_messages_carry_the_request_id():
    import structlog

    from spaces.operations import celery_hooks

    headers: dict = {}
    with structlog.contextvars.bound_contextvars(request_id="abcdef0123456789"):
        celery_hooks.carry_request_id(headers=headers)
    assert headers == {"demohub_request_id": "abcdef0123456789"}
    celery_hooks.carry_request_id(headers=(none := {}))
    assert none == {}  # nothing bound (beat): the worker makes one

    class Request:  # what Celery's worker hands a task: custom headers as attributes
        demohub_request_id = "abcdef0123456789"
        is_eager = False

    assert celery_hooks.request_id_of(mock.Mock(request=Request())) == "abcdef0123456789"


def test_json_log_lines_carry_the_request_id():
    import structlog

    from spaces.operations.logconfig import logging_config

    config = logging_config("json", "INFO")
    formatter = config["formatters"]["structured"]["()"](
        **{k: v for k, v in config["formatters"]["structured"].items() if k != "()"})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.operations.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with structlog.contextvars.bound_contextvars(request_id="rid-0123456789"):
            logger.warning("space %s built", "alice/demo")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["event"] == "space alice/demo built" and line["request_id"] == "rid-0123456789"
    assert line["level"] == "warning" and line["logger"] == "tests.operations.json" and "timestamp" in line
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config("xml", "INFO")


# ----------------------------------------------------------------------------- after a restore
def test_restore_rebuilds_the_revision_each_space_ran_under_its_own_number(people, make_space, push, repo, hub,
                                                                           run_on_commit):
    from spaces.lifecycle import services
    from spaces.models import Revision
    from spaces.operations import services as operations
    from tests.unit.helpers import fresh

    owner = people["owner"]
    built = make_space(owner, "built", sdk="gradio")
    push(built, repo.gradio, owner)
    static = make_space(owner, "site")
    push(static, repo.static, owner)
    paused = make_space(owner, "paused", sdk="gradio")
    push(paused, repo.gradio, owner)
    services.space_pause(space=fresh(paused))
    empty = make_space(owner, "empty", sdk="gradio")
    builds_before = len(hub.backend.builds)
    revisions_before = Revision.objects.count()

    with run_on_commit():
        outcome = operations.spaces_rebuild_after_restore()

    assert outcome.rebuilding == [f"{owner.username}/built r1"]
    assert outcome.static == [f"{owner.username}/site"]
    assert outcome.left == {f"{owner.username}/paused": "PAUSED",
                            f"{owner.username}/empty": "NO_APP_FILE, no revision that built"}
    assert len(hub.backend.builds) == builds_before + 1  # built again, eagerly
    assert Revision.objects.count() == revisions_before  # under the same number: no new revision
    rev = fresh(built).latest_revision
    assert (rev.number, rev.status) == (1, "succeeded") and rev.image
    assert fresh(empty).status == "NO_APP_FILE"


def test_the_openapi_schema_lists_the_probes_and_metrics(client):
    r = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    paths = json.loads(r.content)["paths"]
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert set(paths["/metrics"]["get"]["responses"]) == {"200", "401", "404", "503"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]


def test_a_wake_that_brought_the_space_back_is_counted(people, make_space, metrics_on, client):
    from spaces.models import Space
    from spaces.operations import celery_hooks

    space = make_space(people["owner"], "sleeper", sdk="gradio")
    before = scrape(client)
    for status, task_name in (("RUNNING", "spaces.tasks.wake_space_task"),
                              ("APP_STARTING", "spaces.tasks.wake_space_task"),  # handed on to a start
                              ("RUNNING", "spaces.tasks.wake_start_space_task")):
        Space.objects.filter(pk=space.pk).update(status=status)
        task = mock.Mock(request=mock.Mock(demohub_request_id=None, headers=None, is_eager=True))
        task.name = task_name
        task_id = uuid.uuid4().hex
        celery_hooks.task_started(task_id=task_id, task=task)
        celery_hooks.task_ended(task_id=task_id, task=task, args=[space.pk], kwargs={}, state="SUCCESS")
    after = scrape(client)
    for kind in ("unfreeze", "start"):
        key = (("kind", kind),)
        assert after["demohub_wakes_total"][key] - before.get("demohub_wakes_total", {}).get(key, 0) == 1
        assert after["demohub_wake_duration_seconds_count"][key] >= 1
