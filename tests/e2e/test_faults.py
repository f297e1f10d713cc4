"""Faults on the real stack: crashed apps and a builds worker killed mid-build (issue 4).

Every state is reached through the API and real kills, never by writing rows:

* `docker kill` of a space's container: noticed, restarted, answering through the proxy again
  within seconds, and the API says it was restarted;
* an app that keeps crashing: RUNTIME_ERROR whose error quotes what it printed; an app that
  exits at once fails its first start the same way;
* an app that exceeds its memory limit: the error names the OOM kill and the limit;
* `kill -9` of the builds worker in the middle of a build: the revision ends (here: built by
  the retry) well within two minutes, its engine-side build is gone at once, and the space is
  not left BUILDING.

The apps are docker-SDK apps FROM demohub/base:bookworm (python3 only), so builds take seconds.
"""
from __future__ import annotations

import signal
import time
import uuid

import docker
import pytest
import requests

from .stack import make_archive

pytestmark = pytest.mark.e2e

APP = '''
import http.server, os, sys, threading, time

MODE = "{mode}"
STARTED = repr(time.time())
print("app starting in mode", MODE, flush=True)
if MODE == "exit-at-once":
    print("fatal: the model file is missing", flush=True)
    sys.exit(1)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/allocate":
            print("allocating memory until something gives", flush=True)
            hog = []
            while True:
                hog.append(bytearray(b"x") * (8 * 2**20))  # written, so really resident
        body = ("started " + STARTED).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if MODE == "crash-soon":
    def die():
        time.sleep(3)
        print("fatal: the model file is missing", flush=True)
        os._exit(1)

    threading.Thread(target=die, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
'''


def app_repo(mode: str = "serve", build_step: str = "") -> bytes:
    dockerfile = "FROM demohub/base:bookworm\n" + (f"RUN {build_step}\n" if build_step else "") + \
        'COPY app.py /srv/app.py\nCMD ["python3", "-u", "/srv/app.py"]\n'
    return make_archive({
        "README.md": f"---\ntitle: Fault {mode}\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": dockerfile,
        "app.py": APP.replace("{mode}", mode),
    })


def deploy(stack, token: str, owner: str, name: str, archive: bytes, wanted="RUNNING", timeout=300) -> dict:
    return stack.deploy(token, owner, name, "docker", archive, wanted=wanted, timeout=timeout)


def space_container(stack, owner: str, name: str):
    """The running container of the space, found by the labels every container carries."""
    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"demohub.instance={stack.instance}",
                                                      f"demohub.space={owner}/{name}"]})
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def app_text(space: dict, path: str = "/") -> tuple[int, str]:
    try:
        r = requests.get(space["url"].rstrip("/") + path, timeout=5, headers={"Accept": "text/html"})
        return r.status_code, r.text
    except requests.RequestException as exc:
        return 0, str(exc)


