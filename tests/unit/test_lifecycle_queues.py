"""Issue 15, findings 2 and 4: slow starts stall nothing but starts, and the health probe
stays on the space's own address (README "Security: one user cannot stall the lifecycle").

The real-stack proofs are tests/e2e/test_lifecycle_isolation.py; these pin the wiring (queues,
workers, time limits) and the probe's behaviour against real loopback listeners.
"""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery import current_app

from spaces.lifecycle import logs, sleep
from spaces.lifecycle.starts import probe
from spaces.lifecycle.tasks import (
    publish_route_task,
    restart_crashed_space_task,
    start_revision_task,
    wake_space_task,
    wake_start_space_task,
)

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ queues and limits
def test_starts_and_routes_have_queues_of_their_own():
    for task in (start_revision_task, restart_crashed_space_task, wake_start_space_task):
        assert task.queue == "starts", task.name
    assert publish_route_task.queue == "routes"
    # The quick half of a wake (unfreezing) stays on lifecycle: it never waits behind a start.
    assert wake_space_task.queue == "lifecycle"


def test_every_task_has_soft_and_hard_time_limits():
    ours = [t for name, t in current_app.tasks.items() if name.startswith("spaces.")]
    assert len(ours) >= 15
    for task in ours:
        assert task.soft_time_limit and task.time_limit, f"{task.name} has no time limit"
        assert task.soft_time_limit < task.time_limit, task.name


def test_a_start_may_run_its_whole_capped_timeout_and_is_not_redelivered_meanwhile(settings):
    assert start_revision_task.soft_time_limit > settings.SPACE_STARTUP_TIMEOUT_MAX
    # Redis hands an unacknowledged task to another worker after the visibility timeout.
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > start_revision_task.time_limit


def _commands(text: str) -> dict[str, str]:
    return dict(re.findall(r"\n  (worker-[a-z]+):.*?command: (.*?)\n", text, re.S))


def test_compose_runs_a_worker_per_queue():
    workers = _commands((REPO / "docker-compose.yml").read_text())
    assert "-Q lifecycle " in workers["worker-lifecycle"]
    assert "-Q starts " in workers["worker-starts"]
    assert "-Q routes " in workers["worker-routes"]
    for name, command in workers.items():
        queues = re.search(r"-Q (\S+)", command).group(1).split(",")
        assert len(queues) == 1, f"{name} shares its pool between {queues}"


def test_the_e2e_stack_runs_the_same_workers():
    text = (REPO / "tests/e2e/stack.py").read_text()
    assert '("worker-starts", "starts"' in text and '("worker-routes", "routes"' in text


# ------------------------------------------------------------------------------ one sleep check at a time
def test_a_second_sleep_check_does_nothing_while_one_runs(hub, settings):
    held = logs.client().lock(sleep._key("check"), timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert sleep.sleep_check()["skipped"] == [1]
    finally:
        held.release()
    assert "skipped" not in sleep.sleep_check()


# ------------------------------------------------------------------------------ the health probe (finding 4)
class _Recorder(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append(self.path)
        target = getattr(self.server, "redirect_to", None)
        if target:
            self.send_response(302)
            self.send_header("Location", target)
        else:
            self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def listener():
    servers = []

    def start(address: str = "127.0.0.1", *, status: int = 200, redirect_to: str | None = None):
        server = ThreadingHTTPServer((address, 0), _Recorder)
        server.seen, server.status, server.redirect_to = [], status, redirect_to
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/", "http://localhost:{port}/secret"])
def test_the_probe_never_follows_a_redirect(listener, target, monkeypatch):
    # *_proxy variables must not send the probe anywhere either.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    elsewhere = listener("127.0.0.1")
    app = listener("127.0.0.2", redirect_to=target.format(port=elsewhere.server_address[1]))
    assert probe("127.0.0.2", app.server_address[1]) == 302   # up: a 3xx is an answer
    assert app.seen == ["/"] and elsewhere.seen == []


def test_the_probe_counts_answers_below_500(listener):
    assert probe("127.0.0.2", listener("127.0.0.2", status=404).server_address[1]) == 404
    assert probe("127.0.0.2", listener("127.0.0.2", status=503).server_address[1]) is None
    closed = listener("127.0.0.2")
    port = closed.server_address[1]
    closed.shutdown()
    closed.server_close()
    assert probe("127.0.0.2", port) is None
