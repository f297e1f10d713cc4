"""The real proxy (deploy/proxy/run.sh + nginx + deploy/nginx/demohub.js) and the hub's
credentials: every copy of the space cookie is cut out of what the app gets, on https only
the `__Host-` cookie counts (a sibling space can toss a plain one onto the whole apps domain),
and the access-check cache on disk holds no token or cookie (issue 15, findings 11 and 12).
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from runner.proxy import sync_routes
from tests.unit.test_proxy import (
    AppHandler,
    HubHandler,
    Proxy,
    container,
    echo,
    free_port,
    proxy_settings,
    require_nginx,
    start_http,
    stop_http,
)

# One process for the whole file when scripts/test.sh runs tests in several (pytest-xdist):
# the module-scoped real nginx per scheme (`proxy`) is started once.
pytestmark = pytest.mark.xdist_group("test_proxy_credentials")


@pytest.fixture(scope="module", params=["http", "https"])
def proxy(request):
    require_nginx()
    base = Path(tempfile.mkdtemp(prefix="demohub-proxy-cred-"))
    os.chmod(base, 0o755)
    app, hub = start_http(AppHandler, "app"), start_http(HubHandler, "hub")
    hub.auth_calls = []
    port = free_port()
    # SPACES_SCHEME: the proxy itself listens on plain http either way.
    p = Proxy(base, port, proxy_settings(base, port, hub, SPACES_SCHEME=request.param))
    upstream = f"127.0.0.1:{app.server_address[1]}"
    sync_routes([container("pub", upstream), container("priv", upstream, private=True)], p.cfg)
    p.start()
    p.scheme, p.hub = request.param, hub
    p.cookie = "__Host-demohub_space" if request.param == "https" else "demohub_space"
    try:
        yield p
    finally:
        rc = p.stop()
        stop_http(app)
        stop_http(hub)
        shutil.rmtree(base, ignore_errors=True)
        assert rc == 0


def _get(proxy, label, cookie_headers=(), headers=None):
    """GET /echo, sending each of `cookie_headers` as its own Cookie header line."""
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        c.putrequest("GET", "/echo", skip_host=True)
        c.putheader("Host", proxy.host(label))
        for value in cookie_headers:
            c.putheader("Cookie", value)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


HUB_COPIES = ["demohub_space=forged1", "__Host-demohub_space=forged2", "__Secure-demohub_space=f3",
              "DEMOHUB_SPACE=f4", "demohub%5Fspace=f5", " demohub_space =f6", "%64emohub_space=f7"]


@pytest.mark.parametrize("label", ["pub", "priv"])
def test_every_copy_of_the_space_cookie_is_cut_out(proxy, label):
    good = f"{proxy.cookie}=good"
    status, _, body = _get(proxy, label, [
        f"a=1; {good}; {HUB_COPIES[0]}", "; ".join(HUB_COPIES[1:4]), f"b=2; {HUB_COPIES[4]};{HUB_COPIES[5]}",
        HUB_COPIES[6],
        f"{good}; c=3",
    ])
    assert status == 200, body
    assert echo(body)["h"]["cookie"] == "a=1; b=2; c=3"           # the app's own cookies, in order


def test_a_cookie_alone_reaches_the_app_unchanged(proxy):
    status, _, body = _get(proxy, "pub", ["x=1;y=2", "z=3"])
    assert status == 200 and echo(body)["h"]["cookie"] == "x=1;y=2; z=3"


def test_only_the_configured_cookie_name_is_a_credential(proxy):
    status, _, body = _get(proxy, "priv", [f"{proxy.cookie}=good"])
    assert status == 200, body
    assert proxy.hub.auth_calls[-1]["x-demohub-space-cookie"] == "good"
    if proxy.scheme == "https":
        # A plain demohub_space cookie is what a sibling space can set for .spaces.<domain>:
        # on https it is never read, so it cannot log a visitor in as someone else.
        status, headers, _ = _get(proxy, "priv", ["demohub_space=good"])
        assert status == 401 and headers.get("x-hub-answer") == "yes"   # the hub's "denied" answer
    else:
        status, headers, _ = _get(proxy, "priv", ["__Host-demohub_space=good"])
        assert status == 401 and headers.get("x-hub-answer") == "yes"


def test_the_access_cache_on_disk_holds_no_credential(proxy):
    secret_cookie = "good"
    token = "Bearer dh_good"
    for headers, cookies in (({"Authorization": token}, ()), ({"X-HF-Authorization": token}, ()),
                             ({"Origin": "http://origin-marker.example"}, [f"{proxy.cookie}={secret_cookie}"])):
        assert _get(proxy, "priv", cookies, headers)[0] == 200
    files = [f for f in (proxy.base / "run" / "cache" / "auth").rglob("*") if f.is_file()]
    assert files, "the access check was not cached"
    for f in files:
        data = f.read_bytes()
        assert b"dh_good" not in data and b"origin-marker" not in data
        key = re.search(rb"\nKEY: ([^\n]*)\n", data).group(1)
        assert re.fullmatch(rb"priv\|0\|[0-9a-f]{40}", key), key        # label|epoch|sha1