def watch(stack, token, owner, name, until, *, timeout: float, every: float = 0.3) -> tuple[dict, list[str]]:
    """Poll the space until `until(space)`; returns it and the statuses seen on the way."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        s = stack.space(token, owner, name)
        if not seen or seen[-1] != s["status"]:
            seen.append(s["status"])
        if until(s):
            return s, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{owner}/{name}: condition not met in {timeout} s; statuses {seen}; last {s}")
        time.sleep(every)


def test_docker_kill_is_noticed_and_the_app_answers_again(stack, alice):
    owner, token = alice
    space = deploy(stack, token, owner, "victim", app_repo())
    status, before = app_text(space)
    assert status == 200 and before.startswith("started "), (status, before)

    space_container(stack, owner, "victim").kill()  # SIGKILL, as `docker kill` sends
    killed_at = time.monotonic()
    seen = []
    while True:
        s = stack.space(token, owner, "victim")
        if not seen or seen[-1] != s["status"]:
            seen.append(s["status"])
        status, text = app_text(space)
        if status == 200 and text.startswith("started ") and text != before:
            break
        assert time.monotonic() - killed_at < 20, f"no new app within 20 s; statuses {seen}; last answer {status}"
        time.sleep(0.3)
    answered_after = time.monotonic() - killed_at

    s, seen_more = watch(stack, token, owner, "victim", lambda s: s["status"] == "RUNNING", timeout=20)
    # The API says what happened (the owner reads it in full).
    assert s["error"].startswith("Restarted after a crash") and "SIGKILL" in s["error"], s["error"]
    assert s["running_revision"] == 1
    run_log = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/victim/logs/run").text
    assert "restarting in 1 s" in run_log, run_log[-2000:]
    print(f"docker kill -> app answering again after {answered_after:.1f} s; statuses {seen + seen_more}")


def test_an_app_that_keeps_crashing_ends_in_runtime_error_quoting_its_output(stack, alice):
    owner, token = alice
    deploy(stack, token, owner, "crashloop", app_repo("crash-soon"), wanted={"RUNNING", "APP_STARTING"})
    s, seen = watch(stack, token, owner, "crashloop", lambda s: s["status"] == "RUNTIME_ERROR", timeout=120)
    assert "crashed 3 times" in s["error"] and "exited with code 1" in s["error"], s["error"]
    assert "fatal: the model file is missing" in s["error"], s["error"]
    # Restarted twice on the way (the third crash is the last).
    run_log = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/crashloop/logs/run").text
    assert run_log.count("app starting in mode crash-soon") >= 3, run_log[-3000:]
    # Others see the fact, not the log.
    assert stack.space(None, owner, "crashloop")["error"] == "The app failed to start."
    # Stays there: not restarted by itself.
    time.sleep(8)
    assert stack.space(token, owner, "crashloop")["status"] == "RUNTIME_ERROR"

    # An app that exits at once fails its first start with the same kind of message.
    s = deploy(stack, token, owner, "exits", app_repo("exit-at-once"), wanted="RUNTIME_ERROR")
    assert "exited with code 1" in s["error"] and "fatal: the model file is missing" in s["error"], s["error"]


def test_an_oom_kill_is_named_with_the_memory_limit(stack, alice):
    owner, token = alice
    # The memory limit is a hub setting (SPACE_MEMORY_LIMIT; the API does not set it per
    # space): the lifecycle worker, which starts containers and checks them, runs with a small
    # one for this test only.
    stack.stop("worker-lifecycle")
    stack.start_lifecycle_worker({"SPACE_MEMORY_LIMIT": "96m"})
    try:
        space = deploy(stack, token, owner, "hog", app_repo())
        container = space_container(stack, owner, "hog")
        assert container.attrs["HostConfig"]["Memory"] == 96 * 2**20
        app_text(space, "/allocate")  # the app is killed while it answers
        s, seen = watch(stack, token, owner, "hog", lambda s: "out of memory" in s["error"], timeout=30)
        assert "OOM" in s["error"] and "96m" in s["error"], s["error"]
        s, _ = watch(stack, token, owner, "hog", lambda s: s["status"] == "RUNNING", timeout=30)
        assert s["error"].startswith("Restarted after a crash") and "96m" in s["error"], s["error"]
        assert app_text(s)[0] == 200
    finally:
        stack.stop("worker-lifecycle")
        stack.start_lifecycle_worker()


def build_step_containers(stack) -> list:
    """Containers the engine runs for this stack's image builds: on its builds network, and not a
    space's (those carry demohub.slot)."""
    client = docker.from_env()
    on_network = client.containers.list(filters={"network": f"demohub-{stack.instance}-builds"})
    return [c for c in on_network if "demohub.slot" not in (c.labels or {})]


def test_kill_9_of_the_builds_worker_mid_build_ends_cleanly(stack, alice):
    owner, token = alice
    stack.create_space(token, "slowbuild", "docker")
    marker = uuid.uuid4().hex[:8]  # a step the engine's layer cache cannot answer
    # The output line differs from the command text, which the build log shows first.
    step = f"echo {marker} && echo slow-step-$((6*7))-running && sleep 12 && echo slow-step-done"
    r = stack.upload(token, owner, "slowbuild", app_repo(build_step=step))
    assert r.status_code == 202, r.text
    revision_url = f"{stack.hub_url}/api/spaces/{owner}/slowbuild/revisions/{r.json()['number']}"
    log_url = f"{stack.hub_url}/api/spaces/{owner}/slowbuild/logs/build"

    deadline = time.monotonic() + 120
    while "slow-step-42-running" not in stack.api(token).get(log_url).text:
        assert time.monotonic() < deadline, "the build never reached its slow step"
        time.sleep(0.3)
    assert stack.api(token).get(revision_url).json()["status"] == "building"
    assert build_step_containers(stack), "the slow step should be running in a build container"

    stack.stop("worker-builds", signal.SIGKILL)
    killed_at = time.monotonic()
    stack.start_builds_worker()

    # The engine cancels a build whose client is gone: its step container goes at once.
    while build_step_containers(stack):
        assert time.monotonic() - killed_at < 15, "the engine kept running the dead worker's build"
        time.sleep(0.5)

    statuses = []
    while True:
        rev = stack.api(token).get(revision_url).json()
        if not statuses or statuses[-1] != rev["status"]:
            statuses.append(rev["status"])
        if rev["status"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() - killed_at < 120, f"revision still {rev['status']} 120 s after the kill"
        time.sleep(1)
    ended_after = time.monotonic() - killed_at
    assert rev["status"] == "succeeded", rev  # the lease sweep built it again
    build_log = stack.api(token).get(log_url).text
    assert "attempt 2: the build worker of the previous attempt stopped responding" in build_log, build_log[-2000:]

    s = stack.wait_status(token, owner, "slowbuild", {"RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"}, timeout=60)
    assert s["status"] == "RUNNING", s
    assert app_text(s)[0] == 200
    print(f"kill -9 of the builds worker -> revision {rev['status']} after {ended_after:.0f} s ({statuses})")
