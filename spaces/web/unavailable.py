"""503 with Retry-After, never 500, when Postgres or Redis (cache, broker) does not answer.

For the endpoints of the rooms of issue 14 (webhooks, embeds): API views mix in
`ApiAnswers503WhenDown`, HTML views and the badge take `@answers_503_when_down`.
"""
from __future__ import annotations

import functools
import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

DOWN = (DatabaseError, RedisError, BrokerError)
RETRY_AFTER = "5"
DETAIL = "The hub's database or queue does not answer right now; try again shortly."


def unavailable(*, json: bool) -> HttpResponse:
    if json:
        resp = JsonResponse({"detail": DETAIL, "code": "unavailable"}, status=503)
    else:
        resp = HttpResponse(DETAIL, status=503, content_type="text/plain; charset=utf-8")
    resp["Retry-After"] = RETRY_AFTER
    resp["Cache-Control"] = "no-store"
    return resp


def answers_503_when_down(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except DOWN as exc:
            log.warning("%s: %s does not answer: %s", request.path, type(exc).__name__, exc)
            return unavailable(json=False)

    return wrapped


class ApiAnswers503WhenDown:
    """A DRF APIView mixin: authentication, the access check and the view body alike."""

    def handle_exception(self, exc):
        if isinstance(exc, DOWN):
            log.warning("%s: %s does not answer: %s", self.request.path, type(exc).__name__, exc)
            return unavailable(json=True)
        return super().handle_exception(exc)
