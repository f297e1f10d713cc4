"""The request id: one per request, from the proxy's X-Request-ID or made here.

It lives in structlog's context variables, so every log line of the request carries it
(logconfig.py), Celery tasks sent while it is bound carry it on (celery_hooks.py), and code in
lower rooms reads it with `structlog.contextvars.get_contextvars()` without importing this room.
"""
from __future__ import annotations

import re
import uuid

import structlog

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
CELERY_HEADER = "demohub_request_id"
KEY = "request_id"
# What a caller may hand us: short, no spaces or quotes (it goes into log lines and headers).
_VALID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def new() -> str:
    return uuid.uuid4().hex


def accept(value: str | None) -> str:
    """The caller's id if it looks like one, else a fresh one."""
    if value and _VALID.fullmatch(value):
        return value
    return new()


def current() -> str | None:
    return structlog.contextvars.get_contextvars().get(KEY)
