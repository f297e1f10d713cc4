"""Proxy routes: one nginx file per space, written atomically, plus a generation counter.

The proxy (``deploy/proxy/run.sh`` with ``deploy/nginx/nginx.conf.template``) includes
``<routes_dir>/*.conf`` and reloads nginx gracefully whenever the integer in
``<routes_dir>/../generation`` changes. This module is the only writer of both.

A container space's file holds both of its blue/green slots; the slot that serves is a flag
file, ``<routes_dir>/../slots/<label>.b`` (slot b while it exists), which nginx checks per
request, so a redeploy's switch reloads nothing. A reload is not free: nginx's old workers
close their idle keep-alive client connections at once, and a client whose next request
crosses that close gets a connection reset (nginx 1.22; 1.31 added keepalive_min_timeout).

Per-space state is data, never config (issue 9): whether a space is private, its access epoch
and whether it sleeps live in flag files under ``<routes_dir>/../state`` (``<label>.private``,
holding the epoch, and ``<label>.sleeping``), which nginx checks per request like the slot flag
(njs reads the epoch for the access-cache key). So sleeping, waking, starting, stopping and
every visibility or access change rewrite a flag and reload nothing; only a route's file
(created, removed, or given a new upstream address) bumps the generation, and the proxy
reloads at most once a second for any number of bumps (deploy/proxy/run.sh).

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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from runner.exceptions import RouteError
from runner.proxy_state import (AUTH_CACHE_SECONDS, AUTH_DENY_CACHE_SECONDS, STATE_FLAG_CACHE_SECONDS,  # noqa: F401
                               WAKE_TIMEOUT, access_gate, hub_fallback_location, hub_locations, state_lines)

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
    "set_route_state",
    "route_state_differs",
    "embedding_allowed",
    "end_open_connections",
]

KIND_CONTAINER = "container"
KIND_STATIC = "static"
KINDS = (KIND_CONTAINER, KIND_STATIC)
SLOTS = ("a", "b")

_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A static root is an absolute path of safe characters only: no whitespace, quotes,
# semicolons, braces, '$' (nginx variables), '#', backslashes or control characters.
_STATIC_ROOT_RE = re.compile(r"/[A-Za-z0-9._/@+=,~-]*")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_SPACE_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9._/@+-]")
_TMP_PREFIX = ".tmp-"          # temp files never match the proxy's "*.conf" include
_STALE_TMP_SECONDS = 300

LISTEN_INCLUDE = "demohub-listen.conf"
UPSTREAM_KEEPALIVE = 32
# Below uvicorn's default keep-alive timeout (5 s), which Gradio and Streamlit both run
# on: nginx drops an idle pooled connection before the app does, so no request is ever
# sent on a connection the app is just closing.
UPSTREAM_KEEPALIVE_TIMEOUT = "4s"
CONNECT_TIMEOUT = "2s"
STREAM_TIMEOUT = "3600s"
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
    private: bool = False           # access check at the proxy: runner/proxy_state.py
    access_epoch: int = 0           # part of the access-cache key; bumped when access changes
    sleeping: bool = False          # the app is frozen or stopped: each request wakes it first
    # README `disable_embedding: true` makes this False: only the app itself and the hub may
    # frame the public app (a private one is never framed by other sites). A flag, no reload.
    embedding: bool = True
    # Blue/green: with `upstream_b`, `upstream` is slot a's address and `upstream_b` slot b's,
    # both in the file; which one serves is the slot flag (set_active_slot), read per request,
    # so switching slots needs no reload (a reload resets keep-alive requests: see below).
    upstream_b: str | None = None
    active_slot: str = "a"          # "a" | "b": written as the slot flag, never into the file


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
    def states_dir(self) -> Path:
        """Where the state flags live: ``<label>.private`` (its content: the access epoch)
        exists while the space is private, ``<label>.sleeping`` while it sleeps."""
        return Path(self.routes_dir).parent / "state"

    @property
    def slots_dir(self) -> Path:
        """Where the slot flags live: ``<label>.b`` exists while slot b of that space serves."""
        return Path(self.routes_dir).parent / "slots"


# --------------------------------------------------------------------------- validation


def validate_label(label: str) -> str:
    """Return ``label`` if it is a DNS-safe label (``[a-z0-9-]{1,63}``, no leading or
    trailing '-'); raise :class:`RouteError` otherwise."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise RouteError(f"invalid route label {label!r}: expected 1-63 of [a-z0-9-], "
                         "not starting or ending with '-'")
    return label


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
    if len(domain) > 190 or not all(_LABEL_RE.fullmatch(p) for p in labels):
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


