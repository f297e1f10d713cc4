"""Crash handling: an app that exits or is killed is noticed within seconds, restarted with
back-off, and after repeated crashes its space is RUNTIME_ERROR with the last run-log lines
(README: "Crashes and stuck builds").

**Noticing.** A beat task (`crashes_check`, every CRASH_CHECK_INTERVAL s) lists this
installation's containers with one engine call and compares them with the database: the active
container of a space that is RUNNING or RUNNING_BUILDING must be running, or frozen (the
engine's pause, which sleep uses). Exited, dead or gone is a crash. A poll rather than the
engine's event stream: it holds no long-lived connection that a restart of the engine or the
worker could silently lose, and the comparison with the database decides either way.

Never a crash:

* SLEEPING, PAUSED, DELETING: the hub stopped or froze the container itself. The hub moves a
  space out of RUNNING before it touches the container (space_pause, spaces/lifecycle/sleep.py), and the
  rows are read after the container list, so a container the hub just stopped is never
  mistaken for a crash; the row is read once more before acting.
* APP_STARTING, RUNNING_APP_STARTING: a start is under way and judges its container itself. An
  old revision that dies while a new one starts is dealt with once that start ends: the new
  one replaces it, or the space is RUNNING on the old one again and the next check sees it.
* static spaces: no container.

**Restarting.** The n-th crash of a revision within CRASH_WINDOW s schedules a restart of the
same revision on the same slot after CRASH_BACKOFF_BASE * 2**(n-1) s (at most
CRASH_BACKOFF_MAX). A RUNNING space is APP_STARTING meanwhile, so visitors get the proxy's
status page ("restarting after a crash") and the API shows it; a RUNNING_BUILDING space stays
RUNNING_BUILDING (the state machine has no "building while restarting"). Either way its
`error` starts with RESTARTING, and with RESTARTED once the app answers again. A crash while
restarting (the app exits before it answers, or never answers) counts like any other. The
CRASH_LIMIT-th crash makes the space RUNTIME_ERROR: why, and the last CRASH_LOG_LINES lines
of the run log, whose output of each crashed run is kept above the next run's.

**State** without a schema change: per space in Redis a hash (the revision and slot that
crashed, why, when the restart is due), a sorted set of crash times and a lock held while a
restart is sent or runs; and the space's `error`. The beat sends a restart when it is due (no
countdown task that a worker restart could hold back), and if Redis loses the hash, a space
whose error says RESTARTING is restarted at once.
"""
from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings

from runner.exceptions import BackendUnavailable
from spaces.analytics.services import record_event
from spaces.lifecycle import logs, readiness
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.run_logs import exit_reason, run_log_copy, run_log_tail
from spaces.lifecycle.starts import space_memory, start_container
from spaces.lifecycle.preview_runs import previews_crashed
from spaces.nodes.selectors import here, holds_hub_engine, local_node_name
from spaces.records import jobs
from spaces.records.models import Revision, Sdk, Space
from spaces.records.services import space_transition
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
S = SpaceStatus

WATCHED = (S.RUNNING, S.RUNNING_BUILDING)
# The restart lock lives this long unless renewed: a restart renews it while the app comes
# up, so one whose worker died is sent again within a minute.
LOCK_SECONDS = 60
RESTARTING = "Restarting after a crash"
RESTARTED = "Restarted after a crash"


def _now() -> float:
    return time.time()  # one clock for crash times and restart deadlines (tests move it)


def _keys(space_id: int) -> tuple[str, str, str]:
    """(the crash hash, the crash times, the restart lock) of a space."""
    base = f"demohub:{settings.DEMOHUB_INSTANCE}:crash:{space_id}"
    return base, base + ":times", base + ":lock"


def _ttl() -> int:
    return settings.CRASH_WINDOW + 3600


def backoff(count: int) -> float:
    """Seconds before the restart that follows the `count`-th crash."""
    return min(settings.CRASH_BACKOFF_BASE * 2 ** (count - 1), settings.CRASH_BACKOFF_MAX)


def _window() -> str:
    seconds = settings.CRASH_WINDOW
    if seconds % 60 == 0:
        return f"{seconds // 60} minute{'s' if seconds != 60 else ''}"
    return f"{seconds} s"


def _memory(space: Space) -> str:
    # The limit _run_spec gave the container (its tier's, or the row's own).
    return space_memory(space)


def _note(space_id: int, text: str) -> None:
    """A line of the hub's own in the space's run log, between the runs it concerns."""
    logs.append(logs.run_key(space_id), f"==> {text}\n", cap=settings.RUN_LOG_MAX_BYTES)


