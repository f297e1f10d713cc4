"""Operations on the real stack (spaces/operations/): a build run by the builds worker moves the
build counter that the web process serves at /metrics (the workers' shared counters), and the
request id of an upload follows it through nginx, the hub, the broker and the worker into the
build log and the JSON log lines. /readyz with Redis stopped: tests/e2e/test_restarts.py."""
from __future__ import annotations

import json
import time
import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families

from .stack import make_archive

FAILED = (("outcome", "failed"), ("sdk", "docker"))


def scrape(stack) -> dict[str, dict]:
    started = time.monotonic()
    r = requests.get(f"{stack.hub_url}/metrics", headers={"Authorization": f"Bearer {stack.env['METRICS_TOKEN']}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    print(f"/metrics: {len(r.content)} bytes in {1000 * (time.monotonic() - started):.1f} ms")
    found: dict[str, dict] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def log_lines(stack, process: str) -> list[dict]:
    lines = []
    for raw in (stack.log_dir / f"{process}.log").read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass
    return lines


def test_a_build_moves_the_metrics_and_carries_the_request_id(stack, alice):
    owner, token = alice
    assert requests.get(f"{stack.hub_url}/metrics", timeout=10).status_code == 401
    before = scrape(stack)

    # A Dockerfile whose build fails at once: a real build by the builds worker, no app to start.
    name = f"ops{uuid.uuid4().hex[:6]}"
    stack.create_space(token, name, "docker")
    rid = f"e2e-{uuid.uuid4().hex}"
    archive = make_archive({"README.md": "---\ntitle: Fails\nsdk: docker\n---\n",
                            "Dockerfile": "FROM demohub/base:bookworm\nRUN exit 3\n"})
    r = requests.post(f"{stack.hub_url}/api/spaces/{owner}/{name}/revisions", files={"archive": ("r.tar.gz", archive)},
                      headers={"Authorization": f"Bearer {token}", "X-Request-ID": rid}, timeout=60)
    assert r.status_code == 202, r.text
    assert r.headers["X-Request-ID"] == rid
    stack.wait_status(token, owner, name, "BUILD_ERROR", timeout=300)

    deadline = time.monotonic() + 30  # the worker counts after the task returns
    while True:
        after = scrape(stack)
        moved = after.get("demohub_builds_total", {}).get(FAILED, 0) - before.get("demohub_builds_total", {}).get(FAILED, 0)
        if moved >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert moved == 1, (before.get("demohub_builds_total"), after.get("demohub_builds_total"))
    assert after["demohub_build_duration_seconds_count"][(("sdk", "docker"),)] >= 1
    tasks = after["demohub_celery_tasks_total"]
    assert tasks[(("outcome", "succeeded"), ("task", "spaces.tasks.build_revision_task"))] >= 1
    assert set(q for ((_, q),) in after["demohub_queue_depth"]) >= {"builds", "lifecycle", "starts", "routes"}
    assert after["demohub_spaces"][(("status", "BUILD_ERROR"),)] >= 1

    # The request id: in the build log, and in JSON log lines of the web process and of the worker
    # (it crossed the broker as a message header).
    build_log = requests.get(f"{stack.hub_url}/api/spaces/{owner}/{name}/logs/build",
                             headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    # The first line names the commit (issue 10), the next the revision and the request.
    assert build_log.startswith("==> commit "), build_log[:500]
    assert f"request {rid}" in build_log.splitlines()[1], build_log[:500]
    worker = [line for line in log_lines(stack, "worker-builds") if line.get("request_id") == rid]
    assert worker and all(line["task"] == "spaces.tasks.build_revision_task" for line in worker), worker[:3]
    assert any("timestamp" in line and "level" in line for line in worker)
    web = [line for line in log_lines(stack, "web") if line.get("request_id") == rid]
    assert any(line.get("route") == "api/spaces/<str:owner>/<str:name>/revisions" and line.get("status") == 202
               for line in web), web[:3]
    assert not any(name in json.dumps(line) for line in web if line.get("event") == "request")  # routes, not paths


def test_the_proxy_sets_a_request_id_and_forwards_the_callers(stack):
    """nginx (deploy/nginx) hands the hub the caller's X-Request-ID, or one it made."""
    url = f"http://127.0.0.1:{stack.proxy_port}/"
    host = {"Host": f"nosuchspace.{stack.spaces_domain}:{stack.proxy_port}"}
    rid = f"e2e-{uuid.uuid4().hex}"
    r = requests.get(url, headers={**host, "X-Request-ID": rid}, timeout=10, allow_redirects=False)
    assert r.headers.get("X-Request-ID") == rid, (r.status_code, dict(r.headers))
    made = requests.get(url, headers=host, timeout=10, allow_redirects=False).headers.get("X-Request-ID", "")
    assert len(made) == 32 and made != rid
