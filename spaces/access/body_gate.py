"""Decide who may send a large request body before a byte of it is read (issue 15, finding 12).

Django's ASGI handler reads the whole body (spooled to a temporary file past
FILE_UPLOAD_MAX_MEMORY_SIZE) before any middleware or view runs, so without this gate an
anonymous client could make the hub read and write 100 MB per request before being told to
log in. `BodyGate` wraps the Django ASGI application (hub/asgi.py) and looks only at the
request line and headers:

* a Content-Length over the largest upload (UPLOAD_MAX_BYTES plus room for the multipart
  envelope) is answered 413 at once;
* a body over BODY_GATE_BYTES, or one without a length (chunked), needs a caller the hub
  knows (an API token or a session cookie), else 401; on a revision upload (the API and the
  two page forms) the caller must also be allowed to upload to that space (404 when the space
  is hidden from them, 403 when they may see but not edit it, exactly as the views answer);
  anywhere else such a body may not exceed Django's own DATA_UPLOAD_MAX_MEMORY_SIZE (413);
* a chunked body is counted as it arrives and cut off with 413 past the upload cap.

Refusals are {"detail", "code"} JSON with `Connection: close`, so the server drops the rest of
the body instead of reading it. The view still runs its own checks afterwards: this gate only
refuses earlier, never allows more. When the database does not answer, 503 with Retry-After.
"""
from __future__ import annotations

import io
import json
import logging
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections

log = logging.getLogger(__name__)

# Multipart boundaries and part headers around the archive: generous, still bounded.
ENVELOPE_BYTES = 1 * 2**20
# URL names (spaces/urls.py) and the API view whose bodies are repos; they need EDIT on the space.
UPLOAD_URL_NAMES = frozenset({"new", "space-settings"})
UPLOAD_API_VIEWS = frozenset({"RevisionListCreateApi"})
# git's smart HTTP (spaces/repos/git_http.py): HTTP Basic with a token; a push may be larger.
GIT_URL_NAMES = frozenset({"git-upload-pack", "git-receive-pack"})
BASIC = {"WWW-Authenticate": 'Basic realm="Demohub", charset="UTF-8"'}


def _upload_cap(path: str = "") -> int:
    if path.endswith(("/git-receive-pack", "/git-upload-pack")):
        return max(settings.UPLOAD_MAX_BYTES, settings.GIT_PUSH_MAX_BYTES) + ENVELOPE_BYTES
    return settings.UPLOAD_MAX_BYTES + ENVELOPE_BYTES


