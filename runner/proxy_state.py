"""The gate of every space host, rendered into its route file (runner/proxy.py; issue 9).

Each space's server block reads its state per request from flag files (``state_lines``): a
public, awake space's request passes ``/.demohub/gate``, which answers 204 at once; a private
one's goes to the hub's cached access check (``/.demohub/gate-auth``), a sleeping one's to the
hub's wake call (``/.demohub/gate-wake``). So a change of visibility, access or sleep is a flag
file written, never a reload. The callers validate every value (runner/proxy.py).
"""
from __future__ import annotations

# How long nginx reuses the hub's answer to an access check. Allowed answers bound how long a
# credential the hub no longer accepts for reasons that do not bump the epoch (a logged-out
# session, an expired share link between two expiry sweeps) keeps working; denials are kept
# briefly so a burst of anonymous requests costs one check.
AUTH_CACHE_SECONDS = 30
AUTH_DENY_CACHE_SECONDS = 2
# How long the proxy lets the hub hold a request to a sleeping space while it wakes (the hub
# gives up after SPACE_WAKE_HOLD seconds, ~30 s, and sends the client to @waking).
WAKE_TIMEOUT = "45s"
# How long a proxy worker may go on seeing a state flag as it was (nginx's open_file_cache_valid
# counts whole seconds): the same second as the slot flag, one open_file_cache serves both.
STATE_FLAG_CACHE_SECONDS = 1


def state_lines(label: str, states_dir: str, hub_origin: str) -> list[str]:
    """Server-level lines every space host has: its state, read per request from the flag
    files (cached per worker for at most STATE_FLAG_CACHE_SECONDS), so that a change of
    visibility, access or sleep reloads nothing.

    ``$demohub_gate`` is "" (public and awake: nothing to ask), ``auth`` (private: the cached
    access check) or ``wake`` (asleep: the hub wakes the app, checking access too).
    """
    states = states_dir
    return [
        # A stat per request would cost about 6 % of the proxy's CPU per request.
        "open_file_cache max=16 inactive=60s;",
        f"open_file_cache_valid {STATE_FLAG_CACHE_SECONDS}s;",
        "open_file_cache_errors on;",
        f"set $demohub_private_file {states}/{label}.private;",
        'set $demohub_private "";',
        'set $demohub_gate "";',
        f"if (-f {states}/{label}.private) {{",
        "    set $demohub_private 1;",
        "    set $demohub_gate auth;",
        "}",
        f"if (-f {states}/{label}.sleeping) {{",
        "    set $demohub_gate wake;",
        "}",
        # README `disable_embedding: true`: a public app framed only by itself and the hub.
        'set $demohub_noembed "";',
        f"if (-f {states}/{label}.noembed) {{",
        "    set $demohub_noembed 1;",
        "}",
        # Sent while private or not embeddable (the template's $demohub_csp map): only the hub
        # may frame it.
        f"set $demohub_frame_ancestors \"frame-ancestors 'self' {hub_origin}\";",
        "",
    ]


def access_gate(*, app: bool) -> list[str]:
    """Lines placed first in every location that serves the space.

    Every request passes ``auth_request /.demohub/gate``, which answers at once for a public,
    awake space (no hub, no upstream). A private space asks the hub's cached check
    (``/.demohub/gate-auth``); a refusal goes to ``@denied``, where the hub answers exactly as
    for a host that does not exist. A sleeping space asks ``/.demohub/gate-wake`` (uncached, and
    doing the access check of a private space too): the hub wakes the app and holds the request
    until it answers, so the request then goes on to the app with its method and body intact; a
    browser that would wait long, or a client past the hold, goes to the hub's waking page or 503.

    While private, other sites can neither read the app with a visitor's cookie (the app's
    CORS answer is dropped: Gradio reflects any Origin with credentials) nor frame it: the
    app's own headers pass through the template's maps, empty (so not sent) while private.
    """
    lines = [
        "auth_request /.demohub/gate;",
        "error_page 401 = @denied;",
        "error_page 403 = @refused;",
    ]
    if app:
        lines += [
            "proxy_hide_header Access-Control-Allow-Origin;",
            "proxy_hide_header Access-Control-Allow-Credentials;",
            "proxy_hide_header X-Frame-Options;",
            "add_header Access-Control-Allow-Origin $demohub_app_acao always;",
            "add_header Access-Control-Allow-Credentials $demohub_app_acac always;",
            "add_header X-Frame-Options $demohub_app_xfo always;",
        ]
    return lines + ["add_header Content-Security-Policy $demohub_csp always;"]


