"""The proxy's callback into the hub for hosts it cannot serve itself.

nginx sends here (with the shared proxy key) every request for an unknown host, and every
request whose space container does not answer. The answer follows design.md §3: a host that
does not exist and a private host the caller may not see answer the same way (anonymous
browser: the hub's login page; anonymous API call: 401; a known user: 404); a visible space
that is not serving gets a status page (browsers) or 503 with Retry-After (API clients).
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.utils.translation import gettext_noop  # page text, translated in spaces/unavailable.html

from spaces.access.proxy_gate import (
    hidden_answer,
    host_target,
    label_from_host,
    proxy_auth,
    proxy_key_ok,
    proxy_role,
    proxy_session,
    token_user,
    wants_json,
)
from spaces.access.selectors import Role
from spaces.lifecycle import health, sleep
from spaces.lifecycle.wake_gate import proxy_wake
from spaces.records.models import Preview
from spaces.records.status import SpaceStatus

S = SpaceStatus


# The proxy's access check and ticket exchange for private spaces (spaces/access/proxy_gate.py).
proxy_auth_view = csrf_exempt(proxy_auth)
proxy_session_view = csrf_exempt(proxy_session)
# A sleeping space's requests wait here while it wakes (async: holding one costs no thread).
proxy_wake_view = csrf_exempt(proxy_wake)


@csrf_exempt
@xframe_options_exempt  # the status page shows inside the hub's iframe; CSP below limits who frames it
def proxy_fallback(request):
    if not proxy_key_ok(request):
        return JsonResponse({"detail": "Forbidden.", "code": "forbidden"}, status=403)
    host = request.headers.get("X-Demohub-Host", "")
    uri = request.headers.get("X-Demohub-Uri", "/")
    space, preview = host_target(host)
    role, user = proxy_role(request, space, preview) if space is not None else (Role.NONE, token_user(request))
    if space is None or role < Role.PUBLIC:
        return hidden_answer(request, host=host, uri=uri, user=user, label=label_from_host(host))
    if preview is not None:
        return _answer(request, uri, space, status=503, retry_after="5", code="unavailable",
                       message=PREVIEW_MESSAGES.get(preview.status, gettext_noop("is not answering right now.")))

    waking = request.headers.get("X-Demohub-Reason") == "waking" and space.sleep_mode != ""
    if waking and space.status == S.SLEEPING and not sleep.has_room(space.pk):
        # The running-space cap is reached and every running space is in use right now.
        return _answer(request, uri, space, status=429, retry_after="30", code="busy",
                       message=gettext_noop("cannot wake up right now: the hub runs as many apps as it may and all "
                                  "of them are in use. Try again in a minute."))
    retry_after = "5" if space.status in (S.BUILDING, S.RUNNING_BUILDING) else "2"
    messages = {
        S.NO_APP_FILE: gettext_noop("has no app yet: upload a repo with an app file."),
        S.CONFIG_ERROR: gettext_noop("has a configuration error."),
        S.BUILDING: gettext_noop("is building."),
        S.BUILD_ERROR: gettext_noop("failed to build."),
        S.APP_STARTING: gettext_noop("is starting."),
        S.RUNTIME_ERROR: gettext_noop("stopped with an error."),
        S.SLEEPING: gettext_noop("is asleep."),
        S.PAUSED: gettext_noop("is paused by its owner."),
    }
    message = messages.get(space.status, gettext_noop("is not answering right now."))
    if space.error.startswith(health.RESTARTING):  # APP_STARTING or RUNNING_BUILDING (spaces/lifecycle/health.py)
        message = gettext_noop("is restarting after a crash.")
    if waking and space.status in (S.SLEEPING, S.APP_STARTING):
        message = gettext_noop("is waking up.")
    return _answer(request, uri, space, status=503, retry_after=retry_after,
                   code="waking" if waking else "unavailable", message=message)


# A branch preview's host, for its space's editors (spaces/lifecycle/preview_runs.py).
P = Preview.Status
PREVIEW_MESSAGES = {
    P.BUILDING: gettext_noop("is building the preview of this branch."),
    P.STARTING: gettext_noop("is starting the preview of this branch."),
    P.SLEEPING: gettext_noop("is waking the preview of this branch."),
    P.FAILED: gettext_noop("could not build or start the preview of this branch."),
}


def _answer(request, uri: str, space, *, status: int, retry_after: str, code: str, message: str) -> HttpResponse:
    """A space that cannot answer now: JSON for API clients, the status page for browsers."""
    if wants_json(request, uri):
        resp = JsonResponse({"detail": f"The space {space.full_name} {message}", "code": code,
                             "status": space.status}, status=status)
        resp["Retry-After"] = retry_after
        return resp
    transient = status == 429 or space.status not in (S.NO_APP_FILE, S.CONFIG_ERROR, S.BUILD_ERROR,
                                                      S.RUNTIME_ERROR, S.PAUSED)
    resp = render(request, "spaces/unavailable.html", {
        "space": space, "message": message, "transient": transient,
        "hub_space_url": f"{settings.HUB_URL}/spaces/{space.owner.username}/{space.name}",
    }, status=status)
    resp["Retry-After"] = retry_after
    resp["Cache-Control"] = "no-store"
    resp["Content-Security-Policy"] = f"frame-ancestors {settings.HUB_URL}"
    return resp