def _state(route: Route, config: ProxyConfig) -> list[str]:
    return state_lines(route.label, validate_static_root(str(config.states_dir)), validate_origin(config.hub_origin))


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
    gate = [f"        {line}" for line in access_gate(app=True)]
    state = [f"    {line}" if line else "" for line in _state(route, config)]
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
            # (the open_file_cache of the state lines).
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
        *state,
        *slot_lines,
        "    location / {",
        *gate,
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
        *(f"    {line}" for line in hub_locations(route.label)),
        "",
        *(f"    {line}" for line in hub_fallback_location("@fallback", "unavailable")),
        "}",
    ]


def _render_static(route: Route, root: str, config: ProxyConfig) -> list[str]:
    gate = [f"        {line}" for line in access_gate(app=False)]
    state = [f"    {line}" if line else "" for line in _state(route, config)]
    return [
        "server {",
        f"    include {LISTEN_INCLUDE};",
        "    server_name {server_name};",
        *state,
        f"    root {root};",
        "    index index.html;",
        "    autoindex off;",
        "    disable_symlinks off;",          # the root is a symlink swapped atomically
        "    error_page 403 = @notfound;",    # a directory without index.html: no listing
        "",
        "    location / {",
        # The site's files are swapped by a symlink: never served from the flags' file cache.
        "        open_file_cache off;",
        *gate,
        "        try_files $uri $uri/ =404;",
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
        *(f"    {line}" for line in hub_locations(route.label)),
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
        "# Generated by runner/proxy.py -- do not edit. Visibility, access and sleep are flag",
        "# files read per request (state/), never part of this file: changing them reloads nothing.",
        f"# space: {_space_comment(route.space)}  kind: {route.kind}",
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


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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

    Returns False on timeout (the proxy is down, or it refused the config), and at once when
    no proxy has ever run on these routes (no `applied` file): callers go on, as the route
    will be live at the proxy's next successful reload or start.
    """
    if not (config.routes_dir.parent / "applied").exists():
        return False
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


def publish_route(route: Route, config: ProxyConfig, *, apply_timeout: float = 5.0) -> bool:
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
        wait_applied(config, timeout=apply_timeout)
    moved = set_active_slot(route.label, slot, config)
    state = set_route_state(route, config)
    return changed or moved or state


def _state_flags(label: str, config: ProxyConfig) -> tuple[Path, Path, Path]:
    label = validate_label(label)
    return (config.states_dir / f"{label}.private", config.states_dir / f"{label}.sleeping",
            config.states_dir / f"{label}.noembed")


def end_open_connections(config: ProxyConfig) -> int:
    """Ask the proxy to reload (batched with any other, at most one a second): its old workers
    finish their requests and close every kept-alive or upgraded connection. Only for access
    taken away from a space that has connections open right now (a WebSocket is checked only
    when it opens). Returns the new generation."""
    with _locked(config):
        return _bump_generation(config)


def embedding_allowed(label: str, config: ProxyConfig) -> bool:
    """Whether other sites may frame ``label``'s public app (no ``<label>.noembed`` flag)."""
    return not _state_flags(label, config)[2].exists()


def route_state_differs(route: Route, config: ProxyConfig) -> bool:
    """Whether the state flags on disk differ from what ``route`` says."""
    private, sleeping, noembed = _state_flags(route.label, config)
    want = f"{int(route.access_epoch)}\n" if route.private else None
    return (_read_text(private) != want or sleeping.exists() != bool(route.sleeping)
            or noembed.exists() == bool(route.embedding))


def set_route_state(route: Route, config: ProxyConfig) -> bool:
    """Write ``route``'s state flags: ``<label>.private`` (holding the access epoch) while it
    is private, ``<label>.sleeping`` while it sleeps. Nothing reloads: nginx checks the flags
    per request (a worker may see a flag as it was for STATE_FLAG_CACHE_SECONDS; the epoch it
    reads at once). A flag that appears narrows who reaches the app, so it is recorded as a
    move and wait_applied() waits until every worker sees it. Returns whether anything changed."""
    if not all(isinstance(v, bool) for v in (route.private, route.sleeping, route.embedding)):
        raise RouteError(f"route {route.label}: private, sleeping and embedding must be bools")
    epoch = route.access_epoch
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise RouteError(f"route {route.label}: access_epoch must be a non-negative int")
    private, sleeping, noembed = _state_flags(route.label, config)
    config.states_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):   # the proxy's workers read it as another user
        os.chmod(config.states_dir, 0o755)
    changed = appeared = False
    for flag, text in ((private, f"{epoch}\n" if route.private else None),
                       (sleeping, "1\n" if route.sleeping else None),
                       (noembed, None if route.embedding else "1\n")):
        current = _read_text(flag)
        if current == text:
            continue
        changed = True
        if text is None:
            flag.unlink(missing_ok=True)
        else:
            appeared = appeared or current is None
            _write_atomic(flag, text)
    if appeared:
        _slot_moved(config)
    return changed


