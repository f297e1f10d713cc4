"""When Postgres or Redis blinks: 503 with Retry-After, never 500 (issue 9).

Three parts, used by the hub's settings, middleware, Celery app and error handlers:

* :func:`dependency_down` names the part (``"database"`` or ``"broker"``) when an exception is a
  lost or refused connection to Postgres or Redis (a restart, a failover), else None. Anything
  else (a bug, a bad query) stays a 500.
* :func:`unavailable_response` is the answer: 503, ``Retry-After``, the API's
  ``{"detail", "code": "unavailable"}`` body for API clients, and a styled "try again" page
  (``templates/503.html``, which needs neither the database nor the session) for browsers.
* A task sent while the broker is down, during a request that already saved its change, is
  not an error: the change is in the database, and reconciliation sends the task again
  (spaces/builds/leases.py sweeps queued revisions; spaces/lifecycle/reconcile.py lost starts, stops and
  deletes; every route each round). :class:`HubTask` records the miss on the request, and
  :class:`DependencyMiddleware` turns the request's 2xx answer into 202 Accepted with a
  ``deferred`` note saying so. Outside a request (workers, beat) a send fails as before.
"""
from __future__ import annotations

import contextvars
import json
import logging

import environ

from django.conf import settings
from django.db import InterfaceError as DbInterfaceError, OperationalError as DbOperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader

log = logging.getLogger(__name__)

# Set by DependencyMiddleware for the length of a request: a mutable dict, so a change made in
# a thread of sync_to_async is seen by the request's own context.
_request_state: contextvars.ContextVar[dict | None] = contextvars.ContextVar("demohub_request_state", default=None)

DEFERRED_NOTE = ("Saved. The task queue did not answer, so the work it starts (a build, a start, "
                 "a route change) is queued again within a minute by the hub's reconciliation.")


def _broker_errors() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError)


def dependency_down(exc: BaseException | None) -> str | None:
    """"database", "broker" or None: whether `exc` (or what caused it) is a lost connection."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (DbOperationalError, DbInterfaceError)):
            return "database"
        if isinstance(exc, _broker_errors()):
            return "broker"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


# Seconds a client is told to wait (Retry-After); settings.DEPENDENCY_RETRY_AFTER overrides it.
RETRY_AFTER = environ.Env().int("DEPENDENCY_RETRY_AFTER", default=5)


def retry_after() -> int:
    return int(getattr(settings, "DEPENDENCY_RETRY_AFTER", RETRY_AFTER))


def _wants_json(request) -> bool:
    path = request.path
    if path.startswith(("/api/", "/internal/")):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or ("text/html" not in accept and "*/*" not in accept and accept != "")


def unavailable_response(request, part: str) -> HttpResponse:
    """503 + Retry-After: the API body for API clients, the "try again" page for browsers."""
    seconds = retry_after()
    what = "database" if part == "database" else "task queue"
    detail = f"The hub's {what} is not answering right now (a restart?). Try again in {seconds} seconds."
    if _wants_json(request):
        resp = JsonResponse({"detail": detail, "code": "unavailable"}, status=503)
    else:
        # No request context: the page must not need the database, the session or the user.
        html = loader.render_to_string("503.html", {"detail": detail, "seconds": seconds})
        resp = HttpResponse(html, status=503)
    resp["Retry-After"] = str(seconds)
    resp["Cache-Control"] = "no-store"
    return resp


def server_error(request, *args, **kwargs) -> HttpResponse:
    """handler500: a lost database or broker connection is a 503 (the exception, noted by the
    middleware or still being handled on this thread); anything else the usual 500 page."""
    import sys

    from django.views.defaults import server_error as default_server_error

    part = request.META.get("demohub.dependency_down") or dependency_down(sys.exc_info()[1])
    if part:
        return unavailable_response(request, part)
    return default_server_error(request, *args, **kwargs)


def note_deferred(task_name: str, exc: BaseException) -> bool:
    """Called by HubTask when a send fails: True (swallow it) inside a request."""
    state = _request_state.get()
    if state is None:
        return False
    state["deferred"] = True
    log.warning("broker down: task %s not sent (%s); reconciliation sends it again", task_name, exc)
    return True


class DependencyMiddleware:
    """First in the chain: marks the request (so HubTask can defer a send), notes a lost
    connection raised by a view (for handler500 and async views), and answers 202 for a change
    saved while the broker was down."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        token = _request_state.set({"deferred": False})
        try:
            return self._finish(self.get_response(request))
        finally:
            _request_state.reset(token)

    async def __acall__(self, request):
        token = _request_state.set({"deferred": False})
        try:
            return self._finish(await self.get_response(request))
        finally:
            _request_state.reset(token)

    def process_exception(self, request, exception):
        part = dependency_down(exception)
        if part:
            request.META["demohub.dependency_down"] = part
            return unavailable_response(request, part)
        return None

    def _finish(self, response):
        state = _request_state.get()
        if not state or not state["deferred"] or not 200 <= response.status_code < 300:
            return response
        response.status_code = 202
        response.reason_phrase = "Accepted"
        if response.get("Content-Type", "").startswith("application/json") and not getattr(response, "streaming", False):
            try:
                body = json.loads(response.content or b"{}")
            except ValueError:
                body = None
            if isinstance(body, dict):
                body["deferred"] = DEFERRED_NOTE
                response.content = json.dumps(body).encode()
                if response.has_header("Content-Length"):   # set further in (CommonMiddleware)
                    response["Content-Length"] = str(len(response.content))
        response["X-Demohub-Deferred"] = "broker"
        return response


def _hub_task_base():
    from celery import Task

    class HubTask(Task):
        """Every Demohub task: a send that fails because the broker is down, inside a request
        that already saved its change, is noted (202) rather than raised; reconciliation sends
        it again. Outside a request it raises as before."""

        def apply_async(self, *args, **kwargs):
            try:
                return super().apply_async(*args, **kwargs)
            except _broker_errors() as exc:
                if note_deferred(self.name, exc):
                    return None
                raise

    return HubTask


HubTask = _hub_task_base()
