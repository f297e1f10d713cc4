"""Proxy routes: one nginx file per space, written atomically, plus a generation counter.

The proxy (``deploy/proxy/run.sh`` with ``deploy/nginx/nginx.conf.template``) includes
``<routes_dir>/*.conf`` and reloads nginx gracefully whenever the integer in
``<routes_dir>/../generation`` changes. This module is the only writer of both.

A container space's file holds both of its blue/green slots; the slot that serves is a flag
file, ``<routes_dir>/../slots/<label>.b`` (slot b while it exists), which nginx checks per
request, so a redeploy's switch reloads nothing. A reload is not free: nginx's old workers
close their idle keep-alive client connections at once, and a client whose next request
crosses that close gets a connection reset (nginx 1.22; 1.31 added keepalive_min_timeout).

Plain Python, no Django: ``spaces/`` hands over plain :class:`Route` values (from the
database) and reconciliation calls :func:`sync_routes` with the full desired set.

Every value is validated before it reaches a config file (no config injection): labels are
DNS labels, upstreams are ``ip:port``, static roots are absolute paths from a small safe
alphabet, the space name only ever appears in a comment and is sanitised.

A rendered file relies on names that the main config (the template) defines:

* ``include demohub-listen.conf;`` -- the proxy's ``listen`` line(s), written by run.sh next
  to nginx.conf (relative includes resolve against the directory of nginx.conf);
* ``$connection_upgrade`` -- ``upgrade`` for WebSocket requests, empty otherwise (keepalive);
* ``$demohub_app_authorization`` -- the client's ``Authorization`` unless it carries a hub
  token (``Bearer dh_...``), which never reaches an app;
* ``$demohub_static_cache_control`` -- Cache-Control by response type for static spaces;
* upstream ``demohub_hub`` and ``$demohub_fallback_path``, ``$demohub_hub_host``,
  ``$demohub_proxy_key`` -- where and how ``@fallback`` asks the hub;
* ``$demohub_space_cookie`` -- the value of the hub's space cookie, and
  ``$demohub_app_cookie`` -- the Cookie header without any copy of it (what the app gets);
* ``set_sha1`` (nginx set-misc) -- the hashed credentials of the access-cache key;
* ``proxy_cache`` zone ``demohub_auth`` -- the cached answers of the access check.

Private spaces (``Route.private``): every request first passes ``auth_request`` to the hub's
``/internal/proxy/auth``. nginx caches each answer for a short time keyed by the space, its
``access_epoch`` and a hash of the credential (space cookie, API token headers, Origin), so the hub is
asked once per credential per ``AUTH_CACHE_SECONDS``, not once per request; the hub bumps
``access_epoch`` (a new key, so an empty cache) whenever who may enter changes (visibility,
collaborators, share links), which makes a revocation take effect at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from runner.exceptions import RouteError
from runner.flags import (
    SLOTS,
    TMP_PREFIX,
    active_slot,
    embedding_allowed,
    frames_flag,
    is_label,
    set_active_slot,
    set_embedding,
    slot_flag,
    validate_label,
)
from runner.flags import write_atomic as _write_atomic

__all__ = [
    "Route",
    "ProxyConfig",
    "RouteError",
    "validate_label",
    "render_route",
    "publish_route",
    "remove_route",
    "sync_routes",
    "routes_out_of_date",
    "remove_routes_except",
    "current_generation",
    "active_slot",
    "set_active_slot",
    "set_embedding",
    "embedding_allowed",
]

KIND_CONTAINER = "container"
KIND_STATIC = "static"
KINDS = (KIND_CONTAINER, KIND_STATIC)

# A static root is an absolute path of safe characters only: no whitespace, quotes,
# semicolons, braces, '$' (nginx variables), '#', backslashes or control characters.
_STATIC_ROOT_RE = re.compile(r"/[A-Za-z0-9._/@+=,~-]*")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_SPACE_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9._/@+-]")
_STALE_TMP_SECONDS = 300

LISTEN_INCLUDE = "demohub-listen.conf"
UPSTREAM_KEEPALIVE = 32
# Below uvicorn's default keep-alive timeout (5 s), which Gradio and Streamlit both run
# on: nginx drops an idle pooled connection before the app does, so no request is ever
# sent on a connection the app is just closing.
UPSTREAM_KEEPALIVE_TIMEOUT = "4s"
CONNECT_TIMEOUT = "2s"
STREAM_TIMEOUT = "3600s"
# How long nginx reuses the hub's answer to an access check. Allowed answers bound how long a
# credential the hub no longer accepts for reasons that do not bump the epoch (a logged-out
# session, an expired share link between two expiry sweeps) keeps working; denials are kept
# briefly so a burst of anonymous requests costs one check.
AUTH_CACHE_SECONDS = 30
AUTH_DENY_CACHE_SECONDS = 2
# How long the proxy lets the hub hold a request to a sleeping space while it wakes (the hub
# gives up after SPACE_WAKE_HOLD seconds, ~30 s, and sends the client to @waking).
WAKE_TIMEOUT = "45s"
# Paths under this prefix belong to the proxy and the hub on every space host, never to the app.
RESERVED_PREFIX = "/.demohub/"
_ORIGIN_RE = re.compile(r"https?://[a-z0-9.-]+(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class Route:
    label: str                      # DNS label; server_name f"{label}.{spaces_domain}"
    space: str                      # "owner/name" (for a comment in the file only)
    kind: str                       # "container" | "static"
    upstream: str | None = None     # "10.213.0.12:7860": fixed per space; container may be stopped
    static_root: str | None = None  # absolute dir served for kind=static (a symlink swapped by others)
    private: bool = False           # access check at the proxy: see _access_gate()
    access_epoch: int = 0           # part of the access-cache key; bumped when access changes
    sleeping: bool = False          # the app is frozen or stopped: each request wakes it first
    # Blue/green: with `upstream_b`, `upstream` is slot a's address and `upstream_b` slot b's,
    # both in the file; which one serves is the slot flag (set_active_slot), read per request,
    # so switching slots needs no reload (a reload resets keep-alive requests: see below).
    upstream_b: str | None = None
    active_slot: str = "a"          # "a" | "b": written as the slot flag, never into the file
    # README `disable_embedding: true` makes this False: only the app itself and the hub may
    # frame it. Written as the frames flag (read per request), never into the file.
    embedding: bool = True


@dataclass(frozen=True)
class ProxyConfig:
    routes_dir: Path                # where <label>.conf files live (included by the main config)
    spaces_domain: str = "spaces.localhost"
    hub_origin: str = "http://localhost:8000"   # the only site that may frame a private app

    @property
    def generation_file(self) -> Path:
        return Path(self.routes_dir).parent / "generation"

    @property
    def lock_file(self) -> Path:
        return Path(self.routes_dir).parent / "generation.lock"

    @property
    def slots_dir(self) -> Path:
        """Where the slot flags live: ``<label>.b`` exists while slot b of that space serves."""
        return Path(self.routes_dir).parent / "slots"

    @property
    def frames_dir(self) -> Path:
        """Where the frames flags live: ``<label>`` exists while only the hub may frame the app."""
        return Path(self.routes_dir).parent / "frames"


# --------------------------------------------------------------------------- validation


def validate_upstream(upstream: str) -> str:
    """``a.b.c.d:port`` or ``[v6]:port`` with a literal IP (no names: nothing to resolve)."""
    if not isinstance(upstream, str):
        raise RouteError(f"invalid upstream {upstream!r}: expected 'ip:port'")
    host, sep, port = upstream.rpartition(":")
    if not sep or not _PORT_RE.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise RouteError(f"invalid upstream {upstream!r}: expected 'ip:port'")
    try:
        if host.startswith("[") and host.endswith("]"):
            addr = ipaddress.IPv6Address(host[1:-1])
            if addr.scope_id:
                raise ValueError("scoped address")
            host = f"[{addr.compressed}]"
        else:
            host = str(ipaddress.IPv4Address(host))
    except ValueError:
        raise RouteError(f"invalid upstream {upstream!r}: expected 'ip:port' with a literal IP") from None
    return f"{host}:{int(port)}"


def validate_static_root(root: str) -> str:
    """An absolute directory path of safe characters; no '..' components, not '/'."""
    if not isinstance(root, str) or not _STATIC_ROOT_RE.fullmatch(root):
        raise RouteError(f"invalid static root {root!r}: expected an absolute path of "
                         "[A-Za-z0-9._/@+=,~-]")
    parts = root.split("/")
    if ".." in parts or "." in parts:
        raise RouteError(f"invalid static root {root!r}: '.' and '..' are not allowed")
    root = root.rstrip("/")
    if not root:
        raise RouteError("invalid static root '/': refusing to serve the file system root")
    return root


def validate_domain(domain: str) -> str:
    if not isinstance(domain, str):
        raise RouteError(f"invalid spaces domain {domain!r}")
    labels = domain.split(".")
    if len(domain) > 190 or not all(is_label(p) for p in labels):
        raise RouteError(f"invalid spaces domain {domain!r}: expected lowercase DNS labels")
    return domain


def validate_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lowercase, nothing else (it goes into a header value)."""
    if not isinstance(origin, str) or not _ORIGIN_RE.fullmatch(origin):
        raise RouteError(f"invalid hub origin {origin!r}: expected scheme://host[:port]")
    return origin