class Refusal(Exception):
    def __init__(self, status: int, detail: str, code: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.code, self.headers = status, detail, code, headers or {}


def _caller(request):
    """The user behind the request's API token or session cookie, or None (anonymous).

    Mirrors spaces.auth and Django's session middleware without touching the body.
    """
    from django.contrib.auth import get_user
    from rest_framework.exceptions import AuthenticationFailed

    from spaces.accounts.auth import BearerTokenAuthentication

    try:
        found = BearerTokenAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        raise Refusal(401, str(exc.detail), "invalid_token") from None
    if found is not None:
        user, token = found
        return user, token
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    user = get_user(request)
    return (user if user.is_authenticated else None), None


def decide(scope: dict, length: int | None) -> None:
    """Raise Refusal if the body of this request must not be read; return if it may."""
    try:
        _decide(scope, length)
    finally:
        close_old_connections()  # outside Django's request cycle: nothing else closes it


def _decide(scope: dict, length: int | None) -> None:
    from django.core.handlers.asgi import ASGIRequest
    from django.http import Http404
    from django.urls import Resolver404, resolve

    from spaces.access.selectors import Action, can, space_get_for_viewer
    from spaces.accounts.models import ApiToken

    request = ASGIRequest(scope, io.BytesIO(b""))
    try:
        match = resolve(request.path_info)
    except Resolver404:
        raise Refusal(404, "Not found.", "not_found") from None
    if match.url_name in GIT_URL_NAMES:
        return _decide_git(request, match)
    user, token = _caller(request)
    if user is None:
        raise Refusal(401, "Log in or send an API token before sending a body this large.", "not_authenticated")
    view_class = getattr(match.func, "view_class", None)
    is_upload = match.url_name in UPLOAD_URL_NAMES or getattr(view_class, "__name__", "") in UPLOAD_API_VIEWS
    if not is_upload:
        if length is None or length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise Refusal(413, f"This endpoint takes at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
                          "request_too_large")
        return
    if isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ:
        raise Refusal(403, "This API token is read-only; create a write token for this call.", "permission_denied")
    if "owner" not in match.kwargs:
        return  # /new: any logged-in user; the quotas are checked by the view
    try:
        space, role = space_get_for_viewer(owner=match.kwargs["owner"], name=match.kwargs["name"], user=user)
    except Http404:
        raise Refusal(404, "Not found.", "not_found") from None
    if not can(role, Action.EDIT, user=user, space=space):
        raise Refusal(403, "You may see this space but not do this.", "permission_denied")


def _decide_git(request, match) -> None:
    """The answers of git_http.git_http, from the headers: who may clone or push (design.md §6)."""
    from django.http import Http404

    from spaces.access.selectors import Action, can, space_get_for_git
    from spaces.accounts.auth import BadCredentials, basic_token_user
    from spaces.accounts.models import ApiToken

    try:
        found = basic_token_user(request.META.get("HTTP_AUTHORIZATION", ""))
    except BadCredentials as exc:
        raise Refusal(401, str(exc), "invalid_token", BASIC) from None
    user, token = found if found else (None, None)
    push = match.url_name == "git-receive-pack"
    if push and user is None:
        raise Refusal(401, "Pushing needs your user name and a write API token as the password.",
                      "not_authenticated", BASIC)
    try:
        space, role = space_get_for_git(owner=match.kwargs["owner"], name=match.kwargs["name"], user=user)
    except Http404:
        if user is None:
            raise Refusal(401, "Authentication required.", "not_authenticated", BASIC) from None
        raise Refusal(404, "Repository not found.", "not_found") from None
    if not can(role, Action.READ_FILES, user=user, space=space):
        raise Refusal(404, "Repository not found.", "not_found")
    if push and (not can(role, Action.EDIT, user=user, space=space) or token.scope == ApiToken.Scope.READ):
        raise Refusal(403, "You may not push to this space (an editor's write token is needed).",
                      "permission_denied")


class BodyGate:
    """ASGI middleware around Django's application; see the module docstring."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        raw_length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        try:
            length = int(raw_length) if raw_length is not None else None
        except ValueError:
            return await _answer(send, Refusal(400, "The Content-Length header is not a number.", "bad_request"))
        if length is None and not chunked:
            return await self.app(scope, receive, send)  # no body
        cap = _upload_cap(scope.get("path", ""))
        if length is not None and length > cap:
            return await _answer(send, Refusal(
                413, f"The request body ({length} bytes) is larger than the largest upload this hub takes "
                     f"({cap - ENVELOPE_BYTES} bytes).", "request_too_large"))
        if length is None or length > settings.BODY_GATE_BYTES:
            try:
                await sync_to_async(decide, thread_sensitive=True)(scope, length)
            except Refusal as refusal:
                return await _answer(send, refusal)
            except DatabaseError:
                log.warning("body gate: the database does not answer")
                return await _answer(send, Refusal(503, "The hub's database does not answer; try again shortly.",
                                                   "unavailable", {"Retry-After": "5"}))
        if chunked:
            receive = _counted(receive, send, cap)
        return await self.app(scope, receive, send)


def _counted(receive, send, cap: int):
    """`receive` that cuts a chunked body off past the upload cap: the app sees a disconnect
    (Django then stops without answering) and the client gets 413."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                await _answer(send, Refusal(413, f"The request body is larger than the largest upload this hub "
                                                 f"takes ({cap - ENVELOPE_BYTES} bytes).", "request_too_large"))
                return {"type": "http.disconnect"}
        return message

    return wrapped


async def _answer(send, refusal: Refusal) -> None:
    body = json.dumps({"detail": refusal.detail, "code": refusal.code}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               # The rest of the body is never read: the connection cannot carry another request.
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
