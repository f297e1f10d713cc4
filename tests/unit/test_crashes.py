"""Crash handling (spaces/lifecycle/health.py) and build leases (spaces/builds/leases.py) on the fake
backend: a crashed app is noticed, restarted with back-off and, after CRASH_LIMIT crashes,
RUNTIME_ERROR with its last log lines; OOM kills name the limit; spaces the hub stopped itself
are never "crash-restarted"; an expired build lease is retried, then failed; a duplicate
delivery does nothing; a queued revision whose task was lost is sent again."""
from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from runner.backends.base import ContainerState
from spaces.builds import leases as build_leases
from spaces.builds.services import finish_revision, revision_build
from spaces.builds.tasks import build_revision_task
from spaces.lifecycle import health, logs
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.run_logs import exit_reason
from spaces.lifecycle.services import space_pause, space_restart
from spaces.lifecycle.tasks import restart_crashed_space_task
from spaces.records.models import Revision, Space
from spaces.records.services import space_transition
from tests.unit.helpers import fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
CRASH_OUTPUT = "loading the model\nValueError: the model file is missing\n"


@pytest.fixture
def clock(monkeypatch):
    """clock.advance(seconds): move the crash handler's clock on."""

    class Clock:
        offset = 0.0

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    c = Clock()
    monkeypatch.setattr(health, "_now", lambda: time.time() + c.offset)
    return c


def active(space) -> str:
    return container_name(space, fresh(space).active_slot)


def run_log(space) -> str:
    return logs.read(logs.run_key(space.pk))[0].decode()


# ------------------------------------------------------------------------------ crashes
def test_a_crash_is_noticed_and_the_app_restarted_after_the_back_off(serving, hub, clock):
    name = active(serving)
    hub.backend.crash(name, exit_code=1, output=CRASH_OUTPUT)
    health.crashes_check()

    s = fresh(serving)
    assert s.status == "APP_STARTING"  # visitors get the status page meanwhile
    assert s.error.startswith(health.RESTARTING) and "exited with code 1" in s.error
    assert health.crash_count(s.pk) == 1
    assert health.restart_due_at(s.pk) == pytest.approx(time.time() + 1, abs=0.5)
    assert hub.backend.state(name).running is False  # not yet: the back-off first

    health.crashes_check()  # within the back-off: nothing happens
    assert fresh(serving).status == "APP_STARTING"

    clock.advance(1.1)
    health.crashes_check()
    s = fresh(serving)
    assert (s.status, s.running_revision.number, s.active_slot) == ("RUNNING", 1, "a")
    assert s.error.startswith(health.RESTARTED) and "exited with code 1" in s.error
    assert hub.backend.state(name).running
    # The run log keeps the crashed run's output above the new run's.
    text = run_log(s)
    assert text.index("ValueError: the model file is missing") < text.index("restarting in 1 s") \
        < text.rindex("started")
    assert health.restart_due_at(s.pk) is None


def test_back_off_doubles_and_the_limit_ends_in_runtime_error_with_the_last_log_lines(serving, hub, clock,
                                                                                     settings, run_on_commit):
    settings.CRASH_LIMIT = 3
    name = active(serving)
    for count, delay in ((1, 1), (2, 2)):
        hub.backend.crash(name, exit_code=1, output=f"crash number {count}\n")
        health.crashes_check()
        assert health.crash_count(serving.pk) == count
        assert health.restart_due_at(serving.pk) == pytest.approx(time.time() + clock.offset + delay, abs=0.5)
        clock.advance(delay + 0.1)
        health.crashes_check()
        assert fresh(serving).status == "RUNNING"

    hub.backend.crash(name, exit_code=1, output=CRASH_OUTPUT)
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "RUNTIME_ERROR"
    assert "crashed 3 times within 5 minutes" in s.error and "exited with code 1" in s.error
    assert "ValueError: the model file is missing" in s.error and "crash number 2" in s.error
    assert name not in hub.backend.containers  # its output was copied; the container is gone
    clock.advance(600)
    health.crashes_check()
    assert fresh(serving).status == "RUNTIME_ERROR"  # never restarted again by itself

    # The owner's restart starts a fresh count: one crash is a restart again, not an error.
    with run_on_commit():
        space_restart(space=fresh(serving))
    assert fresh(serving).status == "RUNNING"
    hub.backend.crash(name, exit_code=1)
    health.crashes_check()
    assert fresh(serving).status == "APP_STARTING" and health.crash_count(serving.pk) == 1


