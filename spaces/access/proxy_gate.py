"""Private spaces on their own host names: tickets, the space cookie and the proxy's check.

How a visitor gets into a private app at ``http://<label>.<SPACES_DOMAIN>/`` (design.md §3-§4):

* A hub user or a share-link holder is sent to the hub's ``/go/<label>``, which (if they may
  see the space) redirects to ``<space>/.demohub/session?ticket=...&next=...``. The ticket is a
  signed, single-use grant valid for `TICKET_MAX_AGE` seconds; the hub (behind the proxy)
  swaps it for the *space cookie*, scoped to that one host, and redirects to `next`, so the
  ticket leaves the address bar at once. The cookie is `SameSite=None; Secure; Partitioned`
  where the browser allows it, so it works inside the hub page's cross-site iframe.
* An API client sends ``Authorization: Bearer dh_...`` or ``X-HF-Authorization: Bearer dh_...``.

The proxy asks `proxy_auth` (cached per credential, runner/proxy.py) before every request
reaches the app; everything is decided by `proxy_role`, which ends in the one access check
of selectors.py. A cookie proves *who* (a user, or a share link) and is re-checked against
the database on every cache miss, so revoking access never waits for the cookie to expire.
"""
from __future__ import annotations

import logging
import secrets
from urllib.parse import parse_qs, quote, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.crypto import constant_time_compare

from spaces.access.selectors import Action, Role, can, space_role
from spaces.access.services import share_link_valid_for, space_access_changed_quietly
from spaces.accounts.auth import bearer_from_header
from spaces.accounts.services import token_authenticate
from spaces.records.models import Preview, Space, Visibility

logger = logging.getLogger(__name__)

TICKET_MAX_AGE = 60
TICKET_SALT = "demohub.space-ticket"
COOKIE_SALT = "demohub.space-cookie"
SESSION_PATH = "/.demohub/session"


def cookie_name() -> str:
    # On https the __Host- prefix makes the browser refuse the cookie unless it is Secure,
    # host-only and Path=/ (so no other space host can set or overwrite it).
    return "__Host-demohub_space" if settings.SPACES_SCHEME == "https" else "demohub_space"


def _cross_site_cookie_ok() -> bool:
    """Whether the browser accepts a `SameSite=None; Secure` cookie from the apps domain:
    on https, and on http only for *.localhost, which browsers treat as a secure context."""
    return settings.SPACES_SCHEME == "https" or settings.SPACES_DOMAIN == "localhost" \
        or settings.SPACES_DOMAIN.endswith(".localhost")


def space_cookie_header(value: str, *, max_age: int) -> str:
    """The Set-Cookie value. Written by hand: Django 5.2's set_cookie has no Partitioned."""
    parts = [f"{cookie_name()}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly"]
    if _cross_site_cookie_ok():
        # Partitioned (CHIPS): the cookie works in the hub's iframe even where third-party
        # cookies are blocked; it belongs to the (hub site, space host) pair.
        parts += ["Secure", "SameSite=None", "Partitioned"]
    else:
        # Plain http on a real domain: browsers drop SameSite=None without Secure, so the
        # app works when opened on its own host, not inside the hub's iframe (README).
        parts += ["SameSite=Lax"]
    return "; ".join(parts)


# ----------------------------------------------------------------------------- grants
# A user's grant names the hub browser session it came from (a random id kept in that
# session), so that logging out ends the space cookies minted in it: the id goes on a list
# of ended grants (in the cache, for as long as such a cookie lives) and the epochs of the
# spaces the session entered are bumped (spaces/access/signals.py).
SESSION_GRANT = "demohub_space_grant"
SESSION_GRANTED_SPACES = "demohub_space_grants"


def _ended_key(grant_id: str) -> str:
    return f"demohub:space-grant-ended:{grant_id}"


def session_grant(session, space: Space) -> str:
    """The grant id of this hub session (made on first use); remembers that it entered `space`."""
    grant_id = session.get(SESSION_GRANT)
    if not isinstance(grant_id, str):
        grant_id = session[SESSION_GRANT] = secrets.token_urlsafe(16)
    spaces = [i for i in session.get(SESSION_GRANTED_SPACES, []) if isinstance(i, int) and i != space.pk]
    session[SESSION_GRANTED_SPACES] = (spaces + [space.pk])[-200:]
    return grant_id


def session_grants_end(session) -> None:
    """At logout: the space cookies of this session stop counting, and the proxy forgets what
    it cached for them (their spaces' epochs are bumped)."""
    grant_id = session.get(SESSION_GRANT)
    if not isinstance(grant_id, str):
        return
    try:
        cache.set(_ended_key(grant_id), 1, settings.SPACE_COOKIE_MAX_AGE + TICKET_MAX_AGE)
    except Exception:   # the cache is down: so is every check of a grant (_grant_ended refuses)
        logger.warning("logout: could not record the end of space grant", exc_info=True)
    for space_id in session.get(SESSION_GRANTED_SPACES, []):
        if isinstance(space_id, int):
            space_access_changed_quietly(space_id)