def crash_count(space_id: int) -> int:
    """Crashes of the space's current revision within the window."""
    _, times, _ = _keys(space_id)
    client = logs.client()
    client.zremrangebyscore(times, "-inf", _now() - settings.CRASH_WINDOW)
    return client.zcard(times)


def restart_due_at(space_id: int) -> float | None:
    """When the pending restart of the space is due (epoch seconds), if one is pending."""
    info, _, _ = _keys(space_id)
    due = logs.client().hget(info, "due")
    return float(due) if due is not None else None


# ----------------------------------------------------------------------------- noticing
def crashes_check() -> None:
    """The beat's round: notice crashed apps, then send the restarts that are due."""
    client = logs.client()
    # One round at a time: two rounds seeing the same crash would count it twice.
    # Per engine: each node's worker checks its own containers (spaces/nodes).
    round_lock = client.lock(f"demohub:{settings.DEMOHUB_INSTANCE}:crash-check:{local_node_name()}", timeout=60,
                             blocking=False)
    if not round_lock.acquire():
        return
    try:
        try:
            containers = {c.name: c for c in get_backend().list_containers()}
        except BackendUnavailable:
            log.debug("crash check: the engine does not answer")
            return
        readiness.engine_seen()  # GET /readyz reports the engine from this
        # Rows after containers: see the module docstring. A RUNNING_BUILDING space whose
        # restart is pending keeps its status; its error (RESTARTING) keeps it out of here, as
        # restarts_send_due restarts it.
        # A space being put to sleep (sleep_mode set, status not yet SLEEPING) lost its
        # container to the hub, not to a crash.
        watched = (Space.objects.filter(here(), status__in=WATCHED, running_revision__isnull=False, sleep_mode="")
                   .exclude(sdk=Sdk.STATIC).exclude(error__startswith=RESTARTING)
                   .select_related("owner", "running_revision"))
        for space in watched:
            state = containers.get(container_name(space, space.active_slot))
            if state is None or not (state.running or state.paused):
                try:
                    space_crashed(space)
                except BackendUnavailable:
                    return
        if holds_hub_engine():  # branch previews run on the hub's engine
            previews_crashed(containers)
        restarts_send_due()
    finally:
        with contextlib.suppress(Exception):
            round_lock.release()


def space_crashed(space: Space) -> bool:
    """Record a crash of the space's active container and restart or give up; False when it
    turns out not to be one (started again meanwhile, or the space moved on)."""
    name = container_name(space, space.active_slot)
    state = get_backend().state(name)
    if state is not None and (state.running or state.paused):
        return False
    if not Space.objects.filter(pk=space.pk, status=space.status, running_revision_id=space.running_revision_id,
                                active_slot=space.active_slot).exists():
        return False
    run_log_copy(space_id=space.pk)  # the crashed run's last words
    reason = exit_reason(state, memory=_memory(space))
    log.warning("space %s: %s", space.pk, reason)
    _crashed(space, space.running_revision, space.active_slot, observed=space.status, reason=reason)
    return True


def _crashed(space: Space, rev: Revision, slot: str, *, observed: str, reason: str) -> None:
    """Count one crash of `rev` on `slot`, then schedule its restart or end in RUNTIME_ERROR."""
    record_event(space.pk, "crash")
    client = logs.client()
    info, times, _ = _keys(space.pk)
    now = _now()
    if client.hget(info, "revision") != str(rev.pk).encode():
        client.delete(times)  # another revision: a fresh count
    pipe = client.pipeline()
    pipe.zremrangebyscore(times, "-inf", now - settings.CRASH_WINDOW)
    pipe.zadd(times, {repr(now): now})
    pipe.zcard(times)
    pipe.expire(times, _ttl())
    pipe.hset(info, mapping={"revision": rev.pk, "slot": slot, "why": reason})
    pipe.hdel(info, "due")
    pipe.expire(info, _ttl())
    count = pipe.execute()[2]
    tail = run_log_tail(space.pk)

    if count >= settings.CRASH_LIMIT:
        crashes = f"{count} times" if count > 1 else "once"
        message = f"The app crashed {crashes} within {_window()} and is not restarted again; the last time {reason}."
        if tail:
            message += f"\nLast log lines:\n{tail}"
        if space_transition(space, S.RUNTIME_ERROR, error=message, expected={observed}):
            client.delete(info, times)  # the owner's restart starts a fresh count
            _note(space.pk, f"{reason}; crashed {crashes} within {_window()}: not restarted again")
            get_backend().stop(container_name(space, slot), timeout=0)  # its output is copied
        return

    delay = backoff(count)
    note = (f"{RESTARTING} in {delay:g} s: {reason}. Crash {count} within {_window()}; "
            f"at {settings.CRASH_LIMIT} the space stops with RUNTIME_ERROR.")
    to = S.APP_STARTING if observed in (S.RUNNING, S.APP_STARTING) else observed
    if space_transition(space, to, error=note, expected={observed}):
        client.hset(info, "due", now + delay)
        _note(space.pk, f"{reason}; restarting in {delay:g} s")


