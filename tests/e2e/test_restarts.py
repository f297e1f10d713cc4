"""Restarts under load (issue 4, "Reconciliation"): the proxy, Redis, every hub process and the
Docker engine are restarted for real while a thread keeps requesting two running docker-SDK
spaces through the proxy. Each time both spaces answer again within a bound and end RUNNING,
and the downtime each restart caused is measured (printed, and written to
artifacts/e2e-logs/<instance>/restarts.json).

* proxy: SIGKILL of the proxy (nginx and its run.sh), one space's route file lost meanwhile;
  started again, it serves every route from disk, and reconcile rebuilds the lost one.
* Redis: this module's stack runs a redis-server of its own (the machine's is shared with other
  test runs); it is killed with SIGKILL and started again empty on the same port while one build
  runs and another waits in the queue. Both end RUNNING; the API and the workers go on.
* hub processes: web, both workers and beat all killed with SIGKILL while the lifecycle worker
  is in the middle of starting a slow app; started again, the lost start is sent again.
* Docker engine (last: it stops every container on this machine): dockerd is restarted the way
  this machine runs it (scripts/ensure-engine.sh; systemd where it manages the engine). RUNNING
  spaces come back, a stopped-asleep space stays asleep, a frozen one sleeps stopped (its
  container is gone) and wakes for the next request. Outside CI the test first waits until the
  engine runs no container but this run's, so other people's containers are not stopped.

The apps are docker-SDK apps FROM demohub/base:bookworm (python3 only: builds take seconds).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import docker
import pytest
import requests

from .load import revision_app
from .stack import ROOT, STARTED_INSTANCES, new_stack

# Alone: it restarts the Docker engine, which stops every container on the machine (other test
# files' spaces too); scripts/test.sh runs it after the parallel part.
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

DOWNTIME: dict[str, dict[str, float]] = {}  # restart kind -> space -> seconds without an answer
ENGINE_IDLE_WAIT = 600  # seconds to wait (outside CI) for other people's containers to end


# ------------------------------------------------------------------------------ the stack
@pytest.fixture(scope="module")
def stack():
    """This module's own stack, with a redis-server of its own that the tests may kill."""
    try:
        docker.from_env().ping()
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"the Docker engine does not answer ({exc}); run `make test`, which starts it")
    s = new_stack(private_redis=True)
    # A queued build whose task Redis lost is sent again after this long (default 120 s).
    s.settings["BUILD_REQUEUE_AFTER"] = "20"
    try:
        s.up()
        yield s
    finally:
        report = s.log_dir / "restarts.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(DOWNTIME, indent=2) + "\n")
        print(f"\ndowntime per restart kind (s): {json.dumps(DOWNTIME)}")
        if os.environ.get("DEMOHUB_KEEP_STACK") != "1":
            s.down()


@pytest.fixture(scope="module")
def owner(stack):
    return stack.new_user()


def deploy(stack, owner, name: str, archive: bytes, *, wait: bool = True, timeout: float = 300) -> dict:
    username, token = owner
    return stack.deploy(token, username, name, "docker", archive, wanted="RUNNING" if wait else None,
                        timeout=timeout)


def status_of(stack, owner, name: str) -> dict:
    """The space as the API shows it, retried while the web is away (restarted, or Redis is)."""
    username, token = owner
    deadline = time.monotonic() + 60
    while True:
        try:
            r = stack.api(token).get(f"{stack.hub_url}/api/spaces/{username}/{name}", timeout=5)
            if r.status_code == 200:
                return r.json()
            failure = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as exc:
            failure = str(exc)
        assert time.monotonic() < deadline, f"the API did not answer for 60 s: {failure}"
        time.sleep(0.5)


