"""runner/proxy.py (route files, generation) and the real proxy (deploy/proxy/run.sh + nginx).

The integration part starts deploy/proxy/run.sh on a free 127.0.0.1 port with a temporary
run directory, a small HTTP app and a WebSocket app as upstreams and a hub stand-in, and
talks to them only over 127.0.0.1 (host names are sent in the Host header).
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.exceptions import RouteError, RunnerError
from runner.proxy import (
    ProxyConfig,
    Route,
    current_generation,
    publish_route,
    remove_route,
    render_route,
    routes_out_of_date,
    sync_routes,
    validate_label,
)

# One process for the whole file when scripts/test.sh runs tests in several (pytest-xdist):
# the module-scoped real nginx (`stack`) is started once.
pytestmark = pytest.mark.xdist_group("test_proxy")

REPO = Path(__file__).resolve().parents[2]
RUN_SH = REPO / "deploy" / "proxy" / "run.sh"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
SECRET = "s3cret-proxy-key"


def container(label="alice-demo", upstream="10.213.0.12:7860", **kw) -> Route:
    return Route(label=label, space="alice/demo", kind="container", upstream=upstream, **kw)


def static(label="alice-site", root="/srv/sites/alice-site", **kw) -> Route:
    return Route(label=label, space="alice/site", kind="static", static_root=root, **kw)


@pytest.fixture
def cfg(tmp_path) -> ProxyConfig:
    return ProxyConfig(routes_dir=tmp_path / "proxy" / "routes")


# ------------------------------------------------------------------ validation and rendering


@pytest.mark.parametrize("label", ["a", "abc", "alice-demo", "a1-b2-c3", "0", "x" * 63])
def test_valid_labels(label):
    assert validate_label(label) == label


@pytest.mark.parametrize("label", [
    "", "-a", "a-", "A", "Alice", "a_b", "a.b", "a b", "x" * 64, "a\n", "a;", "a}", "é",
    "a/b", "*", None, 5,
])
def test_invalid_labels(label):
    with pytest.raises(RouteError):
        validate_label(label)


def test_route_error_is_a_runner_error():
    assert issubclass(RouteError, RunnerError)


def test_render_container(cfg):
    text = render_route(container(), cfg)
    assert "upstream sp_alice-demo {" in text
    assert "server 10.213.0.12:7860 max_fails=0;" in text
    assert "keepalive 32;" in text
    assert "server_name alice-demo.spaces.localhost;" in text
    assert "proxy_pass http://sp_alice-demo;" in text
    for line in [
        "proxy_http_version 1.1;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        'proxy_set_header X-HF-Authorization "";',
        'proxy_set_header X-Gradio-Server "";',
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "proxy_read_timeout 3600s;",
        "proxy_send_timeout 3600s;",
        "proxy_connect_timeout 2s;",
        "proxy_intercept_errors off;",
        "error_page 502 504 = @fallback;",
        "location @fallback {",
        "proxy_set_header X-Demohub-Reason unavailable;",
        "proxy_method GET;",
    ]:
        assert line in text, line
    assert "proxy_intercept_errors on" not in text
    assert text.count("{") == text.count("}")


def test_render_uses_domain_and_normalises_upstream(tmp_path):
    c = ProxyConfig(routes_dir=tmp_path, spaces_domain="apps.example.org")
    text = render_route(container(upstream="[::1]:8000"), c)
    assert "server_name alice-demo.apps.example.org;" in text
    assert "server [::1]:8000 max_fails=0;" in text


def test_render_static(cfg):
    text = render_route(static(root="/var/demohub/sites/alice-site/"), cfg)
    assert "root /var/demohub/sites/alice-site;" in text
    assert "index index.html;" in text
    assert "try_files $uri $uri/ =404;" in text
    assert "autoindex off;" in text
    assert "disable_symlinks off;" in text
    assert "location ~ /\\. {" in text
    assert "upstream sp_" not in text and "proxy_pass http://sp_" not in text   # files only


def test_state_is_not_part_of_the_route_file(cfg):
    """Visibility, access epoch and sleep are flag files read per request (issue 9): the file,
    and so the generation, never changes with them, and nothing reloads."""
    for make in (container, static):
        public = render_route(make(), cfg)
        for other in (make(private=True), make(private=True, access_epoch=9), make(sleeping=True)):
            assert render_route(other, cfg) == public
        # one gate, in the one location that serves the app or the files
        assert public.count("auth_request /.demohub/gate;") == 1
        assert "location = /.demohub/gate-auth {" in public and "location = /.demohub/gate-wake {" in public


def test_state_flags_change_without_a_generation_bump(cfg):
    route = container()
    assert publish_route(route, cfg) is True
    gen = current_generation(cfg)
    private = cfg.states_dir / f"{route.label}.private"
    sleeping = cfg.states_dir / f"{route.label}.sleeping"
    assert not private.exists() and not sleeping.exists()
    assert publish_route(container(private=True, access_epoch=3), cfg) is True
    assert private.read_text() == "3\n" and current_generation(cfg) == gen
    assert publish_route(container(private=True, access_epoch=4, sleeping=True), cfg) is True
    assert private.read_text() == "4\n" and sleeping.exists() and current_generation(cfg) == gen
    assert publish_route(container(private=True, access_epoch=4, sleeping=True), cfg) is False
    assert routes_out_of_date([container()], cfg) == [route.label]    # the state differs
    assert publish_route(container(), cfg) is True
    assert not private.exists() and not sleeping.exists() and current_generation(cfg) == gen
    assert routes_out_of_date([container()], cfg) == []
    publish_route(container(private=True), cfg)
    remove_route(route.label, cfg)
    assert not private.exists()


@pytest.mark.parametrize("upstream", [
    None, "", "10.0.0.1", "10.0.0.1:", ":80", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:80x",
    "example.com:80", "localhost:80", "10.0.0.256:80", "10.0.0.1:80;", "10.0.0.1:80 down",
    "10.0.0.1:80\n}", "::1:80", "[::1]", "[zz::1]:80", "10.0.0.01:80", "http://10.0.0.1:80",
    "10.0.0.1:80/x", "unix:/tmp/x.sock",
])
def test_bad_upstreams_refused(cfg, upstream):
    with pytest.raises(RouteError):
        render_route(container(upstream=upstream), cfg)


@pytest.mark.parametrize("root", [
    None, "", "relative/dir", "/", "//", "/srv/a b", "/srv/a;b", "/srv/a{b", "/srv/a}b",
    '/srv/"a', "/srv/'a", "/srv/$uri", "/srv/a\nb", "/srv/a\tb", "/srv/../etc", "/srv/./x",
    "/srv/a#b", "/srv/a\\b", "~/x",
])
def test_bad_static_roots_refused(cfg, root):
    with pytest.raises(RouteError):
        render_route(static(root=root), cfg)


@pytest.mark.parametrize("route", [
    Route("ok", "a/b", "container"),                              # no upstream
    Route("ok", "a/b", "static"),                                 # no root
    Route("ok", "a/b", "gradio", upstream="10.0.0.1:80"),         # unknown kind
    Route("ok", "a/b", "container", upstream="10.0.0.1:80", private="yes"),
    Route("-bad", "a/b", "container", upstream="10.0.0.1:80"),
])
def test_bad_routes_refused(cfg, route):
    with pytest.raises(RouteError):
        render_route(route, cfg)


@pytest.mark.parametrize("domain", ["", "Spaces.localhost", "a..b", "a b", "x;y", ".a", "a."])
def test_bad_domain_refused(tmp_path, domain):
    with pytest.raises(RouteError):
        render_route(container(), ProxyConfig(routes_dir=tmp_path, spaces_domain=domain))


def test_space_name_cannot_break_out_of_its_comment(cfg):
    route = Route("ok", "evil/x\n} server { listen 1; }", "container", upstream="10.0.0.1:80")
    text = render_route(route, cfg)
    comment = text.splitlines()[2]
    assert comment.startswith("# space: evil/x?")
    assert "listen 1" not in text.replace(comment, "")


# ------------------------------------------------------------------ files and generation


def conf_files(cfg: ProxyConfig) -> set[str]:
    return {p.name for p in cfg.routes_dir.iterdir() if p.name.endswith(".conf")}


def test_publish_writes_once_and_bumps_generation_only_on_change(cfg):
    assert current_generation(cfg) == 0
    route = container()
    assert publish_route(route, cfg) is True
    path = cfg.routes_dir / "alice-demo.conf"
    assert path.read_text() == render_route(route, cfg)
    assert current_generation(cfg) == 1
    assert (cfg.routes_dir.parent / "generation").read_text().strip() == "1"
    assert publish_route(route, cfg) is False                    # same content: nothing
    assert current_generation(cfg) == 1
    assert publish_route(container(upstream="10.213.0.13:7860"), cfg) is True
    assert current_generation(cfg) == 2
    assert "10.213.0.13:7860" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in cfg.routes_dir.iterdir()) == ["alice-demo.conf"]  # no temp files


def test_publish_invalid_route_writes_nothing(cfg):
    with pytest.raises(RouteError):
        publish_route(container(upstream="10.0.0.1:80;"), cfg)
    assert not cfg.routes_dir.exists() or not list(cfg.routes_dir.iterdir())
    assert current_generation(cfg) == 0


def test_remove_route(cfg):
    publish_route(container(), cfg)
    assert remove_route("alice-demo", cfg) is True
    assert conf_files(cfg) == set()
    assert current_generation(cfg) == 2
    assert remove_route("alice-demo", cfg) is False
    assert current_generation(cfg) == 2
    with pytest.raises(RouteError):
        remove_route("../x", cfg)


def test_sync_routes_is_reconciliation(cfg):
    publish_route(container("stale"), cfg)
    publish_route(container("keep"), cfg)
    (cfg.routes_dir / "not-ours.conf").write_text("garbage")
    (cfg.routes_dir / "README").write_text("left alone")
    gen = current_generation(cfg)

    desired = [container("keep"), container("new", "10.0.0.9:7860"), static("site")]
    assert sync_routes(desired, cfg) is True
    assert conf_files(cfg) == {"keep.conf", "new.conf", "site.conf"}
    assert (cfg.routes_dir / "README").exists()
    assert current_generation(cfg) == gen + 1                    # once, for all changes
    for r in desired:
        assert (cfg.routes_dir / f"{r.label}.conf").read_text() == render_route(r, cfg)

    assert sync_routes(iter(desired), cfg) is False              # nothing to do
    assert current_generation(cfg) == gen + 1

    assert sync_routes([], cfg) is True                          # remove everything
    assert conf_files(cfg) == set()
    assert current_generation(cfg) == gen + 2


def test_sync_with_an_invalid_route_changes_nothing(cfg):
    sync_routes([container("a"), container("b")], cfg)
    gen = current_generation(cfg)
    with pytest.raises(RouteError):
        sync_routes([container("a"), container("c", "nope")], cfg)
    with pytest.raises(RouteError):
        sync_routes([container("a"), container("a", "10.0.0.2:80")], cfg)   # duplicate label
    assert conf_files(cfg) == {"a.conf", "b.conf"}
    assert current_generation(cfg) == gen


def test_sync_removes_stale_temp_files(cfg):
    sync_routes([container("a")], cfg)
    old = cfg.routes_dir / ".tmp-a.conf.crashed"
    old.write_text("x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = cfg.routes_dir / ".tmp-b.conf.inflight"
    fresh.write_text("x")
    assert sync_routes([container("a")], cfg) is False
    assert not old.exists() and fresh.exists()


def test_remove_routes_except_cleans_like_sync(cfg):
    from runner.proxy import remove_routes_except, routes_out_of_date

    sync_routes([container("a"), container("b")], cfg)
    cfg.slots_dir.mkdir(parents=True, exist_ok=True)
    (cfg.slots_dir / "a.b").write_text("")
    (cfg.slots_dir / "b.b").write_text("")
    old = cfg.routes_dir / ".tmp-a.conf.crashed"
    old.write_text("x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    gen = current_generation(cfg)
    assert routes_out_of_date([container("a"), container("c")], cfg) == ["c"]
    assert remove_routes_except(["a"], cfg) is True
    assert conf_files(cfg) == {"a.conf"} and current_generation(cfg) == gen + 1
    assert (cfg.slots_dir / "a.b").exists() and not (cfg.slots_dir / "b.b").exists()
    assert not old.exists()
    assert remove_routes_except(["a"], cfg) is False and current_generation(cfg) == gen + 1


def test_remove_routes_except_keeps_a_route_written_since_the_labels_were_read(cfg):
    """Reconciliation reads the spaces, works through them, then removes the other routes: a
    space made meanwhile is not in its list, and its route must stay."""
    from runner.proxy import publish_route, remove_routes_except

    sync_routes([container("old"), container("gone")], cfg)
    past = time.time() - 60
    for name in ("old.conf", "gone.conf"):
        os.utime(cfg.routes_dir / name, (past, past))
    listed_at = time.time()
    publish_route(container("new"), cfg)                  # made after the read
    assert remove_routes_except(["old"], cfg, listed_at=listed_at) is True
    assert conf_files(cfg) == {"old.conf", "new.conf"}
    assert remove_routes_except(["old"], cfg) is True     # without the time, only the list counts
    assert conf_files(cfg) == {"old.conf"}


def test_concurrent_publishers_do_not_lose_generation_bumps(cfg):
    errors = []

    def work(i):
        try:
            for j in range(10):
                publish_route(container(f"w{i}", f"10.0.{i}.{j + 1}:80"), cfg)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert current_generation(cfg) == 40
    assert conf_files(cfg) == {f"w{i}.conf" for i in range(4)}


def test_routes_dir_may_be_a_string(tmp_path):
    c = ProxyConfig(routes_dir=str(tmp_path / "routes"))
    assert publish_route(container(), c) is True
    assert (tmp_path / "routes" / "alice-demo.conf").exists()
    assert current_generation(c) == 1
    assert sync_routes([], c) is True and remove_route("alice-demo", c) is False


def test_current_generation_tolerates_garbage(cfg):
    cfg.routes_dir.mkdir(parents=True)
    (cfg.routes_dir.parent / "generation").write_text("not a number")
    assert current_generation(cfg) == 0
    publish_route(container(), cfg)
    assert current_generation(cfg) == 1


# ------------------------------------------------------------------ the real proxy

def require_nginx() -> None:
    # Never a skip: `make test` installs nginx (scripts/host-tools.sh), so its absence is a failure.
    if NGINX is None:
        pytest.fail("nginx is not installed; run `make test`, which installs it")


needs_nginx = pytest.mark.usefixtures("_nginx_present")


@pytest.fixture
def _nginx_present() -> None:
    require_nginx()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def process_request(self, request, client_address):
        self.open_sockets.append(request)
        super().process_request(request, client_address)


class AppHandler(BaseHTTPRequestHandler):
    """A tiny app: /echo answers with what it got, /stream streams, /app502 fails itself."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body: bytes, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = b""
        if length:
            body = self.rfile.read(length)
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if not size:
                    break
                body += chunk
        self.server.client_ports.append(self.client_address[1])
        if self.path.startswith("/stream"):
            n, delay = 20, 0.1
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for i in range(n):
                    data = f"data: {i}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(delay)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return
        if self.path.startswith("/app502"):
            self._send(502, b"the app itself says 502", "text/plain")
            return
        payload = {
            "app": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body_len": len(body),
        }
        self._send(200, json.dumps(payload).encode())

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class HubHandler(BaseHTTPRequestHandler):
    """Stands in for the hub's /internal/proxy/fallback: records, answers 401 with extras."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        if self.path == "/internal/proxy/auth":
            return self._auth()
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_len": int(self.headers.get("Content-Length") or 0),
        }
        self.server.requests.append(record)
        body = json.dumps(record).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Hub-Answer", "yes")
        self.send_header("Set-Cookie", "hubtest=1; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _auth(self):
        """The access check: 'good' credentials may enter, anything else may not."""
        h = {k.lower(): v for k, v in self.headers.items()}
        self.server.auth_calls.append(h)
        ok = h.get("x-demohub-space-cookie") == "good" or "Bearer dh_good" in (
            h.get("authorization", ""), h.get("x-hf-authorization", ""))
        self.send_response(204 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


def start_http(handler, name) -> _Server:
    srv = _Server(("127.0.0.1", 0), handler)
    srv.name = name
    srv.client_ports = []
    srv.open_sockets = []
    srv.requests = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def stop_http(srv: _Server) -> None:
    """Stop like a container does: no listener and no open connection survives."""
    srv.shutdown()
    srv.server_close()
    for sock in srv.open_sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def proxy_settings(base: Path, port: int, hub, **extra: str) -> dict[str, str]:
    """The settings of a one-worker test proxy under `base`, in front of the test hub `hub`."""
    return {
        "PROXY_ROUTES_DIR": str(base / "proxy" / "routes"),
        "PROXY_RUN_DIR": str(base / "run"),
        "PROXY_LISTEN": f"127.0.0.1:{port}",
        "HUB_UPSTREAM": f"127.0.0.1:{hub.server_address[1]}",
        "PROXY_SHARED_SECRET": SECRET,
        "PROXY_WORKERS": "1",
        "SPACES_DOMAIN": "spaces.localhost",
        **extra,
    }


class Proxy:
    def __init__(self, base: Path, port: int, env: dict):
        self.base, self.port, self.env = base, port, env
        self.cfg = ProxyConfig(routes_dir=base / "proxy" / "routes")
        self.log_path = base / "run.log"
        self.proc: subprocess.Popen | None = None

    def start(self):
        env = {**os.environ, **self.env}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["bash", str(RUN_SH)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"run.sh exited {self.proc.returncode}:\n{self.output()}")
            try:
                status, _, _ = self.request("localhost", "/.demohub/proxy-health")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"proxy did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # nginx runs in run.sh's session: make sure nothing of it survives
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
        return self.proc.returncode

    def host(self, label: str) -> str:
        return f"{label}.spaces.localhost:{self.port}"

    def conn(self, timeout=10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, label_or_host, path="/", method="GET", headers=None, body=None):
        host = label_or_host if ("." in label_or_host or label_or_host == "localhost") \
            else self.host(label_or_host)
        c = self.conn()
        try:
            c.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()


@pytest.fixture(scope="module")
def stack():
    require_nginx()
    from websockets.sync.server import serve as ws_serve

    # Not pytest's tmp_path: that is private to us (0700), and nginx workers run as
    # www-data/nobody when the tests run as root; they must read static files.
    base = Path(tempfile.mkdtemp(prefix="demohub-proxy-test-"))
    os.chmod(base, 0o755)
    app = start_http(AppHandler, "app")
    gone = start_http(AppHandler, "gone")
    hub = start_http(HubHandler, "hub")

    ws_headers = []

    def ws_handler(ws):
        ws_headers.append({k.lower(): v for k, v in ws.request.headers.raw_items()})
        for message in ws:
            ws.send(f"echo:{message}")

    ws_server = ws_serve(ws_handler, "127.0.0.1", 0, subprotocols=["streamlit"])
    threading.Thread(target=ws_server.serve_forever, daemon=True).start()
    ws_port = ws_server.socket.getsockname()[1]

    site = base / "site"
    (site / "sub").mkdir(parents=True)
    (site / "empty").mkdir()
    (site / ".git").mkdir()
    (site / "index.html").write_text("<h1>static home</h1>")
    (site / "style.css").write_text("body{}")
    (site / "sub" / "a.txt").write_text("file a")
    (site / "sub" / ".hidden").write_text("hidden")
    (site / ".env").write_text("SECRET=1")
    (site / ".git" / "config").write_text("[core]")
    for p in [site, *site.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    # the served root is a symlink, as in production (sites/<label> -> snapshot)
    (base / "sites").mkdir()
    os.chmod(base / "sites", 0o755)
    os.symlink(site, base / "sites" / "site")

    port = free_port()
    proxy = Proxy(base, port, proxy_settings(base, port, hub))
    hub.auth_calls = []
    proxy.routes = {
        "app": container("app", f"127.0.0.1:{app.server_address[1]}"),
        "gone": container("gone", f"127.0.0.1:{gone.server_address[1]}"),
        "ws": container("ws", f"127.0.0.1:{ws_port}"),
        "site": static("site", str(base / "sites" / "site")),
        "priv": container("priv", f"127.0.0.1:{app.server_address[1]}", private=True),
        "psite": static("psite", str(base / "sites" / "site"), private=True),
    }
    sync_routes(proxy.routes.values(), proxy.cfg)
    proxy.start()
    proxy.app, proxy.gone, proxy.hub, proxy.ws_headers = app, gone, hub, ws_headers
    try:
        yield proxy
    finally:
        rc = proxy.stop()
        ws_server.shutdown()
        for s in (app, hub):
            stop_http(s)
        try:
            stop_http(gone)
        except OSError:
            pass
        shutil.rmtree(base, ignore_errors=True)
        assert rc == 0, proxy_output_tail(proxy)


def proxy_output_tail(proxy: Proxy) -> str:
    try:
        err = (proxy.base / "run" / "logs" / "error.log").read_text(errors="replace")
    except FileNotFoundError:
        err = ""
    return f"run.sh output:\n{proxy.output()[-3000:]}\nerror.log:\n{err[-3000:]}"


def echo(body: bytes) -> dict:
    data = json.loads(body)
    data["h"] = dict(data["headers"])
    return data


@needs_nginx
def test_request_reaches_app_with_headers_fixed(stack):
    status, headers, body = stack.request("app", "/echo?x=1&file=/tmp/a%20b", headers={
        "X-HF-Authorization": "Bearer hf_usertoken",
        "Authorization": "Bearer dh_hubtoken",
        "X-Gradio-Server": "http://evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Demohub-Proxy-Key": "guess",
        "Cookie": "a=b",
    })
    assert status == 200, body
    got = echo(body)
    assert got["app"] == "app"
    assert got["path"] == "/echo?x=1&file=/tmp/a%20b"              # URI unchanged
    h = got["h"]
    assert h["host"] == stack.host("app")                            # port kept
    assert h["x-forwarded-host"] == stack.host("app")
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert "x-hf-authorization" not in h
    assert "authorization" not in h                                  # hub token removed
    assert "x-gradio-server" not in h
    assert "x-demohub-proxy-key" not in h
    assert h["cookie"] == "a=b"
    assert h.get("connection", "") != "close"


@needs_nginx
def test_an_apps_own_authorization_passes(stack):
    status, _, body = stack.request("app", "/echo", headers={"Authorization": "Basic dTpw"})
    assert status == 200
    assert echo(body)["h"]["authorization"] == "Basic dTpw"


@needs_nginx
def test_upstream_keepalive_is_used(stack):
    before = len(stack.app.client_ports)
    c = stack.conn()
    try:
        for _ in range(10):
            c.request("GET", "/echo", headers={"Host": stack.host("app")})
            r = c.getresponse()
            assert r.status == 200
            assert "connection" not in echo(r.read())["h"]           # empty Connection header
    finally:
        c.close()
    ports = stack.app.client_ports[before:]
    assert len(ports) == 10
    assert len(set(ports)) <= 2, ports                               # reused, not 10 connections


@needs_nginx
def test_large_upload_is_streamed_through(stack):
    body = b"x" * (3 * 1024 * 1024)                                  # above nginx's 1m default
    status, _, resp = stack.request("app", "/echo", method="POST", body=body,
                                    headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    assert echo(resp)["body_len"] == len(body)


@needs_nginx
def test_apps_own_502_passes_through(stack):
    n = len(stack.hub.requests)
    status, _, body = stack.request("app", "/app502")
    assert status == 502
    assert body == b"the app itself says 502"
    assert len(stack.hub.requests) == n


@needs_nginx
def test_streaming_is_not_buffered(stack):
    c = stack.conn()
    try:
        t0 = time.monotonic()
        c.request("GET", "/stream", headers={"Host": stack.host("app"), "Accept-Encoding": "gzip"})
        r = c.getresponse()
        assert r.status == 200
        first = r.readline()
        assert first == b"data: 0\n"
        assert time.monotonic() - t0 < 1.0                            # the stream lasts 2 s
        assert "content-encoding" not in {k.lower() for k, _ in r.getheaders()}
        rest = r.read()
        assert rest.count(b"data: ") == 19
    finally:
        c.close()


@needs_nginx
def test_unknown_host_goes_to_the_hub(stack):
    n = len(stack.hub.requests)
    status, headers, body = stack.request(
        f"nobody-here.spaces.localhost:{stack.port}", "/config?x=1", method="POST",
        body=b'{"a": 1}', headers={
            "Accept": "application/json",
            "Authorization": "Bearer dh_tok",
            "X-HF-Authorization": "Bearer hf_tok",
            "Cookie": "session=abc",
            "X-Other": "not passed",
            "X-Demohub-Reason": "forged",
            "Content-Type": "application/json",
        })
    assert status == 401                                              # the hub's answer, unchanged
    assert headers["x-hub-answer"] == "yes"
    assert headers["set-cookie"] == "hubtest=1; Path=/"
    assert len(stack.hub.requests) == n + 1
    got = stack.hub.requests[-1]
    assert json.loads(body) == got
    assert got["method"] == "GET"
    assert got["path"] == "/internal/proxy/fallback"
    assert got["body_len"] == 0
    h = got["headers"]
    assert h["x-demohub-host"] == "nobody-here.spaces.localhost"
    assert h["x-demohub-uri"] == "/config?x=1"
    assert h["x-demohub-method"] == "POST"
    assert h["x-demohub-reason"] == "unknown"
    assert h["x-demohub-proxy-key"] == SECRET
    assert h["accept"] == "application/json"
    assert h["authorization"] == "Bearer dh_tok"
    assert h["x-hf-authorization"] == "Bearer hf_tok"
    assert h["cookie"] == "session=abc"
    assert "x-other" not in h and "content-type" not in h


@needs_nginx
def test_request_without_matching_host_goes_to_the_hub(stack):
    status, _, body = stack.request(f"127.0.0.1:{stack.port}", "/")
    assert status == 401
    assert json.loads(body)["headers"]["x-demohub-reason"] == "unknown"


@needs_nginx
def test_stopped_app_falls_back_to_the_hub(stack):
    status, _, body = stack.request("gone", "/echo")
    assert status == 200 and echo(body)["app"] == "gone"
    stop_http(stack.gone)                                             # the container stops
    n = len(stack.hub.requests)
    status, headers, body = stack.request("gone", "/some/page?q=2", method="PUT", body=b"data",
                                          headers={"Accept": "text/html"})
    assert status == 401, body
    assert headers["x-hub-answer"] == "yes"
    assert len(stack.hub.requests) == n + 1
    h = stack.hub.requests[-1]["headers"]
    assert stack.hub.requests[-1]["method"] == "GET"
    assert h["x-demohub-reason"] == "unavailable"
    assert h["x-demohub-host"] == "gone.spaces.localhost"
    assert h["x-demohub-uri"] == "/some/page?q=2"
    assert h["x-demohub-method"] == "PUT"
    assert h["x-demohub-proxy-key"] == SECRET
    assert h["accept"] == "text/html"


@needs_nginx
def test_static_space(stack):
    status, headers, body = stack.request("site", "/")
    assert status == 200 and body == b"<h1>static home</h1>"
    assert headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-cache"
    status, headers, body = stack.request("site", "/index.html")
    assert status == 200 and headers["cache-control"] == "no-cache"
    status, headers, body = stack.request("site", "/style.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert "max-age" in headers["cache-control"]
    status, _, body = stack.request("site", "/sub/a.txt")
    assert status == 200 and body == b"file a"
    for path in ["/.env", "/.git/config", "/.git/", "/sub/.hidden", "/missing.html",
                 "/empty/", "/sub/", "/%2eenv", "/sub/../.env"]:
        status, _, body = stack.request("site", path)
        assert status == 404, (path, status, body)


@needs_nginx
def test_static_root_symlink_swap_is_followed(stack):
    base = stack.base
    new = base / "site2"
    new.mkdir()
    (new / "index.html").write_text("version 2")
    os.chmod(new, 0o755)
    os.chmod(new / "index.html", 0o644)
    link = base / "sites" / "site"
    tmp = base / "sites" / ".site.new"
    os.symlink(new, tmp)
    os.replace(tmp, link)                                             # atomic swap
    try:
        status, _, body = stack.request("site", "/")
        assert status == 200 and body == b"version 2"
    finally:
        os.symlink(base / "site", tmp)
        os.replace(tmp, link)


@needs_nginx
def test_websocket_upgrade_passes(stack):
    from websockets.sync.client import connect

    origin = f"http://{stack.host('ws')}"
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    with connect(f"ws://{stack.host('ws')}/_stcore/stream", sock=sock, origin=origin,
                 subprotocols=["streamlit"], open_timeout=10) as ws:
        assert ws.subprotocol == "streamlit"
        ws.send("hello")
        assert ws.recv(timeout=10) == "echo:hello"
        ws.send("again")
        assert ws.recv(timeout=10) == "echo:again"
    h = stack.ws_headers[-1]
    assert h["host"] == stack.host("ws")                              # Streamlit's origin check
    assert h["origin"] == origin
    assert h["upgrade"].lower() == "websocket"


def wait_until_routed(stack, label, deadline_s=3.0) -> float:
    """Poll until requests for `label` reach an app (not the hub); return seconds taken."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        status, _, body = stack.request(label, "/echo")
        if status == 200 and json.loads(body).get("app"):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"{label} not routed after {deadline_s}s\n{proxy_output_tail(stack)}")