# ----------------------------------------------------------------------------- restarting
def restarts_send_due() -> list[int]:
    """Send the restart task of every space whose crash restart is due; returns their ids."""
    client = logs.client()
    now = _now()
    pending = (Space.objects.filter(here(), status__in=(S.APP_STARTING, S.RUNNING_BUILDING),
                                    error__startswith=RESTARTING, running_revision__isnull=False)
               .values_list("pk", "running_revision_id", "active_slot"))
    sent = []
    for space_id, rev_id, slot in pending:
        info, _, lock = _keys(space_id)
        due = client.hget(info, "due")
        if due is None:
            if client.exists(lock):
                continue  # a restart is running
            # Redis lost the pending restart, or a restart died half-way: restart now.
            client.hset(info, mapping={"revision": rev_id, "slot": slot, "due": now})
            client.hsetnx(info, "why", "the app stopped")
            due = now
        if float(due) > now:
            continue
        if client.set(lock, 1, nx=True, ex=LOCK_SECONDS):

            jobs.send("spaces.tasks.restart_crashed_space_task", space_id)
            sent.append(space_id)
    return sent


def restart_crashed(*, space_id: int) -> None:
    """Restart a crashed space's revision on its slot (lifecycle queue; sent when due)."""
    client = logs.client()
    info, _, lock = _keys(space_id)
    due = client.hget(info, "due")
    # Claimed once: a duplicate (or a late redelivery, whose due time is a later crash's)
    # finds nothing to do.
    if due is None or float(due) > _now() + 1 or not client.hdel(info, "due"):
        return
    client.set(lock, 1, ex=LOCK_SECONDS)
    try:
        _restart(space_id, client.hgetall(info), keep_lock=lambda: client.expire(lock, LOCK_SECONDS))
    except BackendUnavailable as exc:
        # The engine is away: the beat sends the restart again later.
        log.warning("space %s: cannot restart now (%s)", space_id, exc)
        client.hset(info, "due", _now() + settings.CRASH_BACKOFF_MAX)
    finally:
        client.delete(lock)


def _restart(space_id: int, pending: dict[bytes, bytes], *, keep_lock) -> None:
    space = Space.objects.select_related("owner", "running_revision").filter(pk=space_id).first()
    if space is None:
        return
    rev, slot, observed = space.running_revision, space.active_slot, space.status
    if (observed not in (S.APP_STARTING, S.RUNNING_BUILDING) or not space.error.startswith(RESTARTING)
            or rev is None or pending.get(b"revision") != str(rev.pk).encode()
            or pending.get(b"slot") != slot.encode()):
        # Paused, deleted, restarted by its owner, a new revision: not ours to restart.
        log.info("space %s moved on (%s); no crash restart", space_id, observed)
        return
    why = (pending.get(b"why") or b"the app stopped").decode()
    backend = get_backend()
    name = container_name(space, slot)

    def still_wanted() -> bool:
        keep_lock()  # asked every 0.25 s while the app comes up
        return Space.objects.filter(pk=space_id, status=observed, running_revision_id=rev.pk, active_slot=slot,
                                    error__startswith=RESTARTING).exists()

    state = backend.state(name)
    if state is None or not state.running:
        ok, message = start_container(space, rev, slot, still_wanted=still_wanted, fresh_log=False)
        if not ok:
            if not still_wanted():
                return  # the space moved on while it started; start_container removed it
            state = backend.state(name)
            reason = exit_reason(state, memory=_memory(space)) if state is not None else message
            log.warning("space %s: the restart failed: %s", space_id, reason)
            _crashed(space, rev, slot, observed=observed, reason=reason)
            return
    stamp = datetime.now(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    to = S.RUNNING if observed == S.APP_STARTING else observed
    # If the space moved on while the app came up (paused, say), reconcile removes the
    # container if its new state does not want it.
    if space_transition(space, to, error=f"{RESTARTED} at {stamp}: {why}.", expected={observed}):
        _note(space_id, "restarted; the app answers again")
        record_event(space_id, "restart")