def wait_for(what: str, check, *, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(every)


def space_containers(stack, owner, name: str, *, running: bool = True) -> list:
    client = docker.from_env()
    return client.containers.list(all=not running, filters={"label": [f"demohub.instance={stack.instance}",
                                                                      f"demohub.space={owner[0]}/{name}"]})


# ------------------------------------------------------------------------------ steady load
@dataclass
class Answer:
    at: float     # time.monotonic()
    space: str
    ok: bool
    detail: str


class Prober:
    """One thread requesting each space in turn through the proxy (its Host header), every 0.1 s,
    recording every answer: 200 with the app's own body is a success, anything else a failure."""

    def __init__(self, proxy_port: int, spaces: dict[str, str]):
        self.base = f"http://127.0.0.1:{proxy_port}/"
        self.hosts = {name: urlparse(url).netloc for name, url in spaces.items()}
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        session.trust_env = False
        while not self._stop.is_set():
            for name, host in self.hosts.items():
                try:
                    r = session.get(self.base, headers={"Host": host, "Accept": "text/plain"}, timeout=3,
                                    allow_redirects=False)
                    ok = r.status_code == 200 and r.text.startswith(f"rev={name} ")
                    detail = "" if ok else f"HTTP {r.status_code}: {r.text[:80]!r}"
                except requests.RequestException as exc:
                    ok, detail = False, type(exc).__name__
                    session = requests.Session()   # a dead keep-alive connection: start afresh
                    session.trust_env = False
                with self._lock:
                    self.answers.append(Answer(time.monotonic(), name, ok, detail))
            time.sleep(0.1)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def since(self, t0: float, space: str) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.at >= t0 and a.space == space]

    def answering(self, t0: float, space: str, streak: int = 5) -> float | None:
        """When `space` answered `streak` times in a row after t0 (the first of them), or None."""
        answers = self.since(t0, space)
        run = 0
        for i, a in enumerate(answers):
            run = run + 1 if a.ok else 0
            if run == streak:
                return answers[i - streak + 1].at
        return None

    def downtime(self, t0: float, space: str) -> float:
        """Seconds without a good answer around the failures after t0: from the last good answer
        before the first failure (a failed request may hang up to its timeout before it is
        recorded) to the first good one after the last failure. 0 when nothing failed."""
        answers = self.since(t0, space)
        failed = [i for i, a in enumerate(answers) if not a.ok]
        if not failed:
            return 0.0
        before = next((a.at for a in reversed(answers[:failed[0]]) if a.ok), t0)
        after = next((a.at for a in answers[failed[-1] + 1:] if a.ok), answers[-1].at)
        return round(after - before, 2)

    def failures(self, t0: float, space: str) -> list[str]:
        return [a.detail for a in self.since(t0, space) if not a.ok]


@pytest.fixture(scope="module")
def loaded(stack, owner):
    """Two RUNNING docker spaces, alpha and beta, under steady load for the whole module."""
    urls = {name: deploy(stack, owner, name, revision_app(name))["url"] for name in ("alpha", "beta")}
    prober = Prober(stack.proxy_port, urls).start()
    t0 = time.monotonic()
    for name in urls:
        wait_for(f"{name} answering through the proxy", lambda n=name: prober.answering(t0, n), timeout=30)
    yield prober
    prober.stop()


def both_back(stack, owner, prober: Prober, t0: float, kind: str, *, timeout: float,
              ready: float | None = None) -> dict[str, float]:
    """Wait until alpha and beta answer again (within `timeout`), counting only answers after
    `ready` (when the restarted part was back: answers in flight before the kill do not count),
    and are RUNNING; record and return their downtime since t0."""
    for name in ("alpha", "beta"):
        wait_for(f"{name} answering again after the {kind} restart (failures: {prober.failures(t0, name)[-5:]})",
                 lambda n=name: prober.answering(ready or t0, n), timeout=timeout, every=0.2)
        wait_for(f"{name} RUNNING again after the {kind} restart",
                 lambda n=name: status_of(stack, owner, n)["status"] == "RUNNING", timeout=timeout)
    DOWNTIME[kind] = {name: prober.downtime(t0, name) for name in ("alpha", "beta")}
    failures = {name: len(prober.failures(t0, name)) for name in ("alpha", "beta")}
    print(f"{kind} restart: downtime {DOWNTIME[kind]} (failed requests: {failures})")
    return DOWNTIME[kind]


def label_of(stack, owner, name: str) -> str:
    return urlparse(status_of(stack, owner, name)["url"]).hostname.split(".")[0]