@needs_nginx
def test_new_route_goes_live_without_restart_and_open_stream_survives(stack):
    status, _, body = stack.request("late", "/echo")
    assert status == 401 and json.loads(body)["headers"]["x-demohub-reason"] == "unknown"
    nginx_pid = (stack.base / "run" / "nginx.pid").read_text().strip()

    c = stack.conn(timeout=15)
    try:
        c.request("GET", "/stream", headers={"Host": stack.host("app")})
        r = c.getresponse()
        assert r.status == 200
        assert r.readline() == b"data: 0\n"

        gen = current_generation(stack.cfg)
        assert publish_route(container("late", f"127.0.0.1:{stack.app.server_address[1]}"),
                             stack.cfg) is True
        assert current_generation(stack.cfg) == gen + 1
        took = wait_until_routed(stack, "late")
        print(f"new route live after {took:.2f}s")

        rest = r.read()                                               # stream opened before the reload
        assert rest.count(b"data: ") == 19, rest
        assert rest.rstrip().endswith(b"data: 19")
    finally:
        c.close()
    assert (stack.base / "run" / "nginx.pid").read_text().strip() == nginx_pid   # no restart

    assert remove_route("late", stack.cfg) is True
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        status, _, body = stack.request("late", "/echo")
        if status == 401:
            break
        time.sleep(0.05)
    assert status == 401 and json.loads(body)["headers"]["x-demohub-reason"] == "unknown"


