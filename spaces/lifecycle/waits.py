"""Requests that wait: a visitor held while a sleeping space wakes, a follower of a live log.

Both may last long (SPACE_WAKE_HOLD s, an hour), and there may be many of them, so neither may
hold a database connection while it waits (README "Security: waiting requests are bounded";
issue 15, finding 8). Before, each held request kept its own Postgres connection, and about
100 of them took every connection the hub has: every page answered 500.

* **One reader per process** (`Board`): every waiting request of this web process asks the
  board for the rows it waits on (a space's status, a revision's), and the board reads them
  all with one query per tick, in one thread with one connection, which it closes once
  nobody waits. A thousand waiters cost one connection, not a thousand.
* **Caps** (`hold`): concurrent holds are counted in Redis per space and per caller (a user,
  or the client address for anonymous visitors), across every web process. Over a cap the
  request is answered at once (503 or 429 with Retry-After) instead of waiting.

The request's own short reads before it waits (who asks, may they see the space) run on the
request's thread as usual; `release_connection` then closes that thread's connection, so the
wait itself holds none.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import Error as DbError
from django.db import connection
from redis import RedisError

from spaces.lifecycle import logs
from spaces.records.models import Preview, Revision, Space

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05   # how often the board reads while anybody waits (wake latency adds up to this)


# ----------------------------------------------------------------------------- the connection
def _close_unless_atomic() -> None:
    # Never end a caller's transaction (unit tests run the whole request inside theirs).
    if not connection.in_atomic_block:
        connection.close()


async def release_connection() -> None:
    """Close the database connection of the request's own thread (the thread-sensitive one the
    request's short reads ran on): what follows only waits."""
    await sync_to_async(_close_unless_atomic)()


# ----------------------------------------------------------------------------- the board
def _read_rows(keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict | None]:
    """The rows the waiters want, one query per kind. A row that is gone reads as None."""
    found: dict[tuple[str, int], dict | None] = {key: None for key in keys}
    space_ids = [ident for kind, ident in keys if kind == "space"]
    revision_ids = [ident for kind, ident in keys if kind == "revision"]
    preview_ids = [ident for kind, ident in keys if kind == "preview"]
    for row in Preview.objects.filter(pk__in=preview_ids).values("pk", "status", "error") if preview_ids else ():
        found[("preview", row.pop("pk"))] = row
    if space_ids:
        for row in Space.objects.filter(pk__in=space_ids).values("pk", "status", "sleep_mode", "error"):
            found[("space", row.pop("pk"))] = row
    if revision_ids:
        for row in Revision.objects.filter(pk__in=revision_ids).values(
                "pk", "status", "number", "error", "space__status"):
            ident = row.pop("pk")
            row["space_status"] = row.pop("space__status")
            row["final"] = row["status"] in Revision.FINAL_STATES
            found[("revision", ident)] = row
    return found


class Board:
    """The latest rows of everything this event loop's requests wait on (see the module doc)."""

    def __init__(self) -> None:
        self._watchers: dict[tuple[str, int], int] = {}
        self._rows: dict[tuple[str, int], dict | None] = {}
        self._generation = 0          # completed reads
        self._reading = False
        self._ticked = asyncio.Event()
        self._task: asyncio.Task | None = None
        # One thread, so one connection, kept open between ticks while anybody waits.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demohub-waits")
        self._close = sync_to_async(_close_unless_atomic, thread_sensitive=False, executor=self._executor)

    @contextlib.asynccontextmanager
    async def watching(self, kind: str, ident: int):
        key = (kind, ident)
        self._watchers[key] = self._watchers.get(key, 0) + 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield lambda: self._fresh(key)
        finally:
            left = self._watchers.get(key, 1) - 1
            if left:
                self._watchers[key] = left
            else:
                self._watchers.pop(key, None)
            if not self._watchers:
                # The last one: the connection goes back now, not at the board's next tick
                # (which never comes if this event loop ends with the request, as in tests).
                with contextlib.suppress(Exception):
                    await self._close()

    async def _fresh(self, key: tuple[str, int]) -> dict | None:
        """The row as read by a tick that began after this call."""
        wanted = self._generation + (2 if self._reading else 1)
        while self._generation < wanted:
            await self._ticked.wait()
        return self._rows.get(key)

    async def _run(self) -> None:
        read = sync_to_async(self._read, thread_sensitive=False, executor=self._executor)
        while True:
            if not self._watchers:
                with contextlib.suppress(Exception):
                    await self._close()     # nobody waits: give the connection back
                if not self._watchers:      # nobody came meanwhile (no await from here on)
                    return
            self._reading = True
            try:
                self._rows = await read(list(self._watchers))
            except Exception as exc:
                # The database is away: no tick, so waiters learn nothing wrong (a row read as
                # gone); they keep waiting until their own deadline, streams send keepalives.
                log.warning("waiting requests: cannot read the database (%s)", exc)
                await asyncio.sleep(0.5)
                continue
            finally:
                self._reading = False
            self._generation += 1
            ticked, self._ticked = self._ticked, asyncio.Event()
            ticked.set()
            await asyncio.sleep(TICK_SECONDS)

    @staticmethod
    def _read(keys):
        try:
            return _read_rows(keys)
        except DbError:
            _close_unless_atomic()   # a broken connection: the next tick opens a new one
            raise


