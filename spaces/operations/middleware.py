"""The outermost middleware: a request id for every request, and the hub's HTTP metrics.

The id comes from the proxy's X-Request-ID when it looks like one (deploy/nginx sets it on
every request it forwards) or is made here; it is bound for the request's log lines, sent back
in the answer's X-Request-ID, and carried into the Celery tasks the request sends.

Sync and async, like the rest of the chain (hub/middleware.py): an async request never moves
to a thread for this.
"""
from __future__ import annotations

import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from structlog.contextvars import bound_contextvars

from . import metrics, requestids


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else "unmatched"


log = logging.getLogger("demohub.requests")


def _observe(request, status: int, started: float) -> None:
    """Count the request, and log it: by route pattern, never by path (paths may carry share-link
    tokens and tickets; the request id finds the request's other lines)."""
    took = time.perf_counter() - started
    route, method = _route(request), metrics.method_label(request.method)
    metrics.http_requests.labels(route, method, metrics.status_class(status)).inc()
    metrics.http_latency.labels(route, method).observe(took)
    log.info("request", extra={"method": method, "route": route, "status": status,
                               "duration_ms": round(took * 1000, 1)})


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        rid = requestids.accept(request.META.get(requestids.META_KEY))
        request.request_id = rid
        started = time.perf_counter()
        with bound_contextvars(request_id=rid):
            response = self.get_response(request)
            response[requestids.HEADER] = rid
            _observe(request, response.status_code, started)
        return response

    async def __acall__(self, request):
        rid = requestids.accept(request.META.get(requestids.META_KEY))
        request.request_id = rid
        started = time.perf_counter()
        with bound_contextvars(request_id=rid):
            response = await self.get_response(request)
            response[requestids.HEADER] = rid
            _observe(request, response.status_code, started)
        return response