def _grant_ended(grant_id) -> bool:
    if not isinstance(grant_id, str):
        return True            # a user grant without a session (minted before grant ids): refused
    try:
        return cache.get(_ended_key(grant_id)) is not None
    except Exception:          # the cache is down: refuse rather than let a logged-out cookie in
        return True


def _grant_for(*, user: User | None = None, share_link_id: int | None = None, grant_id: str | None = None) -> dict:
    if user is not None:
        # The session hash ties the grant to the password: changing it ends every grant.
        return {"u": user.pk, "h": user.get_session_auth_hash()[:20], "g": grant_id}
    return {"s": int(share_link_id)}


def ticket_mint(space: Space, *, user: User | None = None, share_link_id: int | None = None,
                session=None, preview: Preview | None = None) -> str:
    """A ticket into `space` (or its branch `preview`'s host): for `user` (from their hub
    `session`), or for a share link."""
    grant_id = session_grant(session, space) if user is not None else None
    payload = {"l": (preview or space).label, "n": secrets.token_urlsafe(12),
               **_grant_for(user=user, share_link_id=share_link_id, grant_id=grant_id)}
    return signing.dumps(payload, salt=TICKET_SALT, compress=True)


def ticket_url(space: Space | Preview, ticket: str, next_path: str = "/") -> str:
    return f"{space.url.rstrip('/')}{SESSION_PATH}?ticket={quote(ticket)}&next={quote(safe_next(next_path))}"