def _space_comment(space: str) -> str:
    return _SPACE_COMMENT_UNSAFE.sub("?", str(space))[:200]


# --------------------------------------------------------------------------- rendering


def _access_gate(route: Route, config: ProxyConfig) -> list[str]:
    """Lines placed first in every location that serves the space.

    A public, awake space needs nothing. A private space asks ``/.demohub/auth`` (the cached
    check, below) before anything reaches the app; a refusal goes to ``@denied``, where the hub
    answers exactly as for a host that does not exist. Other sites can neither read the app
    with a visitor's cookie (the app's CORS answer is dropped: Gradio reflects any Origin
    with credentials) nor frame it (only the app itself and the hub may).

    A sleeping space asks ``/.demohub/wake`` instead (uncached, and doing the access check of a
    private space too): the hub wakes the app and holds the request until it answers, so the
    request then goes on to the app with its method and body intact; a browser that would
    wait long, or a client past the hold, goes to ``@waking`` (the hub's waking page or 503).
    """
    lines = []
    if route.sleeping:
        lines += ["auth_request /.demohub/wake;", "error_page 401 = @denied;", "error_page 403 = @waking;"]
    elif route.private:
        lines += ["auth_request /.demohub/auth;", "error_page 401 403 = @denied;"]
    if route.private:
        hub_origin = validate_origin(config.hub_origin)
        lines += [
            "proxy_hide_header Access-Control-Allow-Origin;",
            "proxy_hide_header Access-Control-Allow-Credentials;",
            "proxy_hide_header X-Frame-Options;",
            f'add_header Content-Security-Policy "frame-ancestors \'self\' {hub_origin}" always;',
        ]
    return lines


