"""Tiny apps and the "stalled lifecycle" scenario of issue 15 (findings 2, 4 and 8), shared by
tests/e2e/test_lifecycle_isolation.py and bench/visibility_latency.py.

Every app is an `sdk: docker` space built FROM the locally made base image and served by
Python's own http.server: no pip, a build of a few seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import docker
import requests

from .stack import Stack, make_archive

SERVER = '''
import http.server, os, signal, time

NAME = {name!r}
REDIRECT = {redirect!r}
if {ignore_term!r}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a stop then takes its whole timeout
time.sleep({delay!r})                              # a slow start (every start: waking too)
if {never!r}:
    time.sleep(10 ** 9)                            # never answers: listens nowhere


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if REDIRECT:
            self.send_response(302)
            self.send_header("Location", REDIRECT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("hello from " + NAME).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("0.0.0.0", 7860), H).serve_forever()
'''


def app(name: str, *, redirect: str = "", ignore_term: bool = False, delay: float = 0, never: bool = False,
        startup_timeout: str = "") -> bytes:
    """The archive of a tiny `sdk: docker` space (see SERVER for what each option does)."""
    extra = f"startup_duration_timeout: {startup_timeout}\n" if startup_timeout else ""
    return make_archive({
        "README.md": f"---\ntitle: {name}\nsdk: docker\napp_port: 7860\n{extra}---\n",
        "Dockerfile": 'FROM demohub/base:bookworm\nCOPY server.py /srv/server.py\nCMD ["python3", "/srv/server.py"]\n',
        "server.py": SERVER.format(name=name, redirect=redirect, ignore_term=ignore_term, delay=delay, never=never),
    })


def container_status(stack: Stack, owner: str, name: str) -> str | None:
    """The engine's status of the space's container ("running", "paused", ...), None if none."""
    found = docker.from_env().containers.list(all=True, filters={"label": [
        f"demohub.instance={stack.instance}", f"demohub.space={owner}/{name}"]})
    return found[0].status if found else None


def anonymous_get(url: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False      # loopback only, never through a proxy from the environment
    return session.get(url, headers={"Accept": "application/json"}, timeout=10, allow_redirects=False)


@dataclass
class Stalled:
    """Four spaces that never answer (every start worker waits on them), a space whose stop by
    the sleep check takes 10 s, and a public space to be made private."""
    stack: Stack
    owner: str
    token: str
    victim_url: str = ""
    stuck: list[str] = field(default_factory=list)
    sleepers: list[str] = field(default_factory=list)   # one per sleep check to be caught in progress

    def api(self, path: str = "") -> str:
        return f"{self.stack.hub_url}/api/spaces/{self.owner}/{path}"

    def cleanup(self) -> None:
        """Delete every space of the scenario: the stuck starts end within a second (a start
        checks that it is still wanted), so the stack's starts worker is free again."""
        for name in [*self.stuck, "victim", *self.sleepers]:
            self.stack.api(self.token).delete(self.api(name))


def stalled_lifecycle(stack: Stack, *, sleepers: int = 1) -> Stalled:
    """Set the scene; returns once four starts hang and the victim serves publicly."""
    owner, token = stack.new_user()
    scene = Stalled(stack, owner, token)
    # First those that must run (a start queued behind the four stuck ones would hang too).
    victim = stack.deploy(token, owner, "victim", "docker", app("victim"), timeout=300)
    scene.victim_url = victim["url"]
    for i in range(sleepers):
        scene.sleepers.append(f"sleeper{i}")
        stack.deploy(token, owner, f"sleeper{i}", "docker", app("sleeper", ignore_term=True), timeout=300)
    for i in range(4):
        name = f"stuck{i}"
        scene.stuck.append(name)
        stack.deploy(token, owner, name, "docker", app(name, never=True, startup_timeout="10m"), wanted=None)
    for name in scene.stuck:
        stack.wait_status(token, owner, name, "APP_STARTING", timeout=300)
    r = anonymous_get(scene.victim_url)
    assert r.status_code == 200 and r.text == "hello from victim", (r.status_code, r.text[:200])
    return scene


def sleep_check_in_progress(scene: Stalled, sleeper: str, *, timeout: float = 90) -> None:
    """Let `sleeper` go idle until a sleep check is stopping it, and return while it does.

    Idle for longer than sleep_after (5 s) already, the sleeper is stopped by the next sleep
    check: the route says sleeping first (sleep_mode "stopped" while the status is still
    RUNNING), then the engine sends SIGTERM, which this app ignores, so the stop takes its whole
    10 s timeout, all inside one sleep check. (Frozen first, the stop unpauses it: the status
    is then SLEEPING/frozen while the engine shows it running.) A container still running
    while the API shows one of these is the stop under way.
    """
    stack, owner, token = scene.stack, scene.owner, scene.token
    r = stack.api(token).patch(scene.api(sleeper), json={"sleep_after": 5})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if being_stopped(scene, sleeper):
            return
        time.sleep(0.1)
    raise AssertionError(f"no sleep check was stopping {sleeper} within {timeout} s")


def being_stopped(scene: Stalled, sleeper: str) -> bool:
    """Whether a sleep check is stopping `sleeper` right now (see sleep_check_in_progress)."""
    s = scene.stack.space(scene.token, scene.owner, sleeper)
    return ((s["status"], s["sleep_mode"]) in {("RUNNING", "stopped"), ("SLEEPING", "frozen")}
            and container_status(scene.stack, scene.owner, sleeper) == "running")


def time_to_private(scene: Stalled, *, timeout: float = 30) -> float:
    """PATCH the victim private; seconds until an anonymous request to its app is refused."""
    t0 = time.monotonic()
    r = scene.stack.api(scene.token).patch(scene.api("victim"), json={"visibility": "private"})
    assert r.status_code == 200 and r.json()["visibility"] == "private", r.text
    while time.monotonic() - t0 < timeout:
        if anonymous_get(scene.victim_url).status_code == 401:   # the hub's answer: not the app's 200
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"the app still answered anonymous requests {timeout} s after it was made private")


def make_public(scene: Stalled, *, timeout: float = 30) -> None:
    r = scene.stack.api(scene.token).patch(scene.api("victim"), json={"visibility": "public"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if anonymous_get(scene.victim_url).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the victim did not open to anonymous requests again")
