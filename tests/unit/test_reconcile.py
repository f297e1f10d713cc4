"""Reconciliation after restarts (spaces/lifecycle/reconcile.py) on the fake backend: a start, wake or
purge whose task or worker was lost is done again (or failed cleanly); a live start whose claim
Redis lost is left alone; a duplicate start delivery does nothing; frozen spaces whose container
the engine lost sleep stopped and are not started; run logs follow again after Redis lost their
state; a build goes on when its live log cannot be written. The real restarts are in
tests/e2e/test_restarts.py."""
from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

import pytest
import redis
from django.utils import timezone

from spaces.builds.services import revision_build
from spaces.lifecycle import claims, converge, logs, reconcile, sleep
from spaces.lifecycle.deletion import space_delete
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.run_logs import run_log_state_key
from spaces.lifecycle.services import space_restart
from spaces.lifecycle.starts import revision_start
from spaces.lifecycle.tasks import start_revision_task
from spaces.records.models import Revision, Space
from spaces.records.services import space_transition
from spaces.records.status import SpaceStatus
from tests.unit.helpers import fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
S = SpaceStatus


@pytest.fixture
def clock(monkeypatch):
    """clock.advance(seconds): move the sweep's clock on."""

    class Clock:
        offset = 0.0

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    c = Clock()
    real = time.time
    monkeypatch.setattr(reconcile.time, "time", lambda: real() + c.offset)
    return c


@pytest.fixture
def sent_starts(monkeypatch):
    """Start tasks the sweep sends are recorded, not run (as if the broker lost them again)."""
    calls = []
    monkeypatch.setattr(start_revision_task, "delay", lambda *a, **kw: calls.append((a, kw)))
    return calls


def containers(hub) -> set[str]:
    return set(hub.backend.containers)


def lost_restart(space):
    """The owner's restart, whose start task the broker lost (on_commit never runs here)."""
    space_restart(space=fresh(space))
    assert fresh(space).status == S.APP_STARTING


# ------------------------------------------------------------------------------ duplicate starts
def test_a_start_while_another_holds_the_claim_is_busy_and_touches_nothing(serving, hub):
    before = containers(hub)
    with claims.start_claim(serving.pk) as claim:
        assert claim is not None
        with pytest.raises(claims.StartBusy):
            revision_start(revision_id=serving.running_revision_id, restart=True)
        with claims.start_claim(serving.pk) as second:
            assert second is None
    assert fresh(serving).status == S.RUNNING and containers(hub) == before
    assert not claims.start_in_progress(serving.pk)  # released at the end of the block


def test_the_start_task_comes_back_later_when_busy(serving, monkeypatch):
    resent = []
    monkeypatch.setattr(start_revision_task, "apply_async",
                        lambda args, kwargs, countdown: resent.append((args, kwargs, countdown)))
    with claims.start_claim(serving.pk):
        start_revision_task(serving.running_revision_id, restart=True)
    assert resent == [((serving.running_revision_id,), {"restart": True}, 2)]


