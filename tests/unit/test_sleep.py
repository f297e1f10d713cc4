"""spaces.sleep: idleness from the proxy's activity, freezing, stopping, waking, the caps
(fake backend; the real engine and proxy are in tests/e2e/test_sleep.py)."""
from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from spaces.catalog.services import revision_create, space_update
from spaces.lifecycle import sleep
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.services import space_pause, space_restart
from spaces.records.models import Space

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


@pytest.fixture
def running(olive, make_space, repo, run_on_commit, app_server, hub):
    """running(name, sleep_after=600) -> a RUNNING gradio space on the fake backend."""

    def make(name="demo", sleep_after=600, idle=0):
        space = make_space(olive, name, sdk="gradio")
        port = app_server(space.slot_address("a"))
        app_server(space.slot_address("b"), port)
        files = dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", app_port=port)})
        with run_on_commit():
            revision_create(space=space, archive=io.BytesIO(repo.targz(files)), created_by=olive)
        Space.objects.filter(pk=space.pk).update(sleep_after=sleep_after,
                                                 last_active_at=timezone.now() - timedelta(seconds=idle))
        space = Space.objects.select_related("owner", "running_revision").get(pk=space.pk)
        assert space.status == "RUNNING", space.error
        return space

    return make


def fresh(space) -> Space:
    return Space.objects.select_related("owner", "running_revision").get(pk=space.pk)


def container(hub, space) -> dict | None:
    return hub.backend.containers.get(container_name(space, space.active_slot))


def route(hub, space) -> str:
    return (hub.settings.PROXY_ROUTES_DIR / f"{space.label}.conf").read_text()


# ------------------------------------------------------------------------------ activity
def test_activity_log_is_read_and_emptied(settings, hub):
    path = sleep.activity_file()
    path.write_text(f"1700000000.100 0.002 abc.{settings.SPACES_DOMAIN}:8080\n"
                    f"1700000005.000 4.900 abc.{settings.SPACES_DOMAIN}\n"
                    f"1700000001.000 0.001 other.{settings.SPACES_DOMAIN}\n"
                    "garbage line\n1700000009.0 0.1 evil.example\n")
    assert sleep.activity_collect() == {"abc": 1700000005.0, "other": 1700000001.0}
    assert path.read_text() == ""
    assert sleep.activity_collect() == {}


def test_open_connections_are_read_from_the_kernel_table(tmp_path):
    from runner import connections

    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:A000 0D00D50A:1EB4 01 00000000:00000000 00:00000000 00000000     0        0 111 1\n"
        "   1: 0100007F:A001 0D00D50A:1EB4 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n"
        "   2: 0100007F:A002 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1\n")
    found = connections.open_connections(tables=(table,))
    assert [peer for peer, _ in found] == ["10.213.0.13:7860", "127.0.0.1:8080"]   # TIME_WAIT left out
    assert connections.connections_to("10.213.0.13", 7860, tables=(table,)) == 1


def test_open_connections_count_for_a_bounded_time(settings, monkeypatch, hub):
    conns = {"demo": {"c1"}}
    monkeypatch.setattr(sleep, "open_connections", lambda upstreams: conns)
    settings.SPACE_OPEN_CONNECTION_CREDIT = 100
    t0 = 1_000_000.0
    assert sleep.connection_activity({}, t0) == {"demo": t0}              # open now: active now
    assert sleep.connection_activity({}, t0 + 50) == {"demo": t0 + 50}
    assert sleep.connection_activity({}, t0 + 500) == {"demo": t0 + 100}   # only heartbeats: credit ends
    conns["demo"] = {"c1", "c2"}                                           # a new request opens another
    assert sleep.connection_activity({}, t0 + 600) == {"demo": t0 + 600}


# ------------------------------------------------------------------------------ the two tiers
def test_idle_space_is_frozen_then_stopped(settings, running, hub):
    settings.SPACE_FREEZE_AFTER = 300
    space = running(sleep_after=900, idle=400)
    done = sleep.sleep_check()
    assert done["frozen"] == [space.pk]
    s = fresh(space)
    assert (s.status, s.sleep_mode) == ("SLEEPING", "frozen")
    assert container(hub, s)["paused"] is True                    # memory kept
    assert "auth_request /.demohub/wake;" in route(hub, s)         # requests now wake it first
    Space.objects.filter(pk=space.pk).update(last_active_at=timezone.now() - timedelta(seconds=1000))
    assert sleep.sleep_check()["stopped"] == [space.pk]
    s = fresh(space)
    assert (s.status, s.sleep_mode) == ("SLEEPING", "stopped")
    assert container(hub, s) is None                               # memory freed
    assert s.running_revision_id is not None                       # still what wakes up


