"""The start claim: one start of a space at a time, across workers.

A start (a new revision, a restart, a wake from stopped) holds a lease in Redis,
`demohub:<instance>:start:<space id>`, whose TTL (START_LEASE_SECONDS) a thread of the holder
renews. A second start of the same space meets StartBusy and is sent again a little later; a
dead holder's lease expires and the reconcile round (reconcile.py) finishes what it owed.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator

import redis
from django.conf import settings

from spaces.lifecycle import logs

log = logging.getLogger(__name__)


class StartBusy(Exception):
    """Another start of the space holds its claim; the task tries again later."""


def _key(*parts) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:" + ":".join(str(p) for p in parts)


def _claim_key(space_id: int) -> str:
    return _key("start", space_id)


def _lease_ms() -> int:
    return int(settings.START_LEASE_SECONDS * 1000)


# ----------------------------------------------------------------------------- start claims
# Renew our claim; take it back if Redis lost it (restarted without its data); 0 if another
# start holds it now.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not held then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class StartClaim:
    """One start's claim on its space, renewed by a thread while the start runs. `lost` is set
    if another start took it over (this one stopped renewing for a whole lease: a hung worker)."""

    def __init__(self, space_id: int):
        self.space_id = space_id
        self.key = _claim_key(space_id)
        self.token = uuid.uuid4().hex
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(logs.client().set(self.key, self.token, nx=True, px=_lease_ms()))

    def renew(self) -> bool:
        return bool(logs.client().eval(_RENEW, 1, self.key, self.token, _lease_ms()))

    def release(self) -> None:
        logs.client().eval(_RELEASE, 1, self.key, self.token)

    def _beat(self) -> None:
        while not self._done.wait(settings.START_LEASE_SECONDS / 4):
            try:
                if not self.renew():
                    self.lost.set()
                    log.warning("space %s: another start took over the start claim", self.space_id)
                    return
            except redis.RedisError as exc:
                # Redis is away (restarting): the next beat takes the claim back if it was lost.
                log.warning("space %s: cannot renew the start claim now (%s)", self.space_id, exc)

    def __enter__(self) -> StartClaim:
        self._thread = threading.Thread(target=self._beat, name=f"start-claim-{self.space_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(redis.RedisError):
            self.release()


@contextlib.contextmanager
def start_claim(space_id: int) -> Iterator[StartClaim | None]:
    """Hold the space's start claim for the block, or None when another start holds it."""
    claim = StartClaim(space_id)
    if not claim.acquire():
        yield None
        return
    with claim:
        yield claim


def start_in_progress(space_id: int) -> bool:
    return bool(logs.client().exists(_claim_key(space_id)))


# ----------------------------------------------------------------------------- the sweep