def _slot_flag(label: str, config: ProxyConfig) -> Path:
    return config.slots_dir / f"{validate_label(label)}.b"


def active_slot(label: str, config: ProxyConfig) -> str:
    """The slot the proxy sends ``label``'s requests to: "b" while its flag exists, else "a"."""
    return "b" if _slot_flag(label, config).exists() else "a"


def set_active_slot(label: str, slot: str, config: ProxyConfig) -> bool:
    """Point ``label``'s two-slot route at ``slot``, effective for the next request of every
    proxy worker (nginx checks the flag file per request). Returns whether it moved."""
    if slot not in SLOTS:
        raise RouteError(f"invalid slot {slot!r}: expected one of {SLOTS}")
    flag = _slot_flag(label, config)
    if slot == "a":
        try:
            flag.unlink()
        except FileNotFoundError:
            return False
        _slot_moved(config)
        return True
    if flag.exists():
        return False
    # Searchable by the proxy's workers, which check the flag and may run as another user: a
    # flag they cannot see reads as slot a (whatever the umask made of the directory).
    config.slots_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # another user's directory: theirs to set
        os.chmod(config.slots_dir, 0o755)
    _write_atomic(flag, "b\n")
    _slot_moved(config)
    return True


def _slot_moved(config: ProxyConfig) -> None:
    """Record when a slot last moved (or a state flag appeared): wait_applied() waits until
    every worker can see it."""
    config.slots_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(config.slots_dir / ".moved", f"{time.time():.3f}\n")


def remove_route(label: str, config: ProxyConfig) -> bool:
    """Delete ``<label>.conf`` and its slot flag; bump the generation iff the file existed.
    Returns whether it did."""
    path = _route_path(validate_label(label), config)
    with _locked(config):
        _slot_flag(label, config).unlink(missing_ok=True)
        for flag in _state_flags(label, config):
            flag.unlink(missing_ok=True)
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
                or route_state_differs(route, config)):
            stale.append(route.label)
    return stale


def remove_routes_except(labels: Iterable[str], config: ProxyConfig, *, listed_at: float | None = None) -> bool:
    """Delete every ``<label>.conf`` not in `labels` (spaces that are gone), with their slot
    flags and stale temp files; bump the generation once iff a route was removed. Returns
    whether one was. A route written since `listed_at` (when `labels` was read) is kept: it is
    a space made after that read, not one that is gone."""
    keep = {validate_label(label) for label in labels}
    with _locked(config):
        if listed_at is not None:
            keep |= {e.name[:-5] for e in Path(config.routes_dir).glob("*.conf") if e.stat().st_mtime >= listed_at}
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
        elif name.startswith(_TMP_PREFIX):
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
    states_dir = config.states_dir
    if states_dir.is_dir():
        for entry in states_dir.iterdir():
            stem, dot, kind = entry.name.rpartition(".")
            if dot and kind in ("private", "sleeping", "noembed") and stem not in keep:
                entry.unlink(missing_ok=True)
    return changed


def sync_routes(routes: Iterable[Route], config: ProxyConfig) -> bool:
    """Make the routes directory hold exactly ``routes`` (reconciliation): write the ones
    that differ, delete every other ``*.conf``, bump the generation once iff anything
    changed. All routes are rendered before anything is touched, so one invalid value
    (RouteError) leaves the directory as it was. Returns whether anything changed."""
    desired: dict[str, str] = {}
    routes = list(routes)
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
    for route in routes:
        changed = set_route_state(route, config) or changed
    return changed