@needs_nginx
def test_broken_config_keeps_the_running_one(stack):
    bad = stack.cfg.routes_dir / "broken.conf"
    bad.write_text("server { this is not nginx }\n")
    try:
        publish_route(container("after-bad", f"127.0.0.1:{stack.app.server_address[1]}"), stack.cfg)
        deadline = time.monotonic() + 3
        while "config test FAILED" not in stack.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "config test FAILED" in stack.output()
        status, _, _ = stack.request("app", "/echo")                  # still serving
        assert status == 200
    finally:
        bad.unlink()
    # the next change reloads a good config again
    publish_route(Route(label="after-bad", space="alice/renamed", kind="container",
                        upstream=f"127.0.0.1:{stack.app.server_address[1]}"), stack.cfg)
    wait_until_routed(stack, "after-bad")
    remove_route("after-bad", stack.cfg)


@needs_nginx
def test_run_sh_refuses_unsafe_settings(tmp_path):
    routes = tmp_path / "routes"
    for extra in [{"PROXY_SHARED_SECRET": 'x"; }'}, {"HUB_UPSTREAM": "127.0.0.1:1; evil"},
                  {"PROXY_LISTEN": "127.0.0.1:1;"}, {"PROXY_MAX_BODY_SIZE": "1m;"},
                  {"PROXY_ROUTES_DIR": str(tmp_path / "a b")}]:
        env = {**os.environ, "PROXY_ROUTES_DIR": str(routes), **extra}
        p = subprocess.run(["bash", str(RUN_SH)], env=env, capture_output=True, timeout=10)
        assert p.returncode == 2, (extra, p.stderr)
        assert not (tmp_path / "run" / "nginx.pid").exists()
    p = subprocess.run(["bash", str(RUN_SH)], env={k: v for k, v in os.environ.items()
                                                   if k != "PROXY_ROUTES_DIR"},
                       capture_output=True, timeout=10)
    assert p.returncode != 0 and b"PROXY_ROUTES_DIR" in p.stderr