def test_the_error_keeps_the_end_of_a_long_log(serving, hub, settings):
    settings.CRASH_LIMIT = 1  # the first crash is the last
    hub.backend.crash(active(serving), exit_code=1, output="x" * 10_000 + "\nthe very last line\n")
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "RUNTIME_ERROR" and "crashed once" in s.error
    assert len(s.error) <= 4000 and s.error.endswith("the very last line")


def test_back_off_is_capped(settings):
    settings.CRASH_BACKOFF_BASE, settings.CRASH_BACKOFF_MAX = 1.0, 5.0
    assert [health.backoff(n) for n in (1, 2, 3, 4, 10)] == [1, 2, 4, 5, 5]


def test_a_crash_while_restarting_counts_and_backs_off_further(serving, hub, clock, settings):
    settings.CRASH_LIMIT = 3
    name = active(serving)
    hub.backend.crash(name, exit_code=1)
    health.crashes_check()
    hub.backend.fail_start = True  # the restarted app exits at once
    clock.advance(1.1)
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "APP_STARTING" and health.crash_count(s.pk) == 2
    assert health.restart_due_at(s.pk) == pytest.approx(time.time() + clock.offset + 2, abs=0.5)
    clock.advance(2.1)
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "RUNTIME_ERROR" and "crashed 3 times" in s.error


def test_an_old_revision_that_crashes_while_a_new_one_builds_is_restarted_in_place(serving, hub, clock, push,
                                                                                  repo, olive):
    push(serving, gradio_files(repo, serving.port, "2"), olive, run=False)
    assert fresh(serving).status == "RUNNING_BUILDING"
    name = active(serving)
    hub.backend.crash(name, exit_code=3)
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "RUNNING_BUILDING" and s.error.startswith(health.RESTARTING)
    clock.advance(1.1)
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "RUNNING_BUILDING" and s.error.startswith(health.RESTARTED)
    assert hub.backend.state(name).running and s.running_revision.number == 1


def test_oom_kill_names_the_memory_limit(serving, hub, clock):
    Space.objects.filter(pk=serving.pk).update(memory_limit="96m")
    hub.backend.crash(active(serving), exit_code=137, oom_killed=True)
    health.crashes_check()
    error = fresh(serving).error
    assert "ran out of memory" in error and "OOM" in error and "96m" in error


@pytest.mark.parametrize("state, words", [
    (ContainerState("c", False, False, 137, True, {}), ["ran out of memory", "OOM", "2g"]),
    (ContainerState("c", False, False, 137, False, {}), ["killed by SIGKILL", "137"]),
    (ContainerState("c", False, False, 143, False, {}), ["killed by SIGTERM"]),
    (ContainerState("c", False, False, 2, False, {}), ["exited with code 2"]),
    (ContainerState("c", False, False, 127, False, {}, error="exec: app: not found"), ["127", "not found"]),
    (None, ["disappeared"]),
])
def test_exit_reasons(state, words):
    reason = exit_reason(state, memory="2g")
    assert all(w in reason for w in words), reason
    if state is not None and not state.oom_killed:
        assert "memory" not in reason


def test_a_first_start_that_is_oom_killed_names_the_limit_too(olive, make_space, push, repo, hub, monkeypatch):
    space = make_space(olive, "demo", sdk="gradio")
    real_start = hub.backend.start

    def start_then_oom(spec):
        real_start(spec)
        hub.backend.crash(spec.name, exit_code=137, oom_killed=True, output="allocating\n")

    monkeypatch.setattr(hub.backend, "start", start_then_oom)
    push(space, repo.gradio, olive)
    s = fresh(space)
    assert s.status == "RUNTIME_ERROR"
    assert "ran out of memory" in s.error and "2g" in s.error and "allocating" in s.error


def test_paused_sleeping_and_frozen_spaces_are_never_crash_restarted(serving, hub, clock, run_on_commit):
    name = active(serving)
    # Frozen by the engine (sleep's first tier) while still RUNNING: not a crash.
    hub.backend.freeze(name)
    health.crashes_check()
    assert fresh(serving).status == "RUNNING" and health.crash_count(serving.pk) == 0
    hub.backend.unfreeze(name)

    # Stopped for sleeping: the hub moves the space to SLEEPING first, then stops it.
    space_transition(serving, "SLEEPING")
    hub.backend.stop(name)
    clock.advance(60)
    health.crashes_check()
    assert fresh(serving).status == "SLEEPING" and name not in hub.backend.containers

    # Paused by the owner.
    with run_on_commit():
        space_pause(space=fresh(serving))
    health.crashes_check()
    assert fresh(serving).status == "PAUSED" and not hub.backend.containers
    assert health.crash_count(serving.pk) == 0