# ------------------------------------------------------------------------------ the proxy
def test_proxy_restart_serves_every_route_again(stack, owner, loaded):
    routes = stack.data_dir / "proxy" / "routes"
    beta_route = routes / f"{label_of(stack, owner, 'beta')}.conf"
    assert beta_route.is_file()

    t0 = time.monotonic()
    stack.stop("proxy", signal.SIGKILL)
    beta_route.unlink()  # state of the proxy lost with it: rebuilt from the database
    stack.start_proxy()
    ready = time.monotonic()

    # alpha's route is on disk: served as soon as nginx listens again.
    back = wait_for("alpha answering after the proxy restart", lambda: loaded.answering(ready, "alpha"),
                    timeout=10, every=0.1)
    alpha_down = back - t0
    # beta's route comes back with the next reconcile (RECONCILE_INTERVAL is 10 s here).
    wait_for("beta's route file rebuilt", beta_route.is_file, timeout=20)
    both_back(stack, owner, loaded, t0, "proxy", timeout=30, ready=ready)
    print(f"proxy restart: alpha answering {alpha_down:.1f} s after the kill; "
          f"beta (route file lost) {DOWNTIME['proxy']['beta']:.1f} s down")
    assert DOWNTIME["proxy"]["alpha"] <= 10


# ------------------------------------------------------------------------------ Redis
def revision(stack, owner, name: str, number: int = 1) -> dict:
    username, token = owner
    r = stack.api(token).get(f"{stack.hub_url}/api/spaces/{username}/{name}/revisions/{number}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def test_readyz_names_redis_while_it_is_down(stack, owner, loaded):
    """GET /readyz names the broker (Redis) while it is down, /healthz still says up, /metrics
    answers 503 with Retry-After; /readyz is ready again once Redis is back (README "Operations")."""
    metrics_auth = {"Authorization": f"Bearer {stack.env['METRICS_TOKEN']}"}
    assert requests.get(f"{stack.hub_url}/readyz", timeout=10).status_code == 200
    stack.stop("redis")
    try:
        r = requests.get(f"{stack.hub_url}/readyz", timeout=10)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
        assert r.json()["failing"] == ["broker"] and "(Redis)" in r.json()["message"], r.json()
        assert requests.get(f"{stack.hub_url}/healthz", timeout=10).json() == {"status": "up"}
        m = requests.get(f"{stack.hub_url}/metrics", headers=metrics_auth, timeout=10)
        assert m.status_code == 503 and m.headers["Retry-After"] == "5" and m.json()["code"] == "broker_unavailable"
    finally:
        stack.start_redis()
    # The engine's heartbeat went with Redis: ready once the lifecycle worker's next check writes it.
    wait_for("ready again", lambda: requests.get(f"{stack.hub_url}/readyz", timeout=10).status_code == 200,
             timeout=60)


def test_redis_restart_loses_no_space_and_no_upload(stack, owner, loaded):
    username, token = owner
    marker = uuid.uuid4().hex[:8]  # a build step the layer cache cannot answer
    deploy(stack, owner, "slow", revision_app("slow", dockerfile_extra=f"RUN echo {marker} && sleep 15\n"),
           wait=False)
    deploy(stack, owner, "queued", revision_app("queued"), wait=False)  # waits behind "slow"
    wait_for("slow building", lambda: revision(stack, owner, "slow")["status"] == "building", timeout=120)
    assert revision(stack, owner, "queued")["status"] == "queued"

    t0 = time.monotonic()
    stack.stop("redis", signal.SIGKILL)  # the broker's queues, claims, live logs: all gone
    stack.start_redis()
    ready = time.monotonic()
    redis_away = ready - t0

    # The API answers (reads and writes).
    r = stack.api(token).patch(f"{stack.hub_url}/api/spaces/{username}/alpha", json={"title": "Alpha"}, timeout=10)
    assert r.status_code == 200, r.text
    both_back(stack, owner, loaded, t0, "redis", timeout=30, ready=ready)

    # The build that ran goes on; the queued one, lost with the broker, is sent again.
    for name in ("slow", "queued"):
        s = stack.wait_status(token, username, name, {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"}, timeout=180)
        assert s["status"] == "RUNNING", s
        assert revision(stack, owner, name)["status"] == "succeeded"
        answer = requests.get(s["url"], timeout=5)
        assert answer.status_code == 200 and answer.text.startswith(f"rev={name} "), answer.text[:200]
    ended = time.monotonic() - t0
    print(f"redis restart: away {redis_away:.2f} s; the running build and the queued one RUNNING "
          f"{ended:.0f} s after the kill")


# ------------------------------------------------------------------------------ hub processes
HUB_PROCESSES = ("web", "worker-builds", "worker-lifecycle", "worker-starts", "worker-routes", "beat")


def test_kill_9_of_every_hub_process_mid_start_converges(stack, owner, loaded):
    username, token = owner
    # An app that takes 10 s to answer: its start is still running when everything is killed.
    deploy(stack, owner, "slowstart", revision_app("slowstart", start="time.sleep(10)"))
    [serving] = space_containers(stack, owner, "slowstart")
    r = stack.api(token).post(f"{stack.hub_url}/api/spaces/{username}/slowstart/restart")
    assert r.status_code == 202, r.text
    # The start runs: its new container is up, the app not answering yet.
    wait_for("the restart's new container running",
             lambda: [c for c in space_containers(stack, owner, "slowstart") if c.id != serving.id],
             timeout=30, every=0.2)
    assert status_of(stack, owner, "slowstart")["status"] == "APP_STARTING"

    t0 = time.monotonic()
    for name in HUB_PROCESSES:
        stack.stop(name, signal.SIGKILL)
    stack.start_web()
    stack.start_builds_worker()
    stack.start_lifecycle_worker()
    stack.start_beat()
    ready = time.monotonic()

    both_back(stack, owner, loaded, t0, "hub processes", timeout=60, ready=ready)
    # The start died with its worker; its claim lapses and it is sent again.
    s = stack.wait_status(token, username, "slowstart", {"RUNNING", "RUNTIME_ERROR"}, timeout=120)
    assert s["status"] == "RUNNING", s
    assert requests.get(s["url"], timeout=5).text.startswith("rev=slowstart ")
    print(f"kill -9 of every hub process: the lost start of slowstart RUNNING {time.monotonic() - t0:.0f} s "
          f"after the kill")


# ------------------------------------------------------------------------------ the Docker engine
def foreign_containers(stack) -> list[str]:
    """Running containers on the engine that no stack of this test run started (someone else's
    spaces, builds, or anything else on the machine)."""
    found = docker.from_env().containers.list()
    # The compose stack that `make up` started from this same checkout (and its spaces) is the
    # developer's own, and comes back by itself (restart: unless-stopped): the README promises
    # `make up` then `make test` in one checkout.
    def from_here(c) -> bool:
        return c.labels.get("com.docker.compose.project.working_dir") == str(ROOT)

    ours = set(STARTED_INSTANCES) | {c.labels["demohub.instance"] for c in found
                                     if from_here(c) and "demohub.instance" in c.labels}
    return [f"{c.name} ({c.labels.get('demohub.instance', 'no demohub label')})" for c in found
            if not from_here(c) and c.labels.get("demohub.instance") not in ours]


def engine_restart(stack) -> float:
    """Restart the Docker engine the way this machine runs it; return how long it was away.

    With systemd managing it: `systemctl restart docker`. Otherwise (CI, containers) dockerd was
    started by scripts/ensure-engine.sh: stop it with SIGTERM (it stops its containers: no
    live-restore here) and start it again with that script, in the environment the old engine had.
    """
    started = time.monotonic()
    log = open(stack.log_dir / "engine-restart.log", "ab")
    managed = Path("/run/systemd/system").is_dir() and subprocess.run(
        ["systemctl", "is-active", "--quiet", "docker"]).returncode == 0
    if managed:
        subprocess.run(["systemctl", "restart", "docker"], check=True, stdout=log, stderr=log, timeout=180)
    else:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        except OSError:
            env = dict(os.environ)
        env.setdefault("PATH", os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        os.kill(pid, signal.SIGTERM)
        wait_for("dockerd exiting", lambda: not Path(f"/proc/{pid}").exists(), timeout=90, every=0.1)
        # Not a pipe: the engine it starts in the background keeps its inherited descriptors.
        subprocess.run(["bash", str(ROOT / "scripts/ensure-engine.sh")], env=env, check=True, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=log, timeout=180)
    wait_for("the engine answering", lambda: _engine_answers(), timeout=60, every=0.2)
    return time.monotonic() - started


def _engine_answers() -> bool:
    try:
        return docker.from_env(timeout=5).ping()
    except Exception:
        return False


def test_docker_engine_restart_brings_running_spaces_back(stack, owner, loaded):
    """Last in this file: it stops every container on the machine for a few seconds."""
    username, token = owner
    deploy(stack, owner, "frozen", revision_app("frozen"))
    deploy(stack, owner, "stopped", revision_app("stopped"))
    for name, sleep_after in (("frozen", 3600), ("stopped", 5)):
        r = stack.api(token).patch(f"{stack.hub_url}/api/spaces/{username}/{name}", json={"sleep_after": sleep_after})
        assert r.status_code == 200, r.text
    # Idle: frozen after SPACE_FREEZE_AFTER (4 s here); "stopped" after its 5 s.
    for name, mode in (("frozen", "frozen"), ("stopped", "stopped")):
        wait_for(f"{name} asleep ({mode})", lambda n=name, m=mode: (lambda s: s["status"] == "SLEEPING"
                 and s["sleep_mode"] == m)(status_of(stack, owner, n)), timeout=60)
    running_before = [n for n in ("alpha", "beta", "slowstart", "slow", "queued")
                      if status_of(stack, owner, n)["status"] == "RUNNING"]
    assert {"alpha", "beta"} <= set(running_before)

    if os.environ.get("CI") not in ("true", "1"):
        # A shared machine: never stop other people's containers. In CI the machine is this run's.
        wait_for(f"the engine running no one else's containers (seen: {foreign_containers(stack)})",
                 lambda: not foreign_containers(stack), timeout=ENGINE_IDLE_WAIT, every=2)

    t0 = time.monotonic()
    engine_away = engine_restart(stack)
    ready = time.monotonic()
    print(f"engine restart: the engine answered again {engine_away:.1f} s after SIGTERM")
    # The host firewall for spaces lives in INPUT, which the engine does not touch.
    subprocess.run(["bash", str(ROOT / "scripts/isolate.sh"), "--check", "10.216.0.0/13"], check=True,
                   capture_output=True)

    both_back(stack, owner, loaded, t0, "docker engine", timeout=60, ready=ready)
    for name in running_before:
        s = stack.wait_status(token, username, name, {"RUNNING", "RUNTIME_ERROR"}, timeout=90)
        assert s["status"] == "RUNNING", s
        assert requests.get(s["url"], timeout=5).text.startswith(f"rev={name} "), name
    s = status_of(stack, owner, "alpha")
    assert s["error"].startswith("Restarted after a crash"), s["error"]

    # The frozen space's container is gone: it sleeps stopped now, and is not started by itself.
    wait_for("frozen asleep, stopped", lambda: status_of(stack, owner, "frozen")["sleep_mode"] == "stopped",
             timeout=30)
    for name in ("frozen", "stopped"):
        s = status_of(stack, owner, name)
        assert (s["status"], s["sleep_mode"]) == ("SLEEPING", "stopped"), s
        assert not space_containers(stack, owner, name), f"{name} was started though asleep"

    # The next request wakes it: an API client is held until the app answers.
    s = status_of(stack, owner, "frozen")
    woke = time.monotonic()
    r = requests.get(s["url"], headers={"Accept": "application/json"}, timeout=40)
    assert r.status_code == 200 and r.text.startswith("rev=frozen "), (r.status_code, r.text[:200])
    print(f"engine restart: frozen space woken by a request in {time.monotonic() - woke:.1f} s")
    assert status_of(stack, owner, "frozen")["status"] == "RUNNING"
    assert status_of(stack, owner, "stopped")["status"] == "SLEEPING"
