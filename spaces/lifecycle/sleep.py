"""Sleep and wake: idle spaces are frozen, then stopped; the next visitor wakes them.

Two tiers, both shown as SLEEPING (design.md §2; "freeze" is the engine's pause, "pause" only the
owner's PAUSED): **frozen** after `SPACE_FREEZE_AFTER` idle seconds (the app's processes are
suspended, its memory stays, waking is an unfreeze of about 0.05 s; frozen spaces hold at most
`SPACE_FROZEN_MEMORY_LIMIT` together, past it the longest idle are stopped), and **stopped**
after the space's `sleep_after` idle seconds (the container is removed, its memory freed).

Idle is measured at the proxy (`activity_collect`): nginx logs each finished request to
``<proxy dir>/activity.log``; an upstream connection open now (event stream, websocket) counts
for `SPACE_OPEN_CONNECTION_CREDIT` s after it opened (forgotten tabs do not keep it awake).

A sleeping space's route sends each request first to the hub's wake check (`proxy_wake` in
wake_gate.py), which starts the wake and holds the request until the app answers, then passes it on. Browsers that would wait long get the hub's
"waking up" page instead; API clients are held up to `SPACE_WAKE_HOLD` seconds, then get 503.

Sleeping, waking and the memory cap run under one lock per space (a wake never meets a half-done
freeze), on the worker of the space's node (spaces/nodes).
"""
from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from runner import connections
from runner.backends.base import parse_bytes
from runner.exceptions import BackendUnavailable
from spaces.access.proxy_gate import label_from_host
from spaces.analytics.services import record_event
from spaces.lifecycle import claims, logs, preview_runs
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import container_name, slot_upstream, space_app_port, space_publish_route
from spaces.lifecycle.starts import start_container
from spaces.nodes import placement
from spaces.nodes.selectors import here
from spaces.records import jobs
from spaces.records.models import Preview, Space
from spaces.records.services import space_transition
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
S = SpaceStatus
FROZEN, STOPPED = "frozen", "stopped"


def _key(*parts) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:sleep:" + ":".join(str(p) for p in parts)


@contextlib.contextmanager
def space_lock(space_id: int, *, wait: float = 120):
    """One sleeper or waker per space at a time (across worker processes)."""
    with logs.held_lock(_key("lock", space_id), timeout=600, wait=wait,
                        busy=f"space {space_id} is locked by another sleep or wake"):
        yield


# ----------------------------------------------------------------------------- activity
def activity_file():
    return settings.PROXY_ROUTES_DIR.parent / "activity.log"


def activity_collect() -> dict[str, float]:
    """Label -> time of the last request that ended, from the proxy's activity log.

    The log is read and emptied (nginx appends with O_APPEND, so it goes on at the new end);
    a line written between the read and the truncation is lost, which only loses one mark
    of activity of a space that was just active anyway.
    """
    path = activity_file()
    try:
        with open(path, "r+", encoding="utf-8", errors="replace") as fh:
            data = fh.read()
            fh.truncate(0)
    except FileNotFoundError:
        return {}
    last: dict[str, float] = {}
    for line in data.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            ended = float(parts[0])
        except ValueError:
            continue
        label = label_from_host(parts[2])
        if label:
            last[label] = max(last.get(label, 0.0), ended)
    return last


def open_connections(upstreams: dict[str, str]) -> dict[str, set[str]]:
    """Label -> ids of the open TCP connections to its app (given app address -> label).

    Read from the kernel's table of this network namespace, which is the proxy's where it runs
    on the host network (docker-compose.yml, the test stacks); elsewhere this finds nothing and
    only finished requests count as activity.
    """
    found: dict[str, set[str]] = {}
    for peer, conn in connections.open_connections():
        label = upstreams.get(peer)
        if label:
            found.setdefault(label, set()).add(conn)
    return found


