"""The blue/green switch without a proxy reload (runner/proxy.py slot flags), the drain of the
old container (spaces/lifecycle/redeploy.py, runner/connections.py), and reconcile leaving a draining
container alone. The switch is checked on a real nginx under keep-alive load."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pytest
import requests

from runner import proxy
from runner.connections import connections_to
from runner.proxy import ProxyConfig, Route
from spaces.lifecycle.converge import reconcile
from spaces.lifecycle.routes import container_name, proxy_config
from tests.unit.test_proxy import Proxy, free_port, require_nginx


def two_slots(label="alice-demo", a="10.213.0.12:7860", b="10.213.0.13:7860", slot="a") -> Route:
    return Route(label=label, space="alice/demo", kind="container", upstream=a, upstream_b=b, active_slot=slot)


@pytest.fixture
def cfg(tmp_path) -> ProxyConfig:
    config = ProxyConfig(routes_dir=tmp_path / "proxy" / "routes")
    config.routes_dir.mkdir(parents=True)
    (tmp_path / "proxy" / "applied").write_text("1000000000\n")  # a proxy that applied everything
    return config


# ------------------------------------------------------------------------------ rendering, flags
def test_a_two_slot_route_holds_both_slots_and_reads_the_flag(cfg):
    text = proxy.render_route(two_slots(slot="b"), cfg)
    assert "upstream sp_alice-demo {\n    hash $demohub_slot;\n    server 10.213.0.12:7860 max_fails=0;\n" \
           "    server 10.213.0.13:7860 max_fails=0;\n    keepalive 32;" in text
    assert f"    if (-f {cfg.slots_dir}/alice-demo.b) {{\n        set $demohub_slot slot-b;\n    }}" in text
    assert "    set $demohub_slot slot-a;" in text and "proxy_pass http://sp_alice-demo;" in text
    assert "open_file_cache_valid 1s;" in text and "open_file_cache_errors on;" in text
    # The active slot is not in the file: switching does not change it.
    assert text == proxy.render_route(two_slots(slot="a"), cfg)


def test_the_slot_keys_select_the_first_and_second_server_in_nginxs_hash():
    # ngx_http_upstream_hash_module: server ((crc32(key) >> 16) & 0x7fff) % total weight.
    pick = {slot: ((zlib.crc32(key.encode()) >> 16) & 0x7FFF) % 2 for slot, key in proxy.SLOT_KEYS.items()}
    assert pick == {"a": 0, "b": 1}


def test_moving_the_slot_needs_no_reload(cfg):
    assert proxy.publish_route(two_slots(), cfg) is True
    generation = proxy.current_generation(cfg)
    assert proxy.active_slot("alice-demo", cfg) == "a"
    assert proxy.publish_route(two_slots(slot="b"), cfg) is True  # moved: wait_applied() before RUNNING
    assert proxy.current_generation(cfg) == generation
    assert (cfg.slots_dir / "alice-demo.b").exists() and proxy.active_slot("alice-demo", cfg) == "b"
    assert proxy.publish_route(two_slots(slot="b"), cfg) is False
    assert proxy.publish_route(two_slots(slot="a"), cfg) is True
    assert not (cfg.slots_dir / "alice-demo.b").exists() and proxy.current_generation(cfg) == generation


def test_a_flag_moves_only_once_a_changed_file_is_applied(cfg, monkeypatch):
    proxy.publish_route(two_slots(), cfg)
    seen = []
    monkeypatch.setattr(proxy, "wait_applied", lambda config, timeout=5.0: seen.append(proxy.active_slot("alice-demo", cfg)))
    # A new app port changes the file and moves the slot: the proxy must know the new
    # upstreams before the traffic moves to them.
    proxy.publish_route(two_slots(a="10.213.0.12:8000", b="10.213.0.13:8000", slot="b"), cfg)
    assert seen == ["a"] and proxy.active_slot("alice-demo", cfg) == "b"


def test_wait_applied_waits_until_every_worker_sees_a_moved_slot(cfg):
    proxy.publish_route(two_slots(), cfg)
    proxy.set_active_slot("alice-demo", "b", cfg)
    moved = time.time()
    assert proxy.wait_applied(cfg) is True
    # nginx's cached look at the flag lasts until its whole-second clock moves on.
    assert time.time() >= int(moved) + proxy.SLOT_FLAG_CACHE_SECONDS
    started = time.monotonic()
    proxy.wait_applied(cfg)
    assert time.monotonic() - started < 0.5  # nothing moved since


def test_wait_applied_waits_for_a_proxy_that_ran_and_not_for_one_that_never_did(cfg):
    proxy.publish_route(two_slots(), cfg)
    applied = cfg.routes_dir.parent / "applied"
    applied.write_text("0\n")                     # a proxy that has not loaded this route yet
    started = time.monotonic()
    assert proxy.wait_applied(cfg, timeout=0.5) is False
    assert time.monotonic() - started >= 0.5
    applied.unlink()                               # no proxy has ever run on these routes
    started = time.monotonic()
    assert proxy.wait_applied(cfg, timeout=30) is False
    assert time.monotonic() - started < 0.5        # it loads every route when it starts


def test_removing_or_reconciling_routes_drops_their_flags_only(cfg):
    proxy.publish_route(two_slots("one", slot="b"), cfg)
    proxy.publish_route(two_slots("two", slot="b"), cfg)
    proxy.remove_route("one", cfg)
    assert not (cfg.slots_dir / "one.b").exists()
    proxy.publish_route(two_slots("three", slot="b"), cfg)
    # Reconciliation from rows read without a lock never moves a live route's slot back.
    proxy.sync_routes([two_slots("two", slot="a")], cfg)
    assert (cfg.slots_dir / "two.b").exists() and not (cfg.slots_dir / "three.b").exists()


def test_an_invalid_slot_is_refused(cfg):
    with pytest.raises(proxy.RouteError):
        proxy.render_route(two_slots(slot="c"), cfg)
    with pytest.raises(proxy.RouteError):
        proxy.set_active_slot("alice-demo", "c", cfg)


# ------------------------------------------------------------------------------ on a real nginx
def _app(answer: str):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            body = answer.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _workers(proxy_run: Path) -> set[str]:
    master = (proxy_run / "nginx.pid").read_text().strip()
    return set(Path(f"/proc/{master}/task/{master}/children").read_text().split())


def test_switching_slots_under_keep_alive_load_fails_no_request_and_reloads_nothing():
    require_nginx()
    base = Path(tempfile.mkdtemp(prefix="demohub-switch-test-"))
    os.chmod(base, 0o755)  # nginx workers (www-data when run as root) read the flag
    apps = {"a": _app("slot a"), "b": _app("slot b")}
    port = free_port()
    nginx = Proxy(base, port, {"PROXY_ROUTES_DIR": str(base / "proxy" / "routes"), "PROXY_LISTEN": f"127.0.0.1:{port}",
                               "PROXY_RUN_DIR": str(base / "proxy" / "run"), "PROXY_SHARED_SECRET": "k",
                               "PROXY_WORKERS": "2", "HUB_UPSTREAM": "127.0.0.1:9"})
    route = lambda slot: two_slots("demo", a=f"127.0.0.1:{apps['a'].server_port}",  # noqa: E731
                                   b=f"127.0.0.1:{apps['b'].server_port}", slot=slot)
    proxy.publish_route(route("a"), nginx.cfg)
    nginx.start()
    answers, failures, stop = [], [], threading.Event()

    def load():
        session = requests.Session()
        session.trust_env = False
        while not stop.is_set():
            try:
                resp = session.get(f"http://127.0.0.1:{port}/", headers={"Host": "demo.spaces.localhost"}, timeout=5)
                (answers if resp.status_code == 200 else failures).append(resp.text)
            except requests.RequestException as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(6)]
    try:
        proxy.wait_applied(nginx.cfg)
        workers = _workers(base / "proxy" / "run")
        generation = proxy.current_generation(nginx.cfg)
        for t in threads:
            t.start()
        for slot in "babab":
            time.sleep(0.3)
            assert proxy.publish_route(route(slot), nginx.cfg) is True
            proxy.wait_applied(nginx.cfg)
            seen = {nginx.request("demo")[2].decode() for _ in range(6)}
            assert seen == {f"slot {slot}"}  # every worker sees the switch once it is applied
        after = _workers(base / "proxy" / "run"), proxy.current_generation(nginx.cfg)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        nginx.stop()
        for app in apps.values():
            app.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    assert failures == [], failures[:3]
    assert {"slot a", "slot b"} <= set(answers) and len(answers) > 100
    # No reload: the same workers served throughout, and none closed a keep-alive connection.
    assert after == (workers, generation)


# ------------------------------------------------------------------------------ counting and draining
def test_connections_to_counts_open_connections_only():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    assert connections_to("127.0.0.1", port) == 0
    client = socket.create_connection(("127.0.0.1", port))
    mapped = socket.socket(socket.AF_INET6)
    mapped.connect(("::ffff:127.0.0.1", port))
    try:
        assert connections_to("127.0.0.1", port) == 2  # IPv4 and IPv4-mapped IPv6
        assert connections_to("127.0.0.2", port) == 0
    finally:
        client.close()
        mapped.close()
        listener.close()
    assert connections_to("127.0.0.1", port) == 0


@pytest.mark.django_db
def test_the_drain_waits_for_requests_in_flight_and_is_bounded(cfg, settings):
    from spaces.lifecycle import redeploy

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    in_flight = socket.create_connection(("127.0.0.1", port))
    threading.Timer(0.6, in_flight.close).start()
    waited = redeploy.old_slot_drain(address="127.0.0.1", port=port, config=cfg, what="old")
    assert 0.6 + redeploy.DRAIN_SETTLE <= waited < 3
    settings.REDEPLOY_DRAIN_TIMEOUT = 1.0
    stuck = socket.create_connection(("127.0.0.1", port))  # a stream that never ends
    try:
        waited = redeploy.old_slot_drain(address="127.0.0.1", port=port, config=cfg, what="old")
        assert 1.0 <= waited < 1.5
    finally:
        stuck.close()
        listener.close()


# ------------------------------------------------------------------------------ reconcile and slots
@pytest.mark.django_db
@pytest.mark.usefixtures("hub")
def test_reconcile_leaves_a_draining_container_alone_and_repairs_a_wrong_flag(olive, make_space, hub):
    from runner.backends import RunSpec
    from spaces.lifecycle import redeploy
    from spaces.records.models import Space

    space = make_space(olive, "demo", sdk="gradio")
    Space.objects.filter(pk=space.pk).update(status="RUNNING", active_slot="b")
    old = container_name(space, "a")
    hub.backend.start(RunSpec(name=old, image="img", address="127.0.0.1", port=1, env={},
                              labels={"demohub.space": space.full_name, "demohub.slot": "a"}))
    redeploy.draining_begin(old)
    reconcile()
    assert old in hub.backend.containers  # still finishing its requests
    config = proxy_config()
    assert proxy.active_slot(space.label, config) == "b"  # the flag a lost write left wrong: repaired
    redeploy.draining_end(old)
    reconcile()
    assert old not in hub.backend.containers  # an orphan now