def test_recent_activity_keeps_a_space_awake(settings, running, hub):
    settings.SPACE_FREEZE_AFTER = 300
    space = running(sleep_after=900, idle=400)
    sleep.activity_file().write_text(f"{time.time():.3f} 0.010 {space.label}.{settings.SPACES_DOMAIN}:8080\n")
    assert sleep.sleep_check() == {"frozen": [], "stopped": [], "capped": []}
    s = fresh(space)
    assert s.status == "RUNNING" and (timezone.now() - s.last_active_at).total_seconds() < 5


def test_never_sleeping_spaces_stay_up(settings, running):
    settings.SPACE_FREEZE_AFTER = 1
    space = running(sleep_after=-1, idle=10_000)
    sleep.sleep_check()
    assert fresh(space).status == "RUNNING"


def test_frozen_memory_is_capped_longest_idle_first(settings, running, hub):
    settings.SPACE_FREEZE_AFTER = 60
    older = running("older", sleep_after=10_000, idle=500)
    newer = running("newer", sleep_after=10_000, idle=100)
    settings.SPACE_FROZEN_MEMORY_LIMIT = "200m"                    # room for one fake 150 MiB app
    done = sleep.sleep_check()
    assert sorted(done["frozen"]) == sorted([older.pk, newer.pk])
    assert done["capped"] == [older.pk]
    assert (fresh(older).sleep_mode, fresh(newer).sleep_mode) == ("stopped", "frozen")


# ------------------------------------------------------------------------------ waking
def wake_call(settings, space, *, accept="application/json", uri="/config"):
    return Client().get("/internal/proxy/wake", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": space.host,
        "X-Demohub-Uri": uri, "Accept": accept})


def test_a_request_unfreezes_a_frozen_space(settings, running, hub):
    space = running(idle=10_000)
    assert sleep.space_sleep(space.pk, sleep.FROZEN)
    resp = wake_call(settings, space)                              # eager Celery: the wake runs inline
    assert resp.status_code == 204
    s = fresh(space)
    assert (s.status, s.sleep_mode) == ("RUNNING", "")
    assert container(hub, s)["paused"] is False
    assert "auth_request /.demohub/wake;" not in route(hub, s)
    assert (timezone.now() - s.last_active_at).total_seconds() < 5   # not frozen again at once


def test_a_request_starts_a_stopped_space_on_its_address(settings, running, hub):
    space = running(idle=10_000)
    assert sleep.space_sleep(space.pk, sleep.STOPPED)
    assert container(hub, fresh(space)) is None
    assert wake_call(settings, space).status_code == 204
    s = fresh(space)
    assert (s.status, s.sleep_mode, s.active_slot) == ("RUNNING", "", space.active_slot)
    assert container(hub, s)["running"] is True


def test_paused_spaces_cannot_be_woken(settings, running, hub, run_on_commit):
    space = running(idle=10_000)
    sleep.space_sleep(space.pk, sleep.FROZEN)
    with run_on_commit():
        space_pause(space=fresh(space))
    s = fresh(space)
    assert (s.status, s.sleep_mode) == ("PAUSED", "")
    assert wake_call(settings, s).status_code == 403                # -> the hub's "paused" page
    resp = Client().get("/internal/proxy/fallback", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": s.host,
        "X-Demohub-Uri": "/", "X-Demohub-Reason": "waking", "Accept": "text/html"})
    assert resp.status_code == 503 and b"paused by its owner" in resp.content
    assert fresh(space).status == "PAUSED"
    with run_on_commit():
        space_restart(space=fresh(space))                  # restart resumes it
    assert fresh(space).status == "RUNNING"


def test_private_sleeping_space_checks_access_before_waking(settings, running, hub, run_on_commit):
    space = running(idle=10_000)
    with run_on_commit():
        space_update(space=fresh(space), visibility="private")
    sleep.space_sleep(space.pk, sleep.FROZEN)
    assert wake_call(settings, fresh(space)).status_code == 401
    assert fresh(space).status == "SLEEPING"                        # a stranger does not wake it