def connection_activity(upstreams: dict[str, str], now: float) -> dict[str, float]:
    """Label -> until when its open connections count as activity (bounded credit)."""
    redis = logs.client()
    key = _key("connections")
    seen = {k.decode(): float(v) for k, v in redis.hgetall(key).items()}
    current = open_connections(upstreams)
    result: dict[str, float] = {}
    alive = set()
    for label, conns in current.items():
        for conn in conns:
            alive.add(conn)
            first = seen.get(conn)
            if first is None:
                first = now
                redis.hset(key, conn, now)
            result[label] = max(result.get(label, 0.0), min(now, first + settings.SPACE_OPEN_CONNECTION_CREDIT))
    gone = [c for c in seen if c not in alive]
    if gone:
        redis.hdel(key, *gone)
    return result


# ----------------------------------------------------------------------------- deciding
def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=dt_timezone.utc)


def _freeze_after(space: Space) -> int:
    return min(settings.SPACE_FREEZE_AFTER, space.sleep_after)


def sleep_check() -> dict[str, list[int]]:
    """The beat's round: record activity, then freeze or stop idle spaces, then hold the
    frozen-memory cap. Returns what it did (for logs and tests)."""
    # One round at a time: rounds overlapping (a slow stop, the beat firing every second) would
    # each hold a lifecycle worker and act on the same spaces. The lock outlives a round that
    # hits its time limit (spaces/records/jobs.py) only until its own timeout.
    round_lock = logs.client().lock(_key("check"), timeout=660, blocking=False)
    if not round_lock.acquire():
        return {"frozen": [], "stopped": [], "capped": [], "skipped": [1]}
    try:
        return _sleep_check()
    finally:
        with contextlib.suppress(Exception):
            round_lock.release()


def _sleep_check() -> dict[str, list[int]]:
    now = time.time()
    spaces = list(Space.objects.select_related("owner", "node_a", "node_b").filter(
        Q(status__in=SERVING) | Q(status=S.SLEEPING, sleep_mode=FROZEN)))
    upstreams = {slot_upstream(s, s.active_slot, int(space_app_port(s))): s.label for s in spaces
                 if s.sdk != "static"} | preview_runs.preview_upstreams()
    requests = activity_collect()
    connections = connection_activity(upstreams, now)
    local = set(Space.objects.filter(here(), pk__in=[s.pk for s in spaces]).values_list("pk", flat=True))
    done: dict[str, list[int]] = {"frozen": [], "stopped": [], "capped": []}
    for space in spaces:
        seen = max(requests.get(space.label, 0.0), connections.get(space.label, 0.0))
        if seen and (space.last_active_at is None or seen > space.last_active_at.timestamp()):
            Space.objects.filter(pk=space.pk).update(last_active_at=_ts(seen))
            space.last_active_at = _ts(seen)
        if space.sleep_after == -1 or space.sdk == "static":
            continue
        last = space.last_active_at.timestamp() if space.last_active_at else now
        idle = now - last
        # The decision is from this round's read; space_sleep checks again on the locked row
        # that nobody was seen since (a visitor may have woken it a moment ago).
        if space.status in (S.RUNNING, S.SLEEPING) and idle >= space.sleep_after:
            mode = STOPPED
        elif space.status == S.RUNNING and idle >= _freeze_after(space):
            mode = FROZEN
        else:
            continue
        if _sleep(space, mode, last, local):
            done[mode].append(space.pk)
    done["capped"] = frozen_memory_cap()
    seen = {label: max(requests.get(label, 0.0), connections.get(label, 0.0)) for label in {*requests, *connections}}
    if slept := preview_runs.previews_idle(now, seen):   # branch previews: stopped when idle
        done["previews"] = slept
    if any(done.values()):
        log.info("sleep check: %s", done)
    return done


def _sleep(space: Space, mode: str, idle_since: float, local: set[int]) -> bool:
    """Put `space` to sleep here, or on the node it runs on (spaces/nodes: its engine holds it)."""
    if space.pk in local:
        return space_sleep(space.pk, mode, idle_since=idle_since)
    jobs.send("spaces.tasks.sleep_space_task", space.pk, mode, idle_since)
    return True