def test_a_late_duplicate_of_a_start_that_failed_does_nothing(olive, make_space, push, repo, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    rev = push(space, repo.gradio, olive)
    assert fresh(space).status == S.RUNTIME_ERROR
    assert Revision.objects.get(pk=rev.pk).error.startswith("failed to start")
    hub.backend.fail_start = False
    before = dict(hub.backend.containers)
    revision_start(revision_id=rev.pk)  # the duplicate delivery
    assert fresh(space).status == S.RUNTIME_ERROR
    assert all(hub.backend.containers[name] is c for name, c in before.items())  # none started anew


def test_the_claim_is_renewed_and_taken_back_when_redis_lost_it(serving, settings):
    with claims.start_claim(serving.pk) as claim:
        ttl = logs.client().pttl(claim.key)
        assert 0 < ttl <= settings.START_LEASE_SECONDS * 1000
        logs.client().delete(claim.key)          # Redis restarted without its data
        assert claim.renew() is True               # the heartbeat takes it back
        assert logs.client().get(claim.key) == claim.token.encode()
        logs.client().set(claim.key, "another start")
        assert claim.renew() is False              # another start holds it now: not ours to take
    assert logs.client().get(claim.key) == b"another start"  # and not ours to release


# ------------------------------------------------------------------------------ lost starts
def test_a_lost_start_is_sent_again_after_a_lease_without_a_claim(serving, hub, clock, settings):
    lost_restart(serving)
    reconcile.sweep()
    assert fresh(serving).status == S.APP_STARTING   # first seen without a claim: watched
    clock.advance(settings.START_LEASE_SECONDS - 2)
    reconcile.sweep()
    assert fresh(serving).status == S.APP_STARTING
    clock.advance(3)
    done = reconcile.sweep()                           # the start is sent (and runs: eager Celery)
    assert done["starts_resent"] == [serving.pk]
    s = fresh(serving)
    assert (s.status, s.running_revision_id, s.active_slot) == (S.RUNNING, serving.running_revision_id, "a")
    assert container_name(s, "a") in containers(hub)


def test_a_live_start_whose_claim_redis_lost_is_left_alone(serving, clock, settings, sent_starts):
    lost_restart(serving)
    with claims.start_claim(serving.pk) as claim:
        logs.client().delete(claim.key)               # Redis lost the claim of a live start
        reconcile.sweep()                              # no claim: watched from now
        claim.renew()                                  # the live start's heartbeat takes it back
        clock.advance(settings.START_LEASE_SECONDS + 1)
        reconcile.sweep()
    assert sent_starts == [] and fresh(serving).status == S.APP_STARTING


def test_a_start_lost_over_and_over_fails_cleanly(serving, clock, settings, sent_starts):
    settings.START_RESEND_LIMIT = 1
    lost_restart(serving)
    for _ in range(2):
        reconcile.sweep()
        clock.advance(settings.START_LEASE_SECONDS + 1)
        reconcile.sweep()
    assert sent_starts == [((serving.running_revision_id,), {"restart": True})]  # once, then:
    s = fresh(serving)
    assert s.status == S.RUNTIME_ERROR
    assert "start was lost 2 times" in s.error and "restart the space" in s.error, s.error


def test_a_lost_start_beside_the_serving_revision_is_sent_again(serving, olive, push, repo, hub, clock, settings,
                                                                 monkeypatch):
    rev2 = push(serving, gradio_files(repo, serving.port, "2"), olive, run=False)
    with mock.patch.object(start_revision_task, "delay"):
        revision_build(revision_id=rev2.pk)  # built; its start task is lost
    assert space_transition(serving.pk, S.RUNNING_APP_STARTING)  # ... or it began, then died
    reconcile.sweep()
    clock.advance(settings.START_LEASE_SECONDS + 1)
    assert reconcile.sweep()["starts_resent"] == [serving.pk]
    s = fresh(serving)
    assert (s.status, s.running_revision_id, s.active_slot) == (S.RUNNING, rev2.pk, "b")


def test_a_lost_wake_goes_back_to_sleep_until_the_next_visitor(serving, hub, clock, settings, sent_starts):
    assert sleep.space_sleep(serving.pk, sleep.STOPPED)
    assert space_transition(serving.pk, S.APP_STARTING)  # the wake began, then its worker died
    logs.client().set(sleep._key("lock", serving.pk), "dead waker", ex=600)
    reconcile.sweep()
    clock.advance(settings.START_LEASE_SECONDS + 1)
    assert reconcile.sweep()["starts_resent"] == [serving.pk]
    s = fresh(serving)
    assert (s.status, s.sleep_mode) == (S.SLEEPING, sleep.STOPPED) and sent_starts == []
    assert not logs.client().exists(sleep._key("lock", serving.pk))
    sleep.space_wake(serving.pk)                       # the next visitor
    assert fresh(serving).status == S.RUNNING


def test_a_wake_waits_for_a_start_that_holds_the_claim(serving, hub):
    assert sleep.space_sleep(serving.pk, sleep.STOPPED)
    with claims.start_claim(serving.pk):
        sleep.space_wake(serving.pk)
    assert fresh(serving).status == S.SLEEPING and not containers(hub)


# ------------------------------------------------------------------------------ owed starts, purges
def test_a_built_revision_whose_start_task_was_lost_is_started(serving, olive, push, repo, monkeypatch, settings):
    rev2 = push(serving, gradio_files(repo, serving.port, "2"), olive, run=False)
    with mock.patch.object(start_revision_task, "delay"):
        revision_build(revision_id=rev2.pk)
    assert fresh(serving).status == S.RUNNING_BUILDING
    assert reconcile.sweep()["starts_sent"] == []      # just built: its start may be on its way
    Revision.objects.filter(pk=rev2.pk).update(
        finished_at=timezone.now() - timedelta(seconds=settings.START_LEASE_SECONDS + 1))
    assert reconcile.sweep()["starts_sent"] == [rev2.pk]
    s = fresh(serving)
    assert (s.status, s.running_revision_id) == (S.RUNNING, rev2.pk)
    assert reconcile.sweep()["starts_sent"] == []


def test_a_revision_that_failed_to_start_is_not_owed_a_start(serving, olive, push, repo, hub, monkeypatch):
    hub.backend.fail_start = True
    rev2 = push(serving, gradio_files(repo, serving.port, "2"), olive)
    assert fresh(serving).status == S.RUNNING and fresh(serving).running_revision_id != rev2.pk
    Revision.objects.filter(pk=rev2.pk).update(finished_at=timezone.now() - timedelta(hours=1))
    assert space_transition(serving.pk, S.RUNNING_BUILDING)  # a newer upload builds
    sent = []
    monkeypatch.setattr(start_revision_task, "delay", lambda *a, **kw: sent.append(a))
    reconcile.sweep()
    assert sent == []


def test_a_lost_purge_is_sent_again(serving, hub, settings):
    space_delete(space=fresh(serving))       # its purge task is lost
    assert reconcile.sweep()["purges_resent"] == []
    Space.objects.filter(pk=serving.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.PURGE_RESEND_AFTER + 1))
    assert reconcile.sweep()["purges_resent"] == [serving.pk]
    assert not Space.objects.filter(pk=serving.pk).exists() and not containers(hub)


