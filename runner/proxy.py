"""Proxy routes: one nginx file per space, written atomically, plus a generation counter.

The proxy (``deploy/proxy/run.sh`` with ``deploy/nginx/nginx.conf.template``) includes
``<routes_dir>/*.conf`` and reloads nginx gracefully whenever the integer in
``<routes_dir>/../generation`` changes. This module is the only writer of both.

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
  ``$demohub_proxy_key`` -- where and how ``@fallback`` asks the hub.
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from runner.exceptions import RouteError

__all__ = [
    "Route",
    "ProxyConfig",
    "RouteError",
    "validate_label",
    "render_route",
    "publish_route",
    "remove_route",
    "sync_routes",
    "current_generation",
]

KIND_CONTAINER = "container"
KIND_STATIC = "static"
KINDS = (KIND_CONTAINER, KIND_STATIC)

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


@dataclass(frozen=True)
class Route:
    label: str                      # DNS label; server_name f"{label}.{spaces_domain}"
    space: str                      # "owner/name" (for a comment in the file only)
    kind: str                       # "container" | "static"
    upstream: str | None = None     # "10.213.0.12:7860": fixed per space; container may be stopped
    static_root: str | None = None  # absolute dir served for kind=static (a symlink swapped by others)
    private: bool = False           # access check at the proxy: see _access_gate()


@dataclass(frozen=True)
class ProxyConfig:
    routes_dir: Path                # where <label>.conf files live (included by the main config)
    spaces_domain: str = "spaces.localhost"

    @property
    def generation_file(self) -> Path:
        return Path(self.routes_dir).parent / "generation"

    @property
    def lock_file(self) -> Path:
        return Path(self.routes_dir).parent / "generation.lock"


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


def _space_comment(space: str) -> str:
    return _SPACE_COMMENT_UNSAFE.sub("?", str(space))[:200]


# --------------------------------------------------------------------------- rendering


def _access_gate(route: Route) -> list[str]:
    """Lines placed first in every location that serves the space.

    THE place to add the access check for private spaces (auth_request with a cached
    answer, or a check inside nginx); it must also remove the hub's space cookie before
    the request reaches the app. Public spaces need nothing: return no lines.
    """
    if route.private:
        # Not implemented yet: private spaces are served like public ones for now.
        return ["# private space: access gate goes here (not implemented yet)"]
    return []


def _fallback_location(reason: str) -> list[str]:
    """``@fallback``: nginx could not reach the app (stopped, starting, gone); ask the hub,
    which answers for the space (wake page, 401/404, ...). Mirrors the default server of
    the main template (reason "unknown")."""
    return [
        "location @fallback {",
        "    proxy_pass http://demohub_hub$demohub_fallback_path;",
        "    proxy_method GET;",
        "    proxy_pass_request_body off;",
        "    proxy_pass_request_headers off;",
        '    proxy_set_header Content-Length "";',
        "    proxy_set_header Host $demohub_hub_host;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header X-Demohub-Host $host;",
        "    proxy_set_header X-Demohub-Uri $request_uri;",
        "    proxy_set_header X-Demohub-Method $request_method;",
        f"    proxy_set_header X-Demohub-Reason {reason};",
        "    proxy_set_header X-Demohub-Proxy-Key $demohub_proxy_key;",
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_set_header Accept $http_accept;",
        "    proxy_set_header Accept-Language $http_accept_language;",
        "    proxy_set_header User-Agent $http_user_agent;",
        "    proxy_set_header Authorization $http_authorization;",
        "    proxy_set_header X-HF-Authorization $http_x_hf_authorization;",
        "    proxy_set_header Cookie $http_cookie;",
        "    proxy_http_version 1.1;",
        "    proxy_intercept_errors off;",
        "    proxy_buffering off;",
        "    proxy_connect_timeout 5s;",
        "    proxy_read_timeout 120s;",
        "}",
    ]


def _render_container(route: Route, upstream: str) -> list[str]:
    name = f"sp_{route.label}"
    gate = [f"        {line}" for line in _access_gate(route)]
    return [
        f"upstream {name} {{",
        f"    server {upstream} max_fails=0;",
        f"    keepalive {UPSTREAM_KEEPALIVE};",
        f"    keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT};",
        "}",
        "",
        "server {",
        f"    include {LISTEN_INCLUDE};",
        "    server_name {server_name};",
        "",
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
        '        proxy_set_header X-Demohub-Proxy-Key "";',
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
        *(f"    {line}" for line in _fallback_location("unavailable")),
        "}",
    ]


def _render_static(route: Route, root: str) -> list[str]:
    gate = [f"        {line}" for line in _access_gate(route)]
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
        "    location / {",
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
        "}",
    ]


def render_route(route: Route, config: ProxyConfig) -> str:
    """The complete nginx text of ``<label>.conf`` for ``route``; raises RouteError on any
    value that is not safe to put into a config file."""
    if not isinstance(route, Route):
        raise RouteError(f"not a Route: {route!r}")
    label = validate_label(route.label)
    domain = validate_domain(config.spaces_domain)
    if not isinstance(route.private, bool):
        raise RouteError(f"route {label}: private must be a bool")
    if route.kind == KIND_CONTAINER:
        if route.upstream is None:
            raise RouteError(f"route {label}: a container route needs an upstream")
        body = _render_container(route, validate_upstream(route.upstream))
    elif route.kind == KIND_STATIC:
        if route.static_root is None:
            raise RouteError(f"route {label}: a static route needs a static_root")
        body = _render_static(route, validate_static_root(route.static_root))
    else:
        raise RouteError(f"route {label}: unknown kind {route.kind!r} (expected one of {KINDS})")
    server_name = f"{label}.{domain}"
    header = [
        "# Generated by runner/proxy.py -- do not edit; rewritten on every change.",
        f"# space: {_space_comment(route.space)}  kind: {route.kind}"
        f"  access: {'private' if route.private else 'public'}",
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
    """Wait until the proxy has loaded the current routes generation.

    Returns False on timeout (no proxy running, or it refused the config); callers go on,
    as the route will be live at the proxy's next successful reload.
    """
    wanted = current_generation(config)
    deadline = time.monotonic() + timeout
    while applied_generation(config) < wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _bump_generation(config: ProxyConfig) -> int:
    new = current_generation(config) + 1
    _write_atomic(config.generation_file, f"{new}\n")
    return new


def publish_route(route: Route, config: ProxyConfig) -> bool:
    """Write ``<label>.conf`` for ``route``; bump the generation iff its content changed.
    Returns whether anything changed."""
    text = render_route(route, config)
    path = _route_path(route.label, config)
    with _locked(config):
        if _read_text(path) == text:
            return False
        _write_atomic(path, text)
        _bump_generation(config)
    return True


def remove_route(label: str, config: ProxyConfig) -> bool:
    """Delete ``<label>.conf``; bump the generation iff it existed. Returns whether it did."""
    path = _route_path(validate_label(label), config)
    with _locked(config):
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _bump_generation(config)
    return True


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

    routes_dir = Path(config.routes_dir)
    changed = False
    with _locked(config):
        for label, text in desired.items():
            path = _route_path(label, config)
            if _read_text(path) != text:
                _write_atomic(path, text)
                changed = True
        now = time.time()
        for entry in routes_dir.iterdir():
            name = entry.name
            if name.endswith(".conf") and name[: -len(".conf")] not in desired:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    changed = True
            elif name.startswith(_TMP_PREFIX):
                # Left behind by a writer that crashed between write and rename.
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                        entry.unlink()
        if changed:
            _bump_generation(config)
    return changed