def frozen_memory_cap() -> list[int]:
    """Stop the longest-idle frozen spaces on this engine while they hold more than the limit."""
    limit = parse_bytes(settings.SPACE_FROZEN_MEMORY_LIMIT)
    frozen = list(Space.objects.filter(here(), status=S.SLEEPING, sleep_mode=FROZEN)
                  .order_by("last_active_at", "pk"))
    backend = get_backend()
    try:
        held = {s.pk: backend.memory_usage(container_name(s, s.active_slot)) or 0 for s in frozen}
    except BackendUnavailable:
        return []   # the engine is away (restarting): hold the cap at the next check
    total = sum(held.values())
    stopped = []
    for space in frozen:
        if total <= limit:
            break
        if space_sleep(space.pk, STOPPED):
            stopped.append(space.pk)
            total -= held[space.pk]
    return stopped


# ----------------------------------------------------------------------------- sleeping
def space_sleep(space_id: int, mode: str, *, idle_since: float | None = None) -> bool:
    """Freeze (RUNNING -> SLEEPING frozen) or stop (RUNNING or frozen -> SLEEPING stopped).

    With `idle_since` (the last activity the caller saw), nothing happens if the space has
    been active since. Order matters: `sleep_mode` and the route change first, so once the
    proxy applies it every request asks the hub to wake the space (and waits: see
    the wake gate) instead of meeting a frozen or stopped app; then the engine freezes or stops
    the container; only then does the status say SLEEPING, which is therefore never shown
    while the app still answers directly.
    """
    with space_lock(space_id):
        space = Space.objects.select_related("owner", "running_revision").filter(pk=space_id).first()
        if space is None or space.running_revision_id is None:
            return False
        if idle_since is not None and space.last_active_at and space.last_active_at.timestamp() > idle_since + 0.001:
            return False   # woken or visited since the caller looked
        if space.status not in (S.RUNNING, S.SLEEPING) or space.sleep_mode == STOPPED \
                or (mode == FROZEN and space.status != S.RUNNING):
            return False
        name = container_name(space, space.active_slot)
        backend = get_backend()
        was_running = space.status == S.RUNNING
        if was_running:
            space_publish_route(space_id=space.pk, sleep_mode=mode)
        if mode == FROZEN:
            # Nothing to freeze (the app just exited): it sleeps stopped; the next visitor starts it.
            mode = FROZEN if backend.freeze(name) else STOPPED
        else:
            backend.stop(name, timeout=10)
        if not space_transition(space, S.SLEEPING, sleep_mode=mode):
            # The owner paused or deleted it meanwhile; their action owns the container now.
            return False
        if was_running:
            record_event(space.pk, "sleep")   # analytics: frozen, then stopped, is one sleep
        return True


# ----------------------------------------------------------------------------- waking
class NoRoom(Exception):
    """Every running space is active and the running-space cap is reached."""


def running_count() -> int:
    """Running spaces and running container previews (spaces/lifecycle/preview_runs.py)."""
    return (Space.objects.filter(status__in=SERVING).count()
            + Preview.objects.filter(status=Preview.Status.RUNNING).exclude(space__sdk="static").count())


def _eviction_candidate(exclude: int) -> Space | None:
    active_since = timezone.now().timestamp() - settings.SPACE_ACTIVE_WINDOW
    return (Space.objects.filter(here(), status=S.RUNNING).exclude(pk=exclude).exclude(sdk="static")
            .filter(Q(last_active_at__isnull=True) | Q(last_active_at__lt=_ts(active_since)))
            .order_by("last_active_at", "pk").first())


def has_room(space_id: int) -> bool:
    """Whether `space_id` may run now: under the cap, or some running space is idle enough to
    be put to sleep for it."""
    cap = settings.SPACE_MAX_RUNNING
    return not cap or running_count() < cap or _eviction_candidate(space_id) is not None


def make_room(space_id: int) -> None:
    """Put the longest-idle running spaces to sleep until `space_id` fits under the cap."""
    cap = settings.SPACE_MAX_RUNNING
    while cap and running_count() >= cap:
        victim = _eviction_candidate(space_id)
        if victim is None:
            raise NoRoom("every running space is active")
        space_sleep(victim.pk, STOPPED)