@needs_nginx
def test_run_sh_stops_with_nginx_on_sigterm(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="demohub-proxy-test-"))
    os.chmod(base, 0o755)
    port = free_port()
    proxy = Proxy(base, port, {"PROXY_ROUTES_DIR": str(base / "routes"),
                               "PROXY_LISTEN": f"127.0.0.1:{port}", "PROXY_WORKERS": "1",
                               "PROXY_SHARED_SECRET": SECRET})
    try:
        proxy.start()
        assert (base / "run" / "nginx.conf").exists()                  # default: next to routes
        assert oct((base / "run" / "nginx.conf").stat().st_mode & 0o777) == "0o600"
        pid = int((base / "run" / "nginx.pid").read_text())
        proxy.proc.send_signal(signal.SIGTERM)
        assert proxy.proc.wait(10) == 0
        with pytest.raises(ProcessLookupError):
            for _ in range(50):                                      # nginx is gone too
                os.kill(pid, 0)
                time.sleep(0.1)
    finally:
        proxy.stop()
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ private spaces: the access gate


def test_render_container_has_the_gate(cfg):
    text = render_route(container(private=True, access_epoch=7), cfg)
    assert "auth_request /.demohub/gate;" in text
    assert "error_page 401 = @denied;" in text and "error_page 403 = @refused;" in text
    assert "location = /.demohub/gate-auth {" in text and "internal;" in text
    # the epoch is the private flag's content, read per request (demohub.js)
    assert 'proxy_cache_key "alice-demo|$demohub_access_epoch|$demohub_auth_key";' in text
    assert "proxy_hide_header Access-Control-Allow-Origin;" in text
    assert "add_header Access-Control-Allow-Origin $demohub_app_acao always;" in text
    assert "frame-ancestors 'self' http://localhost:8000" in text
    assert f"if (-f {cfg.states_dir}/alice-demo.private) {{" in text
    assert f"if (-f {cfg.states_dir}/alice-demo.sleeping) {{" in text
    assert "location @denied {" in text and "location @refused {" in text
    assert text.count("{") == text.count("}")
    assert "location ^~ /.demohub/ {" in text      # the ticket exchange exists on every host