def hub_headers(reason: str) -> list[str]:
    """What every call from a space host to the hub carries: who asks, for what, and the
    credentials the hub checks (never the app's own cookies)."""
    return [
        "proxy_set_header Host $demohub_hub_host;",
        'proxy_set_header Connection "";',
        "proxy_set_header X-Demohub-Host $host;",
        "proxy_set_header X-Demohub-Uri $request_uri;",
        "proxy_set_header X-Demohub-Method $request_method;",
        f"proxy_set_header X-Demohub-Reason {reason};",
        "proxy_set_header X-Demohub-Proxy-Key $demohub_proxy_key;",
        "proxy_set_header X-Request-ID $demohub_request_id;",
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


def hub_locations(label: str) -> list[str]:
    """Locations every space host has: the ticket exchange (hub login -> space cookie, share
    links) under /.demohub/, the gate with its access check and wake call, and @denied /
    @refused, where the hub answers for a refused request. The same for every state."""
    key = f"{label}|$demohub_access_epoch"
    return [
        # /.demohub/session?ticket=...&next=/path: the hub checks the ticket, sets the
        # space cookie for this host only and redirects to `next` without the ticket.
        "location ^~ /.demohub/ {",
        # The whole URI (with the ticket) travels in X-Demohub-Uri; the hub's own URL is fixed.
        "    rewrite ^ /internal/proxy/session? break;",
        "    proxy_pass http://demohub_hub;",
        *(f"    {line}" for line in hub_headers("session")),
        "    proxy_method GET;",
        "    proxy_intercept_errors off;",
        "    proxy_buffering off;",
        "    proxy_connect_timeout 5s;",
        "    proxy_read_timeout 30s;",
        "    add_header Referrer-Policy no-referrer always;",
        "    add_header Cache-Control no-store always;",
        "}",
        "",
        # The gate of every request (auth_request): public and awake -> 204 at once.
        "location = /.demohub/gate {",
        "    internal;",
        '    if ($demohub_gate = "") {',
        "        return 204;",
        "    }",
        "    rewrite ^ /.demohub/gate-$demohub_gate last;",
        "}",
        "",
        "location = /.demohub/gate-wake {",
        "    internal;",
        "    proxy_pass http://demohub_hub/internal/proxy/wake;",
        *(f"    {line}" for line in hub_headers("wake")),
        "    proxy_method GET;",
        "    proxy_connect_timeout 5s;",
        f"    proxy_read_timeout {WAKE_TIMEOUT};",
        "}",
        "",
        "location = /.demohub/gate-auth {",
        "    internal;",
        "    proxy_pass http://demohub_hub/internal/proxy/auth;",
        *(f"    {line}" for line in hub_headers("auth")),
        "    proxy_method GET;",
        "    proxy_cache demohub_auth;",
        # The credential is part of the key: one visitor's answer is never another's. Hashed
        # (set-misc's set_sha1, in C): nginx writes the key in clear into each cache file.
        # The epoch is the content of the private flag (demohub.js accessEpoch).
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
        "",
        *hub_fallback_location("@denied", "denied"),
        "",
        # A 403: from the wake call, the app is not awake yet (the hub's waking page or 503); from
        # the access check, a refusal; from a static site, a directory without index.html.
        *hub_fallback_location("@refused", "$demohub_refused_reason",
                                first=['if ($demohub_gate = "") {', "    return 404;", "}"]),
    ]


def hub_fallback_location(name: str, reason: str, *, first: list[str] = ()) -> list[str]:
    """A named location where the hub answers for the space (as GET, without the body):
    ``@fallback`` when nginx cannot reach the app (status page, 503), ``@denied`` when the
    access check refused (as for a missing host: login, 401 or 404), ``@waking`` when a
    sleeping app is not awake yet (waking page, or 503 with Retry-After). The default server
    of the main template does the same for unknown hosts (reason "unknown")."""
    return [
        f"location {name} {{",
        *(f"    {line}" for line in first),
        "    proxy_pass http://demohub_hub$demohub_fallback_path;",
        *(f"    {line}" for line in hub_headers(reason)),
        "    proxy_set_header Cookie $http_cookie;",
        "    proxy_method GET;",
        "    proxy_intercept_errors off;",
        "    proxy_buffering off;",
        "    proxy_connect_timeout 5s;",
        "    proxy_read_timeout 120s;",
        "}",
    ]