def test_an_owner_pause_cancels_a_pending_restart(serving, hub, clock, run_on_commit):
    hub.backend.crash(active(serving), exit_code=1)
    health.crashes_check()
    assert fresh(serving).status == "APP_STARTING"
    with run_on_commit():
        space_pause(space=fresh(serving))
    clock.advance(5)
    health.crashes_check()
    assert fresh(serving).status == "PAUSED" and not hub.backend.containers


def test_a_restart_lost_with_redis_is_sent_again(serving, hub, clock):
    hub.backend.crash(active(serving), exit_code=1)
    health.crashes_check()
    info, _, _ = health._keys(serving.pk)
    logs.client().delete(info)  # Redis restarted without its data
    health.crashes_check()
    s = fresh(serving)
    assert s.status == "RUNNING" and s.error.startswith(health.RESTARTED)


def test_a_duplicate_restart_delivery_does_nothing(serving, hub, clock, monkeypatch):
    hub.backend.crash(active(serving), exit_code=1)
    health.crashes_check()
    clock.advance(1.1)
    health.crashes_check()
    assert fresh(serving).status == "RUNNING"
    starts = mock.Mock(wraps=hub.backend.start)
    monkeypatch.setattr(hub.backend, "start", starts)
    restart_crashed_space_task.delay(serving.pk)  # the same message once more
    assert not starts.called and fresh(serving).status == "RUNNING"


def test_visitors_see_restarting_and_strangers_only_the_fact(serving, hub, api, settings):
    hub.backend.crash(active(serving), exit_code=1, output="secret path /data/model.bin missing\n")
    health.crashes_check()
    host = f"{serving.label}.{settings.SPACES_DOMAIN}:{settings.SPACES_PORT}"
    resp = Client().get("/internal/proxy/fallback", headers={
        "X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": host, "X-Demohub-Uri": "/",
        "Accept": "application/json"})
    assert resp.status_code == 503 and "restarting after a crash" in resp.json()["detail"]
    body = api().get("/api/spaces/olive/demo").json()
    assert body["status"] == "APP_STARTING" and body["error"] == "The app crashed and is being restarted."


# ------------------------------------------------------------------------------ build leases
@pytest.fixture
def queued(olive, make_space, push, repo):
    """A gradio space with revision 1 queued (its task not run)."""
    space = make_space(olive, "demo", sdk="gradio")
    return push(space, repo.gradio, olive, run=False)


def expire(rev_id: int) -> None:
    Revision.objects.filter(pk=rev_id).update(heartbeat_at=timezone.now() - timedelta(minutes=2))


def test_an_expired_lease_is_retried_and_the_retry_builds(queued, hub, settings):
    hub.backend.fail_start = True  # the start after the build is not what this test is about
    dead = build_leases.claim(queued.pk)  # a worker claimed it, then died
    hub.backend.build_steps.add("its-build-step")
    expire(queued.pk)
    build_leases.sweep()  # eager: the retry runs at once
    rev = Revision.objects.get(pk=queued.pk)
    assert rev.status == "succeeded" and rev.task_id != dead.token
    assert "attempt 2: the build worker of the previous attempt stopped responding" in rev.build_log
    assert build_leases.retries(rev.pk) == 1
    assert not hub.backend.build_steps  # the dead build's step container was removed
    assert not dead.held() and dead.lost.is_set()


def test_an_expired_lease_after_the_retry_fails_the_revision_and_the_space(queued, hub, settings):
    settings.BUILD_LEASE_RETRIES = 1
    with mock.patch.object(build_revision_task, "delay") as sent:
        build_leases.claim(queued.pk)
        expire(queued.pk)
        build_leases.sweep()
        assert sent.call_args_list == [mock.call(queued.pk)]
        assert Revision.objects.get(pk=queued.pk).status == "queued"
        build_leases.claim(queued.pk)  # the retry's worker claims it and dies too
        expire(queued.pk)
        build_leases.sweep()
        assert len(sent.call_args_list) == 1
    rev = Revision.objects.get(pk=queued.pk)
    assert rev.status == "failed" and rev.finished_at is not None
    assert "stopped responding" in rev.error and "after 1 retry" in rev.error
    s = fresh(rev.space)
    assert s.status == "BUILD_ERROR" and "stopped responding" in s.error