# How long a proxy worker may go on seeing a flag file (slots, frames) as it was.
FLAG_CACHE_SECONDS = 1


def _frames_lines(route: Route, config: ProxyConfig) -> list[str]:
    """Server-level lines that set ``$demohub_frames``: empty (no header: any site may frame a
    public app) unless the frames flag exists (README ``disable_embedding: true``), then the
    policy of a private space. Read per request, so the flag changes nothing needs a reload."""
    hub_origin = validate_origin(config.hub_origin)
    flag = f"{validate_static_root(str(config.frames_dir))}/{route.label}"
    return [
        # The flag's existence is cached per worker for at most FLAG_CACHE_SECONDS, as the slot
        # flag's (a stat per request costs proxy CPU); server level only: locations set their own.
        "open_file_cache max=16 inactive=60s;",
        f"open_file_cache_valid {FLAG_CACHE_SECONDS}s;",
        "open_file_cache_errors on;",
        'set $demohub_frames "";',
        f"if (-f {flag}) {{",
        f'    set $demohub_frames "frame-ancestors \'self\' {hub_origin}";',
        "}",
        "",
    ]


def _frames_header(route: Route) -> list[str]:
    """In each location that serves a public app: the policy the flag chose (an empty value
    sends no header). A private app always has its own (see _access_gate)."""
    return [] if route.private else ["add_header Content-Security-Policy $demohub_frames always;"]


