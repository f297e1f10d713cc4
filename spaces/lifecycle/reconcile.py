"""Restarts and reconciliation: work lost with a restart is found from the database and done
again (README: "Restarts and reconciliation").

The database is the record. Everything else is rebuilt from it after a restart of any part:

* **proxy**: routes are files on disk that a restarted proxy loads at once;
  `reconcile` rewrites any that are missing or stale.
* **Redis** (all keys lost: Celery's queues, claims, live logs, crash and sleep state): queued
  builds are sent again (spaces/builds/leases.py), crash restarts too (spaces/lifecycle/health.py), and
  starts and purges by this module; the run log of a serving space goes on from the restart
  (`run_logs_refollow`), its older lines are gone.
* **a lifecycle worker killed mid-start**: the start's claim lapses, so the start is sent again.
* **the Docker engine** (every container stops unless the engine keeps them: live-restore):
  the crash check restarts RUNNING spaces (`backend.start` recreates the spaces network if it
  is gone); a frozen space's container is gone, so it becomes stopped-asleep here
  (`frozen_containers_lost`) and the next visitor wakes it; stopped spaces stay asleep.

**Start claims.** Every start of a space (`revision_start`, a wake) holds a claim in
Redis, `demohub:<instance>:start:<space id>`, whose TTL (START_LEASE_SECONDS) a thread of the
worker renews every quarter of it. One start per space at a time: a start that finds the claim
taken (a duplicate delivery, or a start sent again here while the first one still ran) raises
StartBusy and its task is sent again a little later, when it finds the work done. If Redis
lost the claim while the start runs, the renewal takes it back.

**The sweep** (beat every START_CHECK_INTERVAL s, and in every reconcile, which also runs when a
lifecycle worker starts):

* a space APP_STARTING or RUNNING_APP_STARTING whose start has held no claim for
  START_LEASE_SECONDS (watched across rounds: a claim that Redis lost is taken back by its live
  start well within that) lost its start: it is sent again -- the newest built revision if it
  has not run yet, else the running one (a restart) -- at most START_RESEND_LIMIT times within
  15 minutes, then the start fails with a message saying so. A lost wake goes back to SLEEPING
  (stopped); the next visitor wakes it. Crash restarts have their own bookkeeping (health.py).
* a space BUILDING, RUNNING_BUILDING or SLEEPING whose newest revision built START_LEASE_SECONDS
  ago but never started (its start task was lost) has it sent.
* a space DELETING for PURGE_RESEND_AFTER s has its purge task sent again (purging is idempotent).

All marks live in Redis; losing them costs at most one more round of waiting or one more
(harmless) message.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from runner.backends import ContainerState
from runner.exceptions import BackendUnavailable
from spaces.lifecycle import claims, logs, sleep
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.health import RESTARTING
from spaces.lifecycle.routes import container_name, space_publish_route
from spaces.lifecycle.run_logs import run_log_state_key
from spaces.nodes import placement
from spaces.nodes.selectors import here
from spaces.records import jobs
from spaces.records.models import Revision, Sdk, Space
from spaces.records.services import space_transition
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
S = SpaceStatus
R = Revision.Status
STARTING = (S.APP_STARTING, S.RUNNING_APP_STARTING)
# Statuses in which the newest revision, once built, is started next (revision_build).
AWAITING_START = (S.BUILDING, S.RUNNING_BUILDING, S.SLEEPING)
RESEND_WINDOW = 15 * 60  # seconds over which START_RESEND_LIMIT counts


def _key(*parts) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:" + ":".join(str(p) for p in parts)


def sweep() -> dict[str, list[int]]:
    """Find work a restart lost and do it again (see the module docstring). Returns what it did."""
    done = {"starts_resent": lost_starts_resend(), "starts_sent": owed_starts_send(),
            "purges_resent": purges_resend(), "run_logs_refollowed": run_logs_refollow(),
            "waiting_started": waiting_starts_retry()}
    if any(done.values()):
        log.info("reconcile: %s", done)
    return done


def _unseen_since(space: Space, now: float) -> float:
    """Since when the sweep has seen `space`, in the state it is in now, without a start claim.

    Tied to the row's updated_at: a mark left from an earlier start of the space (which ended,
    then another began) does not count for this one."""
    client = logs.client()
    key = _key("start", space.pk, "unseen")
    state = repr(space.updated_at.timestamp())
    raw = client.get(key)
    if raw is not None:
        seen_state, _, since = raw.decode().partition(" ")
        if seen_state == state:
            return float(since)
    client.set(key, f"{state} {now!r}", ex=settings.START_LEASE_SECONDS * 6)
    return now


def lost_starts_resend() -> list[int]:
    """Send again the start of every starting space whose start has held no claim for a lease."""
    client = logs.client()
    now = time.time()
    # A space waiting for hardware has no start to lose: waiting_starts_retry sends it.
    starting = (Space.objects.filter(status__in=STARTING).exclude(error__startswith=RESTARTING)
                .exclude(error__contains=placement.WAITING)
                .select_related("owner", "latest_revision", "running_revision"))
    recovered = []
    for space in starting:
        if claims.start_in_progress(space.pk):
            client.delete(_key("start", space.pk, "unseen"))
            continue
        if now - _unseen_since(space, now) < settings.START_LEASE_SECONDS:
            continue
        if not client.delete(_key("start", space.pk, "unseen")):
            continue  # a concurrent sweep (beat's, or a reconcile's) took this one
        if _start_recover(space):
            recovered.append(space.pk)
    return recovered


def waiting_starts_retry() -> list[int]:
    """Start every space waiting for hardware (spaces/nodes/placement.py) that a node can take
    now (one registered, was uncordoned, or a space stopped): once per few seconds each."""
    client = logs.client()
    sent = []
    waiting = (Space.objects.filter(error__contains=placement.WAITING).exclude(status__in=(S.DELETING, S.PAUSED))
               .select_related("owner", "latest_revision", "running_revision", "node"))
    for space in waiting:
        if claims.start_in_progress(space.pk) or not placement.can_place(space):
            continue
        target, restart = _start_target(space)
        if target is None or not client.set(_key("waiting-sent", space.pk), 1, nx=True,
                                            ex=max(int(settings.START_CHECK_INTERVAL) * 2, 2)):
            continue
        move = space.node is not None and not space.node.schedulable  # a drain that waited
        jobs.send("spaces.tasks.start_revision_task", target.pk, kwargs={"restart": restart, "move": move})
        sent.append(space.pk)
    return sent


def _start_target(space: Space) -> tuple[Revision | None, bool]:
    """(revision, restart) a lost start was for: the newest revision if it built and has not
    run or failed to start yet, else the running one (restarted)."""
    latest = space.latest_revision
    if (latest is not None and latest.status == R.SUCCEEDED and not latest.error
            and latest.pk != space.running_revision_id):
        return latest, False
    return space.running_revision, True


def _start_recover(space: Space) -> bool:
    if space.status == S.APP_STARTING and space.sleep_mode:
        # A wake (or a new revision's start while asleep) died: asleep again, stopped. The next
        # visitor wakes it; a new revision that built meanwhile is started by owed_starts_send.
        if not space_transition(space, S.SLEEPING, expected={S.APP_STARTING}, sleep_mode=sleep.STOPPED):
            return False
        log.warning("space %s: its wake was lost; it sleeps (stopped) until the next visitor", space.pk)
        # The dead waker's sleep lock and "waking" mark: nobody holds the start claim, so no
        # wake runs (a waker holds both), and the next visitor must not wait for them to expire.
        sleep.wake_marks_clear(space.pk)
        with contextlib.suppress(BackendUnavailable):
            get_backend().stop(container_name(space, space.active_slot), timeout=0)
        space_publish_route(space_id=space.pk)
        return True

    target, restart = _start_target(space)
    if space.status == S.RUNNING_APP_STARTING and restart:
        # The revision that was starting beside the serving one cannot be started any more:
        # the serving one simply goes on.
        return space_transition(space, S.RUNNING, expected={S.RUNNING_APP_STARTING})
    resent_key = _key("start", space.pk, "resent")
    client = logs.client()
    count = client.incr(resent_key)
    client.expire(resent_key, RESEND_WINDOW)
    if target is None or count > settings.START_RESEND_LIMIT:
        return _start_fail(space, target, count - 1)
    log.warning("space %s: its start of revision %s was lost (no live claim for %s s); sending it again",
                space.pk, target.number, settings.START_LEASE_SECONDS)
    jobs.send("spaces.tasks.start_revision_task", target.pk, kwargs={"restart": restart})
    return True


def _start_fail(space: Space, target: Revision | None, resent: int) -> bool:

    why = (f"its start was lost {resent + 1} times (the worker running it stopped responding)"
           if target is not None else "there is no built revision to start")
    if target is not None:
        Revision.objects.filter(pk=target.pk).update(error=f"failed to start: {why}"[:4000])
    log.warning("space %s: not starting it again: %s", space.pk, why)
    if space.status == S.RUNNING_APP_STARTING:
        return space_transition(space, S.RUNNING, expected={S.RUNNING_APP_STARTING},
                                         error=f"revision {target.number} failed to start: {why}")
    return space_transition(space, S.RUNTIME_ERROR, expected={S.APP_STARTING},
                                     error=f"The app failed to start: {why}; restart the space to try again.")


def owed_starts_send() -> list[int]:
    """Send the start of every space whose newest revision built a lease ago and was never
    started (the task sent when its build ended was lost); returns their revision ids."""

    cutoff = timezone.now() - timedelta(seconds=settings.START_LEASE_SECONDS)
    rows = (Space.objects.filter(status__in=AWAITING_START, latest_revision__status=R.SUCCEEDED,
                                 latest_revision__error="", latest_revision__finished_at__lt=cutoff)
            .values_list("pk", "latest_revision_id", "running_revision_id"))
    client = logs.client()
    sent = []
    for space_id, latest_id, running_id in rows:
        if latest_id == running_id or claims.start_in_progress(space_id):
            continue
        # Once per lease period each: a start that is merely queued behind others is not
        # sent over and over (a duplicate would do nothing anyway).
        if client.set(_key("start-sent", latest_id), 1, nx=True, ex=settings.START_LEASE_SECONDS * 3):
            log.warning("space %s: revision %s built but was never started; sending its start", space_id,
                        latest_id)
            jobs.send("spaces.tasks.start_revision_task", latest_id)
            sent.append(latest_id)
    return sent


def purges_resend() -> list[int]:
    """Send again the purge of every space DELETING for longer than PURGE_RESEND_AFTER s."""

    period = settings.PURGE_RESEND_AFTER
    cutoff = timezone.now() - timedelta(seconds=period)
    client = logs.client()
    sent = []
    for space_id in Space.objects.filter(status=S.DELETING, updated_at__lt=cutoff).values_list("pk", flat=True):
        if client.set(_key("purge-sent", space_id), 1, nx=True, ex=max(period, 1)):
            log.warning("space %s: DELETING for over %s s; sending its purge again", space_id, period)
            jobs.send("spaces.tasks.delete_space_task", space_id)
            sent.append(space_id)
    return sent


# Follow the container only if nothing follows it yet (a start that set it up wins).
_FOLLOW_IF_UNSET = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'container', ARGV[1], 'since', ARGV[2])
return 1
"""