def test_bad_hub_origin_or_epoch_refused(tmp_path):
    bad = ProxyConfig(routes_dir=tmp_path, hub_origin='http://x" always; evil')
    with pytest.raises(RouteError):
        render_route(container(private=True), bad)
    for epoch in (-1, "1", 1.5, True):
        with pytest.raises(RouteError):
            render_route(container(access_epoch=epoch), ProxyConfig(routes_dir=tmp_path))


def _auth_calls(stack) -> int:
    return len(stack.hub.auth_calls)


@needs_nginx
@pytest.mark.parametrize("label", ["priv", "psite"])
def test_private_space_without_credentials_is_denied_by_the_hub(stack, label):
    n = len(stack.hub.requests)
    status, headers, body = stack.request(label, "/echo", headers={"Accept": "text/html"})
    assert status == 401 and headers["x-hub-answer"] == "yes"         # the hub's "hidden" answer
    got = stack.hub.requests[n]
    assert got["path"] == "/internal/proxy/fallback"
    assert got["headers"]["x-demohub-reason"] == "denied"
    assert got["headers"]["x-demohub-host"] == f"{label}.spaces.localhost"
    assert got["headers"]["x-demohub-uri"] == "/echo"
    assert b'"app"' not in body


@needs_nginx
def test_private_space_with_cookie_reaches_app_without_hub_credentials(stack):
    status, headers, body = stack.request("priv", "/echo", headers={
        "Cookie": "a=1; demohub_space=good; b=2",
        "X-HF-Authorization": "Bearer hf_personal",
        "Authorization": "Bearer dh_other",
    })
    assert status == 200, body
    h = echo(body)["h"]
    assert h["cookie"] == "a=1; b=2"
    assert "x-hf-authorization" not in h and "authorization" not in h
    assert "x-demohub-space-cookie" not in h
    assert "frame-ancestors 'self' http://localhost:8000" in headers["content-security-policy"]