def _hub_headers(reason: str) -> list[str]:
    """What every call from a space host to the hub carries: who asks, for what, and the
    credentials the hub checks (never the app's own cookies)."""
    return [
        "proxy_set_header Host $demohub_hub_host;",
        'proxy_set_header Connection "";',
        "proxy_set_header X-Demohub-Host $host;",
        "proxy_set_header X-Demohub-Uri $request_uri;",
        "proxy_set_header X-Demohub-Method $request_method;",
        f"proxy_set_header X-Demohub-Reason {reason};",
        "proxy_set_header X-Demohub-Proxy-Key $demohub_proxy_key; proxy_set_header X-Request-ID $demohub_request_id;",
        "proxy_set_header X-Demohub-Space-Cookie $demohub_space_cookie;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Accept $http_accept;",
        "proxy_set_header Accept-Language $http_accept_language;",
        "proxy_set_header User-Agent $http_user_agent;",
        "proxy_set_header Origin $http_origin;",
        "proxy_set_header Sec-Fetch-Site $http_sec_fetch_site;",
        "proxy_set_header Authorization $http_authorization;",
        "proxy_set_header X-HF-Authorization $http_x_hf_authorization;",
        "proxy_http_version 1.1;",
        "proxy_pass_request_body off;",
        "proxy_pass_request_headers off;",
        'proxy_set_header Content-Length "";',
    ]


def _hub_locations(route: Route) -> list[str]:
    """Locations every space host has: the ticket exchange (hub login -> space cookie, share
    links) under /.demohub/, and for private spaces the cached access check and @denied."""
    lines = [
        # /.demohub/session?ticket=...&next=/path: the hub checks the ticket, sets the
        # space cookie for this host only and redirects to `next` without the ticket.
        "location ^~ /.demohub/ {",
        # The whole URI (with the ticket) travels in X-Demohub-Uri; the hub's own URL is fixed.
        "    rewrite ^ /internal/proxy/session? break;",
        "    proxy_pass http://demohub_hub;",
        *(f"    {line}" for line in _hub_headers("session")),
        "    proxy_method GET;",
        "    proxy_intercept_errors off;",
        "    proxy_buffering off;",
        "    proxy_connect_timeout 5s;",
        "    proxy_read_timeout 30s;",
        "    add_header Referrer-Policy no-referrer always;",
        "    add_header Cache-Control no-store always;",
        "}",
    ]
    if route.sleeping:
        lines += [
            "",
            "location = /.demohub/wake {",
            "    internal;",
            "    proxy_pass http://demohub_hub/internal/proxy/wake;",
            *(f"    {line}" for line in _hub_headers("wake")),
            "    proxy_method GET;",
            "    proxy_connect_timeout 5s;",
            f"    proxy_read_timeout {WAKE_TIMEOUT};",
            "}",
            "",
            *_hub_fallback_location("@waking", "waking"),
        ]
    if not (route.private or route.sleeping):
        return lines
    lines += ["", *_hub_fallback_location("@denied", "denied")]
    if not route.private:
        return lines
    key = f"{route.label}|{int(route.access_epoch)}"
    return lines + [
        "",
        "location = /.demohub/auth {",
        "    internal;",
        "    proxy_pass http://demohub_hub/internal/proxy/auth;",
        *(f"    {line}" for line in _hub_headers("auth")),
        "    proxy_method GET;",
        "    proxy_cache demohub_auth;",
        # The credential is part of the key: one visitor's answer is never another's. Hashed
        # (set-misc's set_sha1, in C): nginx writes the key in clear into each cache file.
        '    set $demohub_credentials "$demohub_space_cookie|$http_authorization|'
        '$http_x_hf_authorization|$http_origin";',
        "    set_sha1 $demohub_auth_key $demohub_credentials;",
        f'    proxy_cache_key "{key}|$demohub_auth_key";',
        f"    proxy_cache_valid 200 204 {AUTH_CACHE_SECONDS}s;",
        f"    proxy_cache_valid 401 403 {AUTH_DENY_CACHE_SECONDS}s;",
        "    proxy_cache_lock on;",
        "    proxy_cache_lock_timeout 5s;",
        "    proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;",
        "    proxy_connect_timeout 5s;",
        "    proxy_read_timeout 15s;",
        "}",
    ]


