"""The checks behind GET /readyz (served by spaces/operations/api.py): whether this hub can
serve and run spaces now, for load balancers and operators.

200 when the database, the broker (Redis) and the container engine answer; otherwise 503 with
Retry-After, naming the failing part. It also says whether spaces run behind the host
firewall (README "Network isolation"). Public, so it says nothing more: no addresses, no
versions, no error texts.

The web process has no Docker socket (docker-compose.yml): the engine counts as answering
while the lifecycle worker's crash check (every CRASH_CHECK_INTERVAL seconds, spaces/lifecycle/health.py)
saw it answer within ENGINE_FRESH_SECONDS. So "engine" also means "a lifecycle worker runs".
"""
from __future__ import annotations

import time

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from runner import egress

RETRY_AFTER = 5


def _engine_key() -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:engine-seen"


def _fresh_seconds() -> int:
    return int(max(30, 10 * settings.CRASH_CHECK_INTERVAL))


def _redis() -> redis.Redis:
    # Short timeouts of its own: a probe must answer even while Redis hangs.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def engine_seen() -> None:
    """Called by the lifecycle worker each time the engine answered."""
    _redis().set(_engine_key(), int(time.time()), ex=_fresh_seconds())


def isolation() -> str:
    """"isolated": the firewall covers this installation; "unisolated": it does not, and the
    operator allowed spaces to run anyway (ALLOW_UNISOLATED); "refusing": it does not, so no
    space or build runs; "not-applicable": a runner backend other than the Docker engine's."""
    if not settings.RUNNER_BACKEND.endswith(".DockerBackend"):
        return "not-applicable"
    state = egress.isolation_state(settings.ISOLATION_STATE_FILE,
                                   [settings.SPACES_SUBNET, settings.BUILDS_SUBNET])
    if state.isolated:
        return "isolated"
    return "unisolated" if settings.ALLOW_UNISOLATED else "refusing"


def queue_answers() -> bool:
    """Whether Redis (the broker and the live logs) answers now, within the probe's timeouts."""
    try:
        return bool(_redis().ping())
    except redis.RedisError:
        return False


def checks() -> dict[str, str]:
    result = {"database": "ok", "broker": "ok", "engine": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        result["database"] = "failing"
    try:
        client = _redis()
        client.ping()
        if client.get(_engine_key()) is None:
            result["engine"] = "failing"
    except redis.RedisError:
        result["broker"] = "failing"
        result["engine"] = "unknown"  # its heartbeat lives in Redis
    return result