@needs_nginx
@pytest.mark.parametrize("cookie, expected", [
    ("demohub_space=good", None),
    ("demohub_space=good; z=9", "z=9"),
    ("z=9;demohub_space=good", "z=9"),
    ("x_demohub_space=1; demohub_space=good", "x_demohub_space=1"),
    ("demohub_space=good; demohub_space=forged; k=v", "k=v"),
    ("demohub_space=good; a=1; demohub_space=2; b=2; demohub_space=3; demohub_space=4", "a=1; b=2"),
])
def test_space_cookie_is_cut_out_of_the_apps_cookie_header(stack, cookie, expected):
    status, _, body = stack.request("priv", "/echo", headers={"Cookie": cookie})
    assert status == 200, body
    assert echo(body)["h"].get("cookie") == expected


@needs_nginx
@pytest.mark.parametrize("header", ["Authorization", "X-HF-Authorization"])
def test_private_space_with_api_token_reaches_app(stack, header):
    status, _, body = stack.request("priv", "/echo", headers={header: "Bearer dh_good"})
    assert status == 200, body
    h = echo(body)["h"]
    assert "authorization" not in h and "x-hf-authorization" not in h


@needs_nginx
def test_access_answers_are_cached_per_credential_and_epoch(stack):
    # A fresh Origin (part of the key) so that earlier tests' cached answers do not count.
    cookie = {"Cookie": "demohub_space=good", "Origin": f"http://t{time.monotonic_ns()}.example"}
    before = _auth_calls(stack)
    for _ in range(20):
        assert stack.request("priv", "/echo", headers=cookie)[0] == 200
    assert _auth_calls(stack) - before == 1                          # the hub was asked once
    token = {"Authorization": "Bearer dh_good", "Origin": cookie["Origin"]}
    assert stack.request("priv", "/echo", headers=token)[0] == 200
    assert _auth_calls(stack) - before == 2                          # another credential: asked
    # A new access epoch (access changed at the hub) is a new key: asked again at once.
    route = stack.routes["priv"]
    stack.routes["priv"] = Route(**{**route.__dict__, "access_epoch": route.access_epoch + 1})
    publish_route(stack.routes["priv"], stack.cfg)
    deadline = time.monotonic() + 5
    while _auth_calls(stack) - before < 3 and time.monotonic() < deadline:
        assert stack.request("priv", "/echo", headers=cookie)[0] == 200
        time.sleep(0.05)
    assert _auth_calls(stack) - before == 3