def _hub_fallback_location(name: str, reason: str) -> list[str]:
    """A named location where the hub answers for the space (as GET, without the body):
    ``@fallback`` when nginx cannot reach the app (status page, 503), ``@denied`` when the
    access check refused (as for a missing host: login, 401 or 404), ``@waking`` when a
    sleeping app is not awake yet (waking page, or 503 with Retry-After). The default server
    of the main template does the same for unknown hosts (reason "unknown")."""
    return [
        f"location {name} {{",
        "    proxy_pass http://demohub_hub$demohub_fallback_path;",
        *(f"    {line}" for line in _hub_headers(reason)),
        "    proxy_set_header Cookie $http_cookie;",
        "    proxy_method GET;",
        "    proxy_intercept_errors off;",
        "    proxy_buffering off;",
        "    proxy_connect_timeout 5s;",
        "    proxy_read_timeout 120s;",
        "}",
    ]


# The values of $demohub_slot. A two-slot upstream balances with `hash $demohub_slot`, which
# picks server number ((crc32(value) >> 16) & 0x7fff) % 2 (nginx's hash module, compatible with
# Cache::Memcached): 0 (slot a, listed first) for "slot-a", 1 (slot b) for "slot-b".
SLOT_KEYS = {"a": "slot-a", "b": "slot-b"}
# How long a proxy worker may go on seeing a slot flag as it was (nginx's open_file_cache_valid
# counts whole seconds).
SLOT_FLAG_CACHE_SECONDS = 1