_boards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Board] = weakref.WeakKeyDictionary()


def board() -> Board:
    """This event loop's board (uvicorn runs one loop per process)."""
    loop = asyncio.get_running_loop()
    found = _boards.get(loop)
    if found is None:
        found = _boards[loop] = Board()
    return found


# ----------------------------------------------------------------------------- the caps
class HoldRefused(Exception):
    """Too many requests wait already (on this space, or from this caller)."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


def _key(kind: str, scope: str) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:holds:{kind}:{scope}"


def _enter(kind: str, scopes: dict[str, tuple[str, int]], member: str, longest: float) -> str | None:
    """Count one more hold in each scope; the name of the first scope over its cap, if any (then
    nothing is counted). Members carry their own end time, so a process that dies holding them
    leaves nothing behind for longer than `longest`."""
    client = logs.client()
    now = time.time()
    pipe = client.pipeline()
    for scope, _ in scopes.values():
        key = _key(kind, scope)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {member: now + longest})
        pipe.zcard(key)
        pipe.expire(key, int(longest) + 60)
    counts = pipe.execute()[2::4]
    for (name, (_, cap)), count in zip(scopes.items(), counts):
        if cap and count > cap:
            _leave(kind, scopes, member)
            return name
    return None


def _leave(kind: str, scopes: dict[str, tuple[str, int]], member: str) -> None:
    pipe = logs.client().pipeline()
    for scope, _ in scopes.values():
        pipe.zrem(_key(kind, scope), member)
    pipe.execute()


async def hold_enter(kind: str, *, scopes: dict[str, tuple[str, int]], longest: float, what: str):
    """Count this request among those waiting for `kind`; returns a (sync, idempotent) release.

    `scopes` maps a name for messages ("space", "user") to (the scope's id, its cap; 0: none).
    Raises HoldRefused over a cap, and when Redis cannot count (then nothing is bounded).
    """
    member = uuid.uuid4().hex
    try:
        over = await sync_to_async(_enter, thread_sensitive=False)(kind, scopes, member, longest)
    except RedisError as exc:
        raise HoldRefused(f"The hub cannot take more {what} right now; try again shortly.",
                          code="unavailable") from exc
    if over is not None:
        raise HoldRefused(f"Too many {what} are open for this {over} already "
                          f"(at most {scopes[over][1]}); close some or try again shortly.", code="too_many_waiting")

    def release() -> None:
        with contextlib.suppress(RedisError):
            _leave(kind, scopes, member)

    return release


@contextlib.asynccontextmanager
async def hold(kind: str, *, scopes: dict[str, tuple[str, int]], longest: float, what: str):
    """hold_enter for the duration of a block."""
    release = await hold_enter(kind, scopes=scopes, longest=longest, what=what)
    try:
        yield
    finally:
        # Shielded: a client that leaves cancels the request's task, and the count must still drop.
        await asyncio.shield(sync_to_async(release, thread_sensitive=False)())
