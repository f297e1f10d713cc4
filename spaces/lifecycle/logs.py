"""Live logs in Redis: append-only byte streams that followers read from an offset.

Builds append their output here as it comes; the run log of a space's current container is
copied here by a periodic task. A reader asks for the bytes after an absolute offset, which is
what the event stream sends as `id:` so a client resumes with Last-Event-ID. When a stream
passes its cap the oldest bytes are dropped and `base` (the offset of the first kept byte)
moves on, so offsets stay absolute.
"""
from __future__ import annotations

import contextlib
from functools import cache

import redis
from django.conf import settings

TTL = 7 * 24 * 3600


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@contextlib.contextmanager
def held_lock(key: str, *, timeout: float, wait: float, busy: str):
    """A Redis lock on `key` (expires after `timeout` s unless released; waits up to `wait` s
    for it), across worker processes. Raises TimeoutError(`busy`) when it stays taken."""
    lock = client().lock(key, timeout=timeout, blocking_timeout=wait)
    if not lock.acquire():
        raise TimeoutError(busy)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            lock.release()


def _key(kind: str, ident: int) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:log:{kind}:{ident}"


def build_key(revision_id: int) -> str:
    return _key("build", revision_id)


def run_key(space_id: int) -> str:
    return _key("run", space_id)


_APPEND = """
local data = KEYS[1]
local base = KEYS[2]
redis.call('APPEND', data, ARGV[1])
local size = redis.call('STRLEN', data)
local cap = tonumber(ARGV[2])
if size > cap then
  local drop = size - cap
  local kept = redis.call('GETRANGE', data, drop, -1)
  redis.call('SET', data, kept)
  redis.call('INCRBY', base, drop)
end
redis.call('EXPIRE', data, ARGV[3])
redis.call('EXPIRE', base, ARGV[3])
return redis.call('GET', base)
"""


def append(key: str, text: str, *, cap: int) -> None:
    if text:
        client().eval(_APPEND, 2, key, key + ":base", text.encode("utf-8", "replace"), cap, TTL)


def reset(key: str) -> None:
    client().delete(key, key + ":base")


def read(key: str, offset: int = 0) -> tuple[bytes, int]:
    """Bytes after absolute `offset`, and the absolute offset after them."""
    pipe = client().pipeline()
    pipe.get(key + ":base")
    pipe.strlen(key)
    base_raw, size = pipe.execute()
    base = int(base_raw or 0)
    start = max(offset - base, 0)
    if start >= size:
        return b"", base + size
    data = client().getrange(key, start, -1)
    return data, base + start + len(data)


def exists(key: str) -> bool:
    return bool(client().exists(key))