def _render_container(route: Route, upstream: str, config: ProxyConfig, *,
                      upstream_b: str | None = None) -> list[str]:
    name = f"sp_{route.label}"
    gate = [f"        {line}" for line in _access_gate(route, config)]
    servers = [f"    server {upstream} max_fails=0;"]
    slot_lines: list[str] = []
    if upstream_b is not None:
        # Both slots in one upstream, the serving one chosen per request from the slot flag:
        # a blue/green switch is one file created or removed, and nothing reloads. (Not a
        # variable in proxy_pass: nginx would look the upstream up by name, a scan of every
        # upstream of the proxy on each request.)
        flag = f"{validate_static_root(str(config.slots_dir))}/{route.label}.b"
        servers = ["    hash $demohub_slot;", *servers, f"    server {upstream_b} max_fails=0;"]
        slot_lines = [
            # The flag's existence is cached per worker for at most SLOT_FLAG_CACHE_SECONDS
            # (a stat per request would cost about 6 % of the proxy's CPU per request): the
            # open_file_cache lines of _frames_lines above.
            f"    set $demohub_slot {SLOT_KEYS['a']};",
            f"    if (-f {flag}) {{",
            f"        set $demohub_slot {SLOT_KEYS['b']};",
            "    }",
            "",
        ]
    return [
        f"upstream {name} {{",
        *servers,
        f"    keepalive {UPSTREAM_KEEPALIVE};",
        f"    keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT};",
        "}",
        "",
        "server {",
        f"    include {LISTEN_INCLUDE};",
        "    server_name {server_name};",
        "",
        *(f"    {line}" for line in _frames_lines(route, config)),
        *slot_lines,
        "    location / {",
        *gate,
        *(f"        {line}" for line in _frames_header(route)),
        f"        proxy_pass http://{name};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $connection_upgrade;",
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header X-Forwarded-Host $http_host;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_set_header X-Forwarded-For $remote_addr;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        '        proxy_set_header X-Gradio-Server "";',
        '        proxy_set_header X-HF-Authorization "";',
        "        proxy_set_header Authorization $demohub_app_authorization;",
        "        proxy_set_header Cookie $demohub_app_cookie;",
        '        proxy_set_header X-Demohub-Proxy-Key ""; proxy_set_header X-Request-ID $demohub_request_id;',
        '        proxy_set_header X-Demohub-Space-Cookie "";',
        '        proxy_set_header Proxy "";',
        "        proxy_buffering off;",
        "        proxy_request_buffering off;",
        "        proxy_cache off;",
        "        gzip off;",
        f"        proxy_connect_timeout {CONNECT_TIMEOUT};",
        f"        proxy_read_timeout {STREAM_TIMEOUT};",
        f"        proxy_send_timeout {STREAM_TIMEOUT};",
        "        proxy_next_upstream error timeout;",
        "        proxy_redirect off;",
        # The app's own 5xx pass through untouched; only nginx's failure to reach the app
        # (connection refused -> 502, connect timeout -> 504) goes to the hub.
        "        proxy_intercept_errors off;",
        "        error_page 502 504 = @fallback;",
        "    }",
        "",
        *(f"    {line}" for line in _hub_locations(route)),
        "",
        *(f"    {line}" for line in _hub_fallback_location("@fallback", "unavailable")),
        "}",
    ]


def _render_static(route: Route, root: str, config: ProxyConfig) -> list[str]:
    gate = [f"        {line}" for line in _access_gate(route, config)]
    return [
        "server {",
        f"    include {LISTEN_INCLUDE};",
        "    server_name {server_name};",
        f"    root {root};",
        "    index index.html;",
        "    autoindex off;",
        "    disable_symlinks off;",          # the root is a symlink swapped atomically
        "    error_page 403 = @notfound;",    # a directory without index.html: no listing
        "",
        *(f"    {line}" for line in _frames_lines(route, config)),
        "    location / {",
        *gate,
        "        open_file_cache off;",         # the site's files: never a stale one after a swap
        "        try_files $uri $uri/ =404;",
        *(f"        {line}" for line in _frames_header(route)),
        "        add_header Cache-Control $demohub_static_cache_control;",
        "        add_header X-Content-Type-Options nosniff;",
        "    }",
        "    location ~ /\\. {",                # dotfiles and dot-directories (.git, .env)
        "        return 404;",
        "    }",
        "    location @notfound {",
        "        return 404;",
        "    }",
        "",
        *(f"    {line}" for line in _hub_locations(route)),
        "}",
    ]