def wake_marks_clear(space_id: int) -> None:
    """Forget a dead waker's sleep lock and "waking" mark, so the next visitor need not wait
    for them to expire."""
    logs.client().delete(_key("lock", space_id), _key("waking", space_id))


def wake_requested(space_id: int) -> bool:
    """Ask the lifecycle worker to wake the space, once (returns whether this call asked)."""

    # The mark holds when the wake was asked for: the wake's latency (analytics) counts from it.
    if not logs.client().set(_key("waking", space_id), repr(time.time()), nx=True, ex=120):
        return False
    jobs.send("spaces.tasks.wake_space_task", space_id, priority=0)
    return True


def _sleeping_space(space_id: int) -> Space | None:
    """The space, locked by the caller, if it still sleeps with a revision to wake into."""
    space = (Space.objects.select_related("owner", "running_revision")
             .filter(pk=space_id, status=S.SLEEPING).first())
    return space if space is not None and space.running_revision is not None else None


def space_wake(space_id: int) -> None:
    """Frozen: unfreeze (fast, on the lifecycle queue). Stopped (or a frozen container that is
    gone): hand the start to the starts queue (space_wake_start), whose waits hold up nothing
    but other starts."""
    handed_over = False
    try:
        with space_lock(space_id):
            space = _sleeping_space(space_id)
            if space is None:
                return
            name = container_name(space, space.active_slot)
            if space.sleep_mode == FROZEN and get_backend().unfreeze(name):
                space_transition(space, S.RUNNING, sleep_mode="", last_active_at=timezone.now())
                space_publish_route(space_id=space.pk)
                _record_wake(space.pk)
                return

        jobs.send("spaces.tasks.wake_start_space_task", space_id, priority=0)
        handed_over = True   # the start task ends the "waking" mark
    finally:
        if not handed_over:
            logs.client().delete(_key("waking", space_id))


def space_wake_start(space_id: int, *, forwarded: bool = False) -> None:
    """Start a stopped space's running revision again on its slot and wait until it is healthy
    (the starts queue), on the node placement chooses (spaces/nodes: its own while it fits)."""
    elsewhere = False
    try:
        with space_lock(space_id):
            space = _sleeping_space(space_id)
            if space is None:
                return
            try:
                make_room(space.pk)
            except NoRoom:
                return   # the visitor gets 429; the space stays asleep
            # Under the space's start claim (spaces/lifecycle/reconcile.py): a start of a new revision that
            # runs now goes first, and a wake whose worker dies is put back to sleep.
            with claims.start_claim(space.pk) as claim:
                if claim is None:
                    return
                decision = placement.space_place(space.pk)
                space.tier = decision.tier.name
                if decision.waiting:  # the lost-work sweep starts it once a node fits
                    space_transition(space, S.APP_STARTING, error=decision.waiting, sleep_mode="", node=None)
                elif not decision.here:
                    elsewhere = not forwarded  # handed on once at most (NODE_NAME names the worker's node)
                if decision.waiting or not decision.here or not space_transition(space, S.APP_STARTING):
                    return
                Space.objects.filter(pk=space.pk).update(**{f"node_{space.active_slot}": decision.node})
                ok, message = start_container(space, space.running_revision, space.active_slot)
                if ok:
                    space_transition(space, S.RUNNING, sleep_mode="", error="",
                                              last_active_at=timezone.now())
                    _record_wake(space.pk)
                else:
                    space_transition(space, S.RUNTIME_ERROR, sleep_mode="", error=message)
                space_publish_route(space_id=space.pk)
    finally:
        if elsewhere:  # to the chosen node's starts queue (spaces/nodes/routing.py), the mark kept
            jobs.send("spaces.tasks.wake_start_space_task", space_id, kwargs={"forwarded": True}, priority=0)
        else:
            logs.client().delete(_key("waking", space_id))


def _record_wake(space_id: int) -> None:
    """Analytics: one wake, timed from when it was asked for (the "waking" mark) to now."""
    asked = None
    with contextlib.suppress(Exception):
        asked = float(logs.client().get(_key("waking", space_id)) or 0) or None
    record_event(space_id, "wake", duration_ms=None if asked is None else (time.time() - asked) * 1000)