def test_a_failed_lease_of_a_new_revision_keeps_the_old_one_serving(serving, hub, push, repo, olive, settings):
    settings.BUILD_LEASE_RETRIES = 0
    rev = push(serving, gradio_files(repo, serving.port, "2"), olive, run=False)
    build_leases.claim(rev.pk)
    expire(rev.pk)
    build_leases.sweep()
    s = fresh(serving)
    assert s.status == "RUNNING" and s.running_revision.number == 1
    assert "revision 2 failed to build" in s.error and "stopped responding" in s.error


def test_a_live_lease_is_left_alone_and_its_build_steps_too(queued, hub, olive, make_space, push, repo):
    other = push(make_space(olive, "other", sdk="gradio"), repo.gradio, olive, run=False)
    build_leases.claim(other.pk)  # live: heartbeat now
    build_leases.claim(queued.pk)
    expire(queued.pk)
    hub.backend.build_steps.add("someone's-step")
    with mock.patch.object(build_revision_task, "delay"):
        assert build_leases.reap_expired() == [queued.pk]
    assert Revision.objects.get(pk=other.pk).status == "building"
    # Step containers cannot be told apart: with a live build among them, none is removed.
    assert hub.backend.build_steps == {"someone's-step"}


def test_a_duplicate_delivery_of_a_build_does_nothing(queued, hub):
    lease = build_leases.claim(queued.pk)  # building under a live lease
    revision_build(revision_id=queued.pk)
    rev = Revision.objects.get(pk=queued.pk)
    assert rev.status == "building" and rev.task_id == lease.token and not hub.backend.builds

    Revision.objects.filter(pk=queued.pk).update(status="succeeded")  # or final
    revision_build(revision_id=queued.pk)
    assert Revision.objects.get(pk=queued.pk).status == "succeeded" and not hub.backend.builds


def test_a_worker_that_lost_its_lease_writes_nothing(queued, hub):
    old = build_leases.claim(queued.pk)
    expire(queued.pk)
    with mock.patch.object(build_revision_task, "delay"):
        build_leases.sweep()
    new = build_leases.claim(queued.pk)
    assert not old.renew() and old.lost.is_set() and not old.held()
    assert not finish_revision(Revision.objects.get(pk=queued.pk), "failed", error="x", lease=old.token)
    assert new.held() and new.renew()
    assert Revision.objects.get(pk=queued.pk).status == "building"


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_renews_the_lease_while_the_build_runs(queued, settings):
    settings.BUILD_HEARTBEAT_INTERVAL = 0.05
    # Outside a test transaction the upload's build ran on commit: queue it once more.
    Revision.objects.filter(pk=queued.pk).update(status="queued", task_id="")
    lease = build_leases.claim(queued.pk)
    expire(queued.pk)
    with lease:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            beat = Revision.objects.get(pk=queued.pk).heartbeat_at
            if beat > timezone.now() - timedelta(seconds=5):
                break
            time.sleep(0.05)
    assert beat > timezone.now() - timedelta(seconds=5)
    assert build_leases.reap_expired() == []


def test_a_queued_revision_whose_task_was_lost_is_sent_again_once_per_period(queued, olive, make_space, push,
                                                                            repo, settings):
    young = push(make_space(olive, "young", sdk="gradio"), repo.gradio, olive, run=False)
    Revision.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    with mock.patch.object(build_revision_task, "delay") as sent:
        assert build_leases.resend_queued() == [queued.pk]
        assert build_leases.resend_queued() == []  # not again within BUILD_REQUEUE_AFTER
    assert sent.call_args_list == [mock.call(queued.pk)]
    assert young.pk not in [c.args[0] for c in sent.call_args_list]


def test_docker_backend_cancels_only_build_step_containers():
    import docker as docker_sdk

    from runner.backends.docker import DockerBackend

    backend = DockerBackend(instance="unit", network="demohub-unit-spaces", subnet="10.213.0.0/16",
                            base_image="demohub/base:bookworm")
    backend._client = mock.MagicMock(spec=docker_sdk.DockerClient)
    space = mock.Mock(labels={"demohub.instance": "unit", "demohub.slot": "a"})
    step = mock.Mock(labels={"demohub.role": "sdk"})  # a RUN step FROM an SDK image
    gone = mock.Mock(labels={})
    gone.remove.side_effect = docker_sdk.errors.NotFound("removed by the engine meanwhile")
    backend.client.containers.list.return_value = [space, step, gone]
    assert backend.cancel_builds() == 1
    # Build steps run on the builds network, which no space joins.
    assert backend.client.containers.list.call_args.kwargs["filters"] == {"network": "demohub-unit-builds"}
    step.remove.assert_called_once_with(force=True, v=True)
    space.remove.assert_not_called()