# ------------------------------------------------------------------------------ engine and Redis
def test_frozen_spaces_whose_container_is_gone_sleep_stopped_and_are_not_started(serving, olive, make_space, push,
                                                                                  repo, app_server, hub):
    other = make_space(olive, "other", sdk="gradio")
    port = app_server(other.slot_address("a"))
    push(other, gradio_files(repo, port, "1"), olive)
    assert sleep.space_sleep(serving.pk, sleep.FROZEN) and sleep.space_sleep(other.pk, sleep.STOPPED)
    hub.backend.containers.clear()                     # the engine restarted: every container is gone

    converge.reconcile()
    for space in (serving, other):
        s = fresh(space)
        assert (s.status, s.sleep_mode) == (S.SLEEPING, sleep.STOPPED)
    assert not containers(hub)                         # nothing started by itself
    sleep.space_wake(serving.pk)                       # the next visitor starts it
    assert fresh(serving).status == S.RUNNING


def test_a_frozen_space_whose_container_lives_is_left_frozen(serving, hub):
    assert sleep.space_sleep(serving.pk, sleep.FROZEN)
    converge.reconcile()
    assert fresh(serving).sleep_mode == sleep.FROZEN


def test_the_run_log_follows_the_container_again_after_redis_lost_its_state(serving):
    key = run_log_state_key(serving.pk)
    logs.client().delete(key)                         # Redis restarted
    before = time.time()
    assert reconcile.sweep()["run_logs_refollowed"] == [serving.pk]
    state = logs.client().hgetall(key)
    assert state[b"container"].decode() == container_name(serving, "a")
    assert float(state[b"since"]) >= before            # only new output: nothing copied twice
    assert reconcile.sweep()["run_logs_refollowed"] == []


def test_a_build_goes_on_when_its_live_log_cannot_be_written(olive, make_space, push, repo, app_server, monkeypatch):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    rev = push(space, gradio_files(repo, port, "1"), olive, run=False)

    append = logs.append

    def redis_away_for_the_build_log(key, text, *, cap):
        if key == logs.build_key(rev.pk):
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        append(key, text, cap=cap)

    monkeypatch.setattr(logs, "append", redis_away_for_the_build_log)
    revision_build(revision_id=rev.pk)
    assert Revision.objects.get(pk=rev.pk).status == "succeeded"
    assert fresh(space).status == S.RUNNING