def safe_next(value: str | None) -> str:
    """A path on the same host only (no scheme, no //host, no backslashes)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value \
            or any(ord(c) < 32 for c in value):
        return "/"
    return value[:2000]


def _grant_role(space: Space, grant: dict, label: str | None = None) -> Role:
    """What a grant (from a cookie or ticket) for the host `label` (default: the space's own)
    is worth on `space` now, from the database."""
    if grant.get("l") != (label or space.label):
        return Role.NONE
    if "u" in grant:
        if _grant_ended(grant.get("g")):
            return Role.NONE
        user = User.objects.filter(pk=grant["u"], is_active=True).first()
        if user is None or not constant_time_compare(user.get_session_auth_hash()[:20], str(grant.get("h", ""))):
            return Role.NONE
        return space_role(space, user)
    if "s" in grant:
        if space.visibility == Visibility.PUBLIC:
            return Role.PUBLIC
        return Role.SHARE_LINK if share_link_valid_for(space.pk, [grant["s"]]) else Role.NONE
    return Role.NONE


def _cookie_grant(value: str) -> dict | None:
    if not value:
        return None
    try:
        grant = signing.loads(value, salt=COOKIE_SALT, max_age=settings.SPACE_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    return grant if isinstance(grant, dict) else None


def token_user(request) -> User | None:
    """The hub user behind an API token in X-HF-Authorization or Authorization, if any."""
    for header in ("X-HF-Authorization", "Authorization"):
        raw = bearer_from_header(request.headers.get(header, ""))
        if raw and raw.startswith("dh_"):
            token = token_authenticate(raw)
            if token is not None:
                return token.user
    return None


def _origin_allowed(request, space: Space | Preview) -> bool:
    """A cookie is an ambient credential: a request that another site's page made the browser
    send (a fetch or a form post, which carry Origin) must not use it, or any page could drive
    a private app. Navigations and plain GETs carry no Origin and may follow a link in."""
    origin = request.headers.get("Origin", "")
    return not origin or origin.rstrip("/") == space.url.rstrip("/")


def proxy_role(request, space: Space, preview: Preview | None = None) -> tuple[Role, User | None]:
    """The caller's role on `space` from what a space host receives: an API token, the space
    cookie (forwarded by the proxy as X-Demohub-Space-Cookie), or nothing. Also returns the
    token's user (to tell a known user from an anonymous caller when hiding a space).

    On a branch preview's host (`preview`) only those who may open previews have a role at
    all: everyone else is NONE there, so every caller of this answers them as for a host
    that does not exist, even on a public space."""
    user = token_user(request)
    role = space_role(space, user)
    if role < Role.VIEWER:
        grant = _cookie_grant(request.headers.get("X-Demohub-Space-Cookie", ""))
        if grant is not None and _origin_allowed(request, preview or space):
            role = max(role, _grant_role(space, grant, (preview or space).label))
    if preview is not None and not can(role, Action.OPEN_PREVIEW, user=user, space=space):
        role = Role.NONE
    return role, user


def space_for_host(host: str) -> Space | None:
    label = label_from_host(host)
    if label is None:
        return None
    return Space.objects.select_related("owner").filter(label=label).exclude(status="DELETING").first()


def host_target(host: str) -> tuple[Space | None, Preview | None]:
    """What a space host names: a space, or a branch preview (with its space), or nothing."""
    space = space_for_host(host)
    if space is not None:
        return space, None
    label = label_from_host(host)
    preview = None if label is None else (Preview.objects.select_related("space__owner").filter(label=label)
                                          .exclude(space__status="DELETING").first())
    return (preview.space, preview) if preview is not None else (None, None)


def label_from_host(host: str) -> str | None:
    host = host.split(":", 1)[0].strip().lower().rstrip(".")
    suffix = "." + settings.SPACES_DOMAIN
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if label and "." not in label else None


def proxy_key_ok(request) -> bool:
    """Calls from the proxy carry the shared key; without a configured key nothing is trusted."""
    expected = settings.PROXY_SHARED_SECRET
    return bool(expected) and constant_time_compare(request.headers.get("X-Demohub-Proxy-Key", ""), expected)


# ----------------------------------------------------------------------------- views
def proxy_auth(request) -> HttpResponse:
    """nginx auth_request for private spaces: 204 may enter, 401 may not. Cached by nginx."""
    if not proxy_key_ok(request):
        return HttpResponse(status=403)
    space, preview = host_target(request.headers.get("X-Demohub-Host", ""))
    if space is None:
        return HttpResponse(status=401)
    role, _ = proxy_role(request, space, preview)
    return HttpResponse(status=204 if role >= Role.PUBLIC else 401)


def proxy_session(request) -> HttpResponse:
    """``/.demohub/session?ticket=...&next=...`` on a space host: swap a ticket for the cookie.

    A bad ticket gets the answer for a missing host.
    """
    if not proxy_key_ok(request):
        return JsonResponse({"detail": "Forbidden.", "code": "forbidden"}, status=403)
    host = request.headers.get("X-Demohub-Host", "")
    uri = request.headers.get("X-Demohub-Uri", "/")
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    next_path = safe_next((query.get("next") or ["/"])[0])
    space, preview = host_target(host)
    if parts.path != SESSION_PATH or space is None:
        return hidden_answer(request, host=host, uri=uri, user=None, label=label_from_host(host))
    try:
        grant = signing.loads((query.get("ticket") or [""])[0], salt=TICKET_SALT, max_age=TICKET_MAX_AGE)
    except signing.BadSignature:
        grant = None
    # Single use: a ticket seen before (a replayed address) counts as no ticket.
    fresh = isinstance(grant, dict) and cache.add(f"demohub:ticket:{grant.get('n')}", 1, TICKET_MAX_AGE * 2)
    if fresh and _grant_role(space, grant, (preview or space).label) >= (Role.EDITOR if preview else Role.PUBLIC):
        response = HttpResponseRedirect(next_path)
        value = signing.dumps({k: v for k, v in grant.items() if k != "n"}, salt=COOKIE_SALT, compress=True)
        response["Set-Cookie"] = space_cookie_header(value, max_age=settings.SPACE_COOKIE_MAX_AGE)
        return response
    role, user = proxy_role(request, space, preview)
    if role >= Role.PUBLIC:
        return HttpResponseRedirect(next_path)   # already in (an old ticket, a reload)
    return hidden_answer(request, host=host, uri=next_path, user=user, label=(preview or space).label)


API_PREFIXES = ("/config", "/gradio_api/", "/api/", "/info", "/queue/", "/call/", "/_stcore/")


def wants_json(request, uri: str) -> bool:
    """API clients (gradio_client fetches /config without following redirects) get JSON."""
    path = uri.split("?", 1)[0]
    if path.startswith(API_PREFIXES):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or ("text/html" not in accept and "*/*" not in accept and accept != "")


def hidden_answer(request, *, host: str, uri: str, user, label: str | None) -> HttpResponse:
    """How a space host answers for a host that does not exist, or that the caller may not
    see (design.md §3): a known user 404, an API call 401, a browser the hub's /go/<label>,
    which logs them in, or lets them in, or answers 404 -- the same for both cases."""
    if user is not None:
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    if wants_json(request, uri):
        resp = JsonResponse({"detail": "Authentication required: send an API token as "
                                       "'Authorization: Bearer dh_...' or 'X-HF-Authorization: Bearer dh_...'.",
                             "code": "not_authenticated"}, status=401)
        resp["WWW-Authenticate"] = 'Bearer realm="spaces"'
        return resp
    target = f"/go/{label}?next={quote(safe_next(uri))}" if label else "/"
    return HttpResponseRedirect(f"{settings.HUB_URL}{target}")