def render_route(route: Route, config: ProxyConfig) -> str:
    """The complete nginx text of ``<label>.conf`` for ``route``; raises RouteError on any
    value that is not safe to put into a config file."""
    if not isinstance(route, Route):
        raise RouteError(f"not a Route: {route!r}")
    label = validate_label(route.label)
    domain = validate_domain(config.spaces_domain)
    if not isinstance(route.private, bool) or not isinstance(route.sleeping, bool):
        raise RouteError(f"route {label}: private and sleeping must be bools")
    if not isinstance(route.access_epoch, int) or isinstance(route.access_epoch, bool) or route.access_epoch < 0:
        raise RouteError(f"route {label}: access_epoch must be a non-negative int")
    if route.kind == KIND_CONTAINER:
        if route.upstream is None:
            raise RouteError(f"route {label}: a container route needs an upstream")
        if route.active_slot not in SLOTS:
            raise RouteError(f"route {label}: active_slot must be one of {SLOTS}")
        upstream_b = None if route.upstream_b is None else validate_upstream(route.upstream_b)
        body = _render_container(route, validate_upstream(route.upstream), config, upstream_b=upstream_b)
    elif route.kind == KIND_STATIC:
        if route.static_root is None:
            raise RouteError(f"route {label}: a static route needs a static_root")
        body = _render_static(route, validate_static_root(route.static_root), config)
    else:
        raise RouteError(f"route {label}: unknown kind {route.kind!r} (expected one of {KINDS})")
    server_name = f"{label}.{domain}"
    header = [
        "# Generated by runner/proxy.py -- do not edit; rewritten on every change.",
        f"# space: {_space_comment(route.space)}  kind: {route.kind}"
        f"  access: {'private' if route.private else 'public'}{'  sleeping' if route.sleeping else ''}",
    ]
    lines = header + [line.replace("{server_name}", server_name) for line in body]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def _locked(config: ProxyConfig) -> Iterator[None]:
    """Serialise writers (several lifecycle workers, beat) on one machine."""
    routes_dir = Path(config.routes_dir)
    routes_dir.mkdir(parents=True, exist_ok=True)
    # Read-only is enough for flock, and works on a lock file another user created.
    fd = os.open(config.lock_file, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                                     # releases the lock


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _route_path(label: str, config: ProxyConfig) -> Path:
    return Path(config.routes_dir) / f"{label}.conf"


def current_generation(config: ProxyConfig) -> int:
    """The integer in ``routes_dir.parent / "generation"``; 0 when missing or unreadable."""
    try:
        return int(config.generation_file.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def applied_generation(config: ProxyConfig) -> int:
    """The generation the running proxy has loaded (written by deploy/proxy/run.sh); 0 if unknown."""
    try:
        return int((config.routes_dir.parent / "applied").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def wait_applied(config: ProxyConfig, *, timeout: float = 5.0) -> bool:
    """Wait until the proxy has loaded the current routes generation, and every worker sees
    the last slot switch (SLOT_FLAG_CACHE_SECONDS after it).

    Returns False on timeout (no proxy running, or it refused the config); callers go on,
    as the route will be live at the proxy's next successful reload.
    """
    wanted = current_generation(config)
    deadline = time.monotonic() + timeout
    while applied_generation(config) < wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    try:
        moved = float((config.slots_dir / ".moved").read_text())
    except (FileNotFoundError, ValueError):
        return True
    # A worker keeps what it saw while its clock (whole seconds) is within the cache time of
    # when it looked: a look before the move is stale until the next whole second at most.
    seen_by = math.floor(moved) + SLOT_FLAG_CACHE_SECONDS + 0.05
    time.sleep(max(0.0, min(seen_by - time.time(), SLOT_FLAG_CACHE_SECONDS + 0.05)))
    return True


def _bump_generation(config: ProxyConfig) -> int:
    new = current_generation(config) + 1
    _write_atomic(config.generation_file, f"{new}\n")
    return new


def publish_route(route: Route, config: ProxyConfig) -> bool:
    """Write ``<label>.conf`` for ``route``, bumping the generation iff its content changed,
    and set the route's slot flag. Returns whether either changed (then wait_applied()).

    A flag that moves while the file changed too (a space's first two-slot file, a new app
    port) moves only once the proxy has applied the file: the running config could otherwise
    send the switched traffic to an upstream address it does not know yet."""
    text = render_route(route, config)
    path = _route_path(route.label, config)
    with _locked(config):
        changed = _read_text(path) != text
        if changed:
            _write_atomic(path, text)
            _bump_generation(config)
    slot = route.active_slot if route.upstream_b is not None else "a"
    if changed and slot != active_slot(route.label, config):
        wait_applied(config)
    moved = set_active_slot(route.label, slot, config)
    framed = set_embedding(route.label, route.embedding, config)
    return changed or moved or framed


def remove_route(label: str, config: ProxyConfig) -> bool:
    """Delete ``<label>.conf`` and its slot flag; bump the generation iff the file existed.
    Returns whether it did."""
    path = _route_path(validate_label(label), config)
    with _locked(config):
        slot_flag(label, config).unlink(missing_ok=True)
        frames_flag(label, config).unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _bump_generation(config)
    return True


def routes_out_of_date(routes: Iterable[Route], config: ProxyConfig) -> list[str]:
    """Labels of `routes` whose file is missing or differs from what they render to.

    For reconciliation from rows read without a lock: the caller republishes each of these
    from a freshly locked row (a concurrent writer may have just written a newer file), rather
    than writing the possibly stale text it rendered here."""
    stale = []
    for route in routes:
        if (_read_text(_route_path(route.label, config)) != render_route(route, config)
                or embedding_allowed(route.label, config) != route.embedding):
            stale.append(route.label)
    return stale


def remove_routes_except(labels: Iterable[str], config: ProxyConfig) -> bool:
    """Delete every ``<label>.conf`` not in `labels` (spaces that are gone), with their slot
    flags and stale temp files; bump the generation once iff a route was removed. Returns
    whether one was."""
    keep = {validate_label(label) for label in labels}
    with _locked(config):
        changed = _remove_others(keep, config)
        if changed:
            _bump_generation(config)
    return changed


def _remove_others(keep, config: ProxyConfig) -> bool:
    """Under the lock: remove routes whose label is not in `keep`, the slot flags of routes that
    are gone and temp files a crashed writer left. Returns whether a route was removed."""
    changed = False
    now = time.time()
    for entry in Path(config.routes_dir).iterdir():
        name = entry.name
        if name.endswith(".conf") and name[: -len(".conf")] not in keep:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                changed = True
        elif name.startswith(TMP_PREFIX):
            # Left behind by a writer that crashed between write and rename.
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                    entry.unlink()
    # Flags of routes that are gone. The flags of live routes are left alone: reconciliation
    # reads its rows unlocked, and a stale row must not move a slot a switch just moved
    # (spaces/lifecycle/redeploy.py repairs a wrong flag under the row's lock).
    slots_dir = config.slots_dir
    if slots_dir.is_dir():
        for entry in slots_dir.iterdir():
            if entry.name.endswith(".b") and entry.name[: -len(".b")] not in keep:
                entry.unlink(missing_ok=True)
    if config.frames_dir.is_dir():
        for entry in config.frames_dir.iterdir():
            if not entry.name.startswith(".") and entry.name not in keep:
                entry.unlink(missing_ok=True)
    return changed


def sync_routes(routes: Iterable[Route], config: ProxyConfig) -> bool:
    """Make the routes directory hold exactly ``routes`` (reconciliation): write the ones
    that differ, delete every other ``*.conf``, bump the generation once iff anything
    changed. All routes are rendered before anything is touched, so one invalid value
    (RouteError) leaves the directory as it was. Returns whether anything changed."""
    desired: dict[str, str] = {}
    for route in routes:
        text = render_route(route, config)
        if route.label in desired:
            raise RouteError(f"duplicate route label {route.label!r}")
        desired[route.label] = text

    changed = False
    with _locked(config):
        for label, text in desired.items():
            path = _route_path(label, config)
            if _read_text(path) != text:
                _write_atomic(path, text)
                changed = True
        changed = _remove_others(desired, config) or changed
        if changed:
            _bump_generation(config)
    return changed