def test_api_clients_get_503_with_status_past_the_hold(settings, running, hub, monkeypatch):
    space = running(idle=10_000)
    sleep.space_sleep(space.pk, sleep.STOPPED)
    settings.SPACE_WAKE_HOLD = 0.2
    monkeypatch.setattr(sleep, "wake_requested", lambda space_id: True)   # a wake that takes long
    assert wake_call(settings, space).status_code == 403           # -> @waking
    resp = Client().get("/internal/proxy/fallback", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": space.host,
        "X-Demohub-Uri": "/config", "X-Demohub-Reason": "waking", "Accept": "application/json"})
    assert resp.status_code == 503 and resp["Retry-After"]
    body = resp.json()
    assert body["code"] == "waking" and body["status"] == "SLEEPING" and "waking up" in body["detail"]
    html = Client().get("/internal/proxy/fallback", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": space.host,
        "X-Demohub-Uri": "/", "X-Demohub-Reason": "waking", "Accept": "text/html"})
    assert html.status_code == 503 and b"waking up" in html.content and b'http-equiv="refresh"' in html.content


def test_running_cap_puts_the_longest_idle_to_sleep_first(settings, running, hub):
    idle = running("idle", idle=5000)
    busy = running("busy", idle=0)
    sleeper = running("sleeper", idle=10_000)
    sleep.space_sleep(sleeper.pk, sleep.STOPPED)
    settings.SPACE_MAX_RUNNING = 2
    assert wake_call(settings, sleeper).status_code == 204
    assert fresh(sleeper).status == "RUNNING"
    assert (fresh(idle).status, fresh(idle).sleep_mode) == ("SLEEPING", "stopped")
    assert fresh(busy).status == "RUNNING"


def test_running_cap_with_every_space_active_answers_429(settings, running, hub):
    a = running("a", idle=0)
    b = running("b", idle=0)
    sleeper = running("sleeper", idle=10_000)
    sleep.space_sleep(sleeper.pk, sleep.STOPPED)
    settings.SPACE_MAX_RUNNING = 2
    assert wake_call(settings, sleeper).status_code == 403
    resp = Client().get("/internal/proxy/fallback", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": sleeper.host,
        "X-Demohub-Uri": "/config", "X-Demohub-Reason": "waking", "Accept": "application/json"})
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0 and resp.json()["code"] == "busy"
    assert {fresh(a).status, fresh(b).status, fresh(sleeper).status} == {"RUNNING", "SLEEPING"}


def test_sleep_after_validation(settings, running, api, olive):
    space = running()
    settings.SPACE_SLEEP_AFTER_MIN = 60
    client = api(olive)
    for bad in (0, 59, True, 1.5, "soon"):
        resp = client.patch(f"/api/spaces/olive/{space.name}", {"sleep_after": bad}, format="json")
        assert resp.status_code == 400 and resp.json()["detail"].startswith("sleep_after"), bad
    for good in (-1, 60, 86400):
        assert client.patch(f"/api/spaces/olive/{space.name}", {"sleep_after": good}, format="json").status_code == 200


def test_new_spaces_get_the_hub_default(settings, make_space, olive):
    settings.SPACE_SLEEP_AFTER_DEFAULT = 1234
    assert make_space(olive, "x").sleep_after == 1234


def test_a_space_woken_since_the_check_looked_is_left_awake(running, hub):
    space = running(idle=10_000)
    looked = space.last_active_at.timestamp()
    Space.objects.filter(pk=space.pk).update(last_active_at=timezone.now())   # a visitor woke it meanwhile
    assert sleep.space_sleep(space.pk, sleep.FROZEN, idle_since=looked) is False
    assert fresh(space).status == "RUNNING"
    assert sleep.space_sleep(space.pk, sleep.FROZEN, idle_since=time.time()) is True


def test_status_says_sleeping_only_once_the_container_is_frozen(settings, running, hub, monkeypatch):
    space = running(idle=10_000)
    seen = {}
    real_freeze = hub.backend.freeze

    def freeze(name):
        s = fresh(space)
        seen.update(status=s.status, mode=s.sleep_mode, route=route(hub, s))
        # A request arriving now is held for the wake, not sent to the app being frozen.
        seen["wake"] = wake_call(settings, s).status_code
        return real_freeze(name)

    monkeypatch.setattr(hub.backend, "freeze", freeze)
    monkeypatch.setattr(sleep, "wake_requested", lambda space_id: True)
    settings.SPACE_WAKE_HOLD = 0.2
    assert sleep.space_sleep(space.pk, sleep.FROZEN)
    assert (seen["status"], seen["mode"]) == ("RUNNING", "frozen")   # not yet SLEEPING
    assert "auth_request /.demohub/wake;" in seen["route"]           # but requests already wait
    assert seen["wake"] == 403                                       # held, then the waking page
    assert (fresh(space).status, fresh(space).sleep_mode) == ("SLEEPING", "frozen")