@needs_nginx
def test_private_app_cannot_be_read_cross_site(stack):
    status, headers, _ = stack.request("priv", "/echo", headers={
        "Cookie": "demohub_space=good", "Origin": "http://evil.example"})
    assert status == 200                                  # the stand-in hub allows; the real one checks Origin
    assert "access-control-allow-origin" not in headers
    assert stack.hub.auth_calls[-1]["origin"] == "http://evil.example"   # the hub sees the Origin


@needs_nginx
def test_ticket_exchange_path_goes_to_the_hub_on_every_host(stack):
    for label in ("app", "priv", "site", "psite"):
        n = len(stack.hub.requests)
        status, headers, _ = stack.request(label, "/.demohub/session?ticket=abc&next=%2Fx", method="POST",
                                           headers={"Cookie": "demohub_space=good"})
        assert status == 401 and headers["x-hub-answer"] == "yes", label
        got = stack.hub.requests[n]
        assert got["path"] == "/internal/proxy/session"
        assert got["headers"]["x-demohub-uri"] == "/.demohub/session?ticket=abc&next=%2Fx"
        assert got["headers"]["x-demohub-space-cookie"] == "good"
        assert got["headers"]["x-demohub-proxy-key"] == SECRET
        assert headers["referrer-policy"] == "no-referrer"


@needs_nginx
def test_state_changes_reload_nothing_and_keep_alive_connections_live(stack):
    """Issue 9: private/public and asleep/awake are flag files read per request. Through a
    burst of them a keep-alive connection to another space keeps working, the generation and
    the proxy's reload count stay where they were, and each state takes effect for new requests
    once wait_applied() returns."""
    from runner.proxy import wait_applied

    route = container("churn", stack.routes["app"].upstream)
    publish_route(route, stack.cfg)
    assert wait_applied(stack.cfg, timeout=10)
    reloads_file = stack.cfg.routes_dir.parent / "reloads"
    gen, reloads = current_generation(stack.cfg), reloads_file.read_text()
    kept = stack.conn()
    kept.request("GET", "/echo", headers={"Host": stack.host("app")})
    assert kept.getresponse().read() and True
    for private, sleeping in ((True, False), (False, True), (True, True), (False, False)):
        n = len(stack.hub.requests)
        publish_route(Route(**{**route.__dict__, "private": private, "sleeping": sleeping,
                               "access_epoch": 5}), stack.cfg)
        assert wait_applied(stack.cfg, timeout=5)
        status, headers, _ = stack.request("churn", "/echo")
        if not (private or sleeping):
            # A flag that goes away opens the space: a worker may see it for one more second.
            deadline = time.monotonic() + 1.5
            while status != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
                status, headers, _ = stack.request("churn", "/echo")
            assert status == 200 and "x-hub-answer" not in headers
        else:
            assert status == 401 and headers["x-hub-answer"] == "yes"   # the stand-in hub refuses
            paths = [r["path"] for r in stack.hub.requests[n:]]
            # asleep: the hub was asked to wake it (and refused: @denied); private: the access check
            assert ("/internal/proxy/wake" in paths) == sleeping, paths
        kept.request("POST", "/echo", body=b"x" * 1000, headers={"Host": stack.host("app")})
        r = kept.getresponse()
        assert r.status == 200 and echo(r.read())["body_len"] == 1000    # same connection, body intact
    kept.close()
    assert current_generation(stack.cfg) == gen and reloads_file.read_text() == reloads
    remove_route("churn", stack.cfg)


