"""Steady keep-alive load on one space while many others sleep, wake and switch private and
public (issue 9, item 1): shared by tests/e2e/test_no_reloads.py (20 spaces) and
bench/proxy_reloads.py (100).

The churning spaces are the smallest `sdk: docker` app there is (python3's http.server on
demohub/base:bookworm), so a hundred of them fit beside the stack on two cores.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import requests.adapters

from .stack import Stack, make_archive

TINY_APP = '''
import http.server


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
'''


def tiny_repo() -> bytes:
    return make_archive({
        "README.md": "---\ntitle: Tiny\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": 'FROM demohub/base:bookworm\nCOPY app.py /srv/app.py\nCMD ["python3", "-u", "/srv/app.py"]\n',
        "app.py": TINY_APP,
    })


def deploy_many(stack: Stack, token: str, owner: str, names: list[str], *, sleep_after: int | None = None,
                timeout: float = 900) -> dict[str, dict]:
    """Create and upload every space first (the builds queue up), then wait for all of them."""
    archive = tiny_repo()
    api = stack.api(token)
    for name in names:
        stack.create_space(token, name, "docker")
        r = api.post(f"{stack.hub_url}/api/spaces/{owner}/{name}/revisions", files={"archive": ("r.tar.gz", archive)})
        assert r.status_code == 202, r.text
    deadline = time.monotonic() + timeout
    ended = {"RUNNING", "RUNTIME_ERROR", "BUILD_ERROR", "CONFIG_ERROR"}
    spaces = {name: stack.wait_status(token, owner, name, ended, timeout=max(5.0, deadline - time.monotonic()))
              for name in names}
    failed = {name: (s["status"], s.get("error")) for name, s in spaces.items() if s["status"] != "RUNNING"}
    assert not failed, failed
    # Only once all run: a space that fell asleep before the wait saw it RUNNING would not count.
    for name in names if sleep_after is not None else ():
        r = api.patch(f"{stack.hub_url}/api/spaces/{owner}/{name}", json={"sleep_after": sleep_after})
        assert r.status_code == 200, r.text
    return spaces


def proxy_counters(stack: Stack) -> tuple[int, int]:
    """(reloads the proxy did, routes generation): deploy/proxy/run.sh and runner/proxy.py."""
    base = Path(stack.data_dir) / "proxy"

    def read(name: str) -> int:
        try:
            return int((base / name).read_text() or 0)
        except FileNotFoundError:
            return 0                       # no route written yet

    return read("reloads"), read("generation")


class KeepAliveLoad:
    """`clients` threads, each one requests.Session (one keep-alive connection), GET `url` in a
    loop; every exception or non-200 answer is a failure."""

    def __init__(self, url: str, clients: int = 8):
        self.url, self.clients = url, clients
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                r = session.get(self.url, timeout=10)
                good = r.status_code == 200 and r.content == b"ok"
                what = f"{r.status_code} {r.text[:80]!r}"
            except requests.RequestException as exc:
                good, what = False, f"{type(exc).__name__}: {exc}"[:200]
            with self._lock:
                if good:
                    self.ok += 1
                else:
                    self.failures.append(what)
            time.sleep(0.005)

    def __enter__(self) -> "KeepAliveLoad":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def churn(stack: Stack, token: str, owner: str, names: list[str], spaces: dict[str, dict], *,
          rounds: int = 2, sleep_timeout: float = 60, log=lambda msg: None) -> dict[str, int]:
    """`rounds` times: wait until every space sleeps (idle), make them all private, wake them all
    (a request with the owner's token), make them all public, read each without credentials.
    Returns counts of what happened (sleeps seen, wakes, visibility switches)."""
    api = stack.api(token)
    api.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
    counts = {"slept": 0, "woken": 0, "visibility_changes": 0}
    pool = ThreadPoolExecutor(max_workers=min(16, len(names)))
    wakers = ThreadPoolExecutor(max_workers=min(8, len(names)))

    def status(name: str) -> str:
        return api.get(f"{stack.hub_url}/api/spaces/{owner}/{name}").json()["status"]

    def patch(name: str, visibility: str) -> None:
        r = api.patch(f"{stack.hub_url}/api/spaces/{owner}/{name}", json={"visibility": visibility})
        assert r.status_code == 200, r.text

    def get_app(name: str, headers: dict) -> int:
        r = requests.get(spaces[name]["url"], headers={"Accept": "application/json", **headers}, timeout=60)
        assert r.status_code == 200 and r.content == b"ok", (name, r.status_code, r.text[:300])
        return r.status_code

    try:
        for n in range(rounds):
            deadline = time.monotonic() + sleep_timeout
            asleep: set[str] = set()
            while len(asleep) < len(names):
                asleep |= {name for name, st in zip(names, pool.map(status, names)) if st == "SLEEPING"}
                assert time.monotonic() < deadline, f"round {n}: only {len(asleep)} of {len(names)} fell asleep"
                time.sleep(0.5)
            counts["slept"] += len(asleep)
            log(f"round {n}: all {len(names)} asleep")
            list(pool.map(lambda name: patch(name, "private"), names))
            counts["visibility_changes"] += len(names)
            # At most 8 wakes at once: one caller may have SPACE_WAKE_HOLDS_PER_CLIENT (10) held.
            list(wakers.map(lambda name: get_app(name, {"Authorization": f"Bearer {token}"}), names))
            counts["woken"] += len(names)
            log(f"round {n}: all private and woken")
            list(pool.map(lambda name: patch(name, "public"), names))
            counts["visibility_changes"] += len(names)
            # Public again: anyone reads it (the flag may stay for a worker's second).
            time.sleep(1.2)
            # A space idle again since its wake may be frozen again: this read wakes it too.
            list(wakers.map(lambda name: get_app(name, {}), names))
            log(f"round {n}: all public again")
    finally:
        pool.shutdown(wait=True)
        wakers.shutdown(wait=True)
    return counts
