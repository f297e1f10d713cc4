"""The proxy's callback into the hub for hosts it cannot serve itself.

nginx sends here (with the shared proxy key) every request for an unknown host, and every
request whose space container does not answer. The answer follows design.md §3: a host that
does not exist and a private host the caller may not see answer the same way (anonymous
browser: the hub's login page; anonymous API call: 401; a known user: 404); a visible space
that is not serving gets a status page (browsers) or 503 with Retry-After (API clients).
"""
from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from .auth import bearer_from_header
from .models import Space
from .selectors import Role, space_role
from .services import token_authenticate
from .status import SpaceStatus

S = SpaceStatus
API_PREFIXES = ("/config", "/gradio_api/", "/api/", "/info", "/queue/", "/call/", "/_stcore/")


def _label_from_host(host: str) -> str | None:
    host = host.split(":", 1)[0].strip().lower().rstrip(".")
    suffix = "." + settings.SPACES_DOMAIN
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if label and "." not in label else None


def wants_json(request, uri: str) -> bool:
    path = uri.split("?", 1)[0]
    if path.startswith(API_PREFIXES):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or ("text/html" not in accept and "*/*" not in accept and accept != "")


def _token_user(request):
    """The hub user behind an API token in X-HF-Authorization or Authorization, if any."""
    for header in ("X-HF-Authorization", "Authorization"):
        raw = bearer_from_header(request.headers.get(header, ""))
        if raw and raw.startswith("dh_"):
            token = token_authenticate(raw)
            if token is not None:
                return token.user
    return None


def _hidden(request, *, host: str, uri: str, user, label: str | None) -> HttpResponse:
    if user is not None:
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    if wants_json(request, uri):
        resp = JsonResponse({"detail": "Authentication required: send an API token as "
                                       "'Authorization: Bearer dh_...'.", "code": "not_authenticated"},
                            status=401)
        resp["WWW-Authenticate"] = 'Bearer realm="spaces"'
        return resp
    target = f"/go/{label}" if label else "/"
    return HttpResponseRedirect(f"{settings.HUB_URL}{settings.LOGIN_URL}?next={quote(target)}")


@csrf_exempt
@xframe_options_exempt  # the status page shows inside the hub's iframe; CSP below limits who frames it
def proxy_fallback(request):
    if settings.PROXY_SHARED_SECRET and not constant_time_compare(
            request.headers.get("X-Demohub-Proxy-Key", ""), settings.PROXY_SHARED_SECRET):
        return JsonResponse({"detail": "Forbidden.", "code": "forbidden"}, status=403)
    host = request.headers.get("X-Demohub-Host", "")
    uri = request.headers.get("X-Demohub-Uri", "/")
    label = _label_from_host(host)
    user = _token_user(request)
    space = (Space.objects.select_related("owner").filter(label=label).exclude(status=S.DELETING).first()
             if label else None)
    if space is None or space_role(space, user) < Role.PUBLIC:
        return _hidden(request, host=host, uri=uri, user=user, label=label)

    retry_after = "5" if space.status in (S.BUILDING, S.RUNNING_BUILDING) else "2"
    messages = {
        S.NO_APP_FILE: "has no app yet: upload a repo with an app file.",
        S.CONFIG_ERROR: "has a configuration error.",
        S.BUILDING: "is building.",
        S.BUILD_ERROR: "failed to build.",
        S.APP_STARTING: "is starting.",
        S.RUNTIME_ERROR: "stopped with an error.",
        S.SLEEPING: "is asleep.",
        S.PAUSED: "is paused by its owner.",
    }
    message = messages.get(space.status, "is not answering right now.")
    if wants_json(request, uri):
        resp = JsonResponse({"detail": f"The space {space.full_name} {message}", "code": "unavailable",
                             "status": space.status}, status=503)
        resp["Retry-After"] = retry_after
        return resp
    transient = space.status not in (S.NO_APP_FILE, S.CONFIG_ERROR, S.BUILD_ERROR, S.RUNTIME_ERROR, S.PAUSED)
    resp = render(request, "spaces/unavailable.html", {
        "space": space, "message": message, "transient": transient,
        "hub_space_url": f"{settings.HUB_URL}/spaces/{space.owner.username}/{space.name}",
    }, status=503)
    resp["Retry-After"] = retry_after
    resp["Cache-Control"] = "no-store"
    resp["Content-Security-Policy"] = f"frame-ancestors {settings.HUB_URL}"
    return resp