@needs_nginx
def test_route_changes_are_batched_into_one_reload_a_second(stack):
    from runner.proxy import wait_applied

    reloads_file = stack.cfg.routes_dir.parent / "reloads"
    assert wait_applied(stack.cfg, timeout=10)
    time.sleep(1.1)
    before = int(reloads_file.read_text())
    started = time.monotonic()
    for i in range(10):
        publish_route(container(f"batch{i}", stack.routes["app"].upstream), stack.cfg)
        time.sleep(0.05)
    for i in range(10):
        remove_route(f"batch{i}", stack.cfg)
    assert wait_applied(stack.cfg, timeout=10)
    took = time.monotonic() - started
    # 20 generation bumps within ~0.6 s: at most one reload per started second, plus one.
    assert int(reloads_file.read_text()) - before <= int(took) + 2, (reloads_file.read_text(), before, took)


@needs_nginx
def test_the_analytics_log_has_one_line_per_space_request_without_query_strings(stack):
    log = stack.base / "proxy" / "analytics.log"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    n = f"n{time.monotonic_ns()}"                  # this test's lines (earlier tests' may still be buffered)
    stack.request("app", f"/{n}/echo?ticket=sekrit", headers={"Accept": "text/html,application/xhtml+xml"})
    stack.request("app", f"/gradio_api/{n}?token=x", headers={"Accept": "*/*"})
    stack.request("app", f"/{n}/data", headers={"Accept": "application/json"})
    stack.request("site", f"/{n}/style.css", headers={"Accept": "text/css"})
    stack.request("site", f"/{n}/nope.html", headers={"Accept": "text/html"})
    stack.request("app", f"/.demohub/session?ticket=abc&next=%2F{n}")  # hub plumbing: not counted
    deadline = time.monotonic() + 10                                    # nginx flushes every second
    while True:
        text = log.read_bytes().replace(b"\0", b"").decode()
        lines = [ln.split("\t") for ln in text.splitlines() if n in ln]
        if len(lines) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(1.2)
    text = log.read_bytes().replace(b"\0", b"").decode()
    lines = [ln.split("\t") for ln in text.splitlines() if n in ln]
    assert len(lines) == 5, "\n".join("|".join(p) for p in lines)
    assert all(len(parts) == 8 for parts in lines)
    by_uri = {parts[7]: parts for parts in lines}
    assert set(by_uri) == {f"/{n}/echo", f"/gradio_api/{n}", f"/{n}/data", f"/{n}/style.css", f"/{n}/nope.html"}
    echo_line = by_uri[f"/{n}/echo"]
    assert echo_line[1] == stack.host("app").split(":")[0] and echo_line[2] == "200"
    kinds = [by_uri[u][5] for u in (f"/{n}/echo", f"/gradio_api/{n}", f"/{n}/data", f"/{n}/style.css")]
    assert kinds == ["page", "api", "api", "other"]
    assert by_uri[f"/{n}/nope.html"][2] == "404" and by_uri[f"/{n}/nope.html"][6] == "127.0.0.1"
    assert float(echo_line[0]) > time.time() - 60 and float(echo_line[3]) >= 0
    assert "sekrit" not in text and "/.demohub" not in text and "internal/proxy" not in text


# --------------------------------------------------------------------------- embedding (issue 14)
def _frame_policy(stack, label: str) -> str | None:
    _, headers, _ = stack.request(label, "/")
    return headers.get("content-security-policy")


def _embeddable(label: str, cfg) -> bool:
    from runner.proxy import embedding_allowed

    return embedding_allowed(label, cfg)


@needs_nginx
@pytest.mark.parametrize("label", ["app", "site"])
def test_disable_embedding_is_a_flag_read_per_request(stack, label):
    from dataclasses import replace

    from runner.proxy import wait_applied

    hub_origin = stack.cfg.hub_origin
    route = stack.routes[label]
    assert _frame_policy(stack, label) is None                 # public, embedding allowed: no header at all
    generation = current_generation(stack.cfg)
    assert publish_route(replace(route, embedding=False), stack.cfg) and not _embeddable(label, stack.cfg)
    try:
        assert wait_applied(stack.cfg, timeout=10)
        deadline = time.monotonic() + 3
        while _frame_policy(stack, label) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _frame_policy(stack, label) == f"frame-ancestors 'self' {hub_origin}"
        assert current_generation(stack.cfg) == generation      # no reload
    finally:
        publish_route(replace(route, embedding=True), stack.cfg)
    deadline = time.monotonic() + 3
    while _frame_policy(stack, label) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _frame_policy(stack, label) is None


def test_publish_and_remove_keep_the_embedding_flag(cfg):
    from dataclasses import replace

    from runner.proxy import routes_out_of_date

    route = Route(label="emb", space="o/emb", kind="container", upstream="127.0.0.1:7860", embedding=False)
    assert publish_route(route, cfg) and not _embeddable("emb", cfg)
    assert routes_out_of_date([replace(route, embedding=True)], cfg) == ["emb"]   # reconciliation notices
    assert publish_route(replace(route, embedding=True), cfg) and _embeddable("emb", cfg)
    publish_route(route, cfg)
    assert remove_route("emb", cfg) and _embeddable("emb", cfg)