def run_logs_refollow() -> list[int]:
    """Serving spaces whose run-log state Redis lost: copy their container's output again from
    now on (what was copied before is gone with Redis; older output is not copied twice)."""

    client = logs.client()
    now = repr(time.time())
    refollowed = []
    serving = (Space.objects.filter(here(), status__in=(S.RUNNING, S.RUNNING_BUILDING)).exclude(sdk=Sdk.STATIC)
               .select_related("owner"))
    for space in serving:
        name = container_name(space, space.active_slot)
        if client.eval(_FOLLOW_IF_UNSET, 1, run_log_state_key(space.pk), name, now):
            refollowed.append(space.pk)
    return refollowed


# ----------------------------------------------------------------------------- the engine
def frozen_containers_lost(spaces: Iterable[Space], containers: dict[str, ContainerState]) -> list[int]:
    """Frozen spaces whose container is gone or stopped (the engine restarted) are asleep,
    stopped: the next visitor starts them. Never started here (design: a sleeping space runs
    again only for a visitor)."""
    backend = get_backend()
    converted = []
    for space in spaces:
        if space.status != S.SLEEPING or space.sleep_mode != sleep.FROZEN or space.sdk == Sdk.STATIC:
            continue
        name = container_name(space, space.active_slot)
        seen = containers.get(name)
        if seen is not None and seen.running:
            continue
        try:
            with sleep.space_lock(space.pk, wait=1):
                # Under the lock no wake runs; look again, a wake may have ended meanwhile.
                state = backend.state(name)
                if state is not None and state.running:
                    continue
                if Space.objects.filter(pk=space.pk, status=S.SLEEPING, sleep_mode=sleep.FROZEN).update(
                        sleep_mode=sleep.STOPPED):
                    backend.stop(name, timeout=0)
                    log.warning("space %s: its frozen container is gone; it sleeps stopped now", space.pk)
                    converted.append(space.pk)
        except TimeoutError:
            continue  # a wake or a sleep holds it: the next round looks again
        except BackendUnavailable:
            break  # the engine went away again: the next round goes on
    return converted
