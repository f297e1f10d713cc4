"""Smoke test of the one-machine deployment: `scripts/up.sh` (what `make up` runs) brings up
docker-compose.yml under its own project name, ports, installation id, image tag and spaces
subnet, beside any stack already running; then a static space goes from upload to RUNNING
and is served through the stack's proxy. Teardown removes the stack, its volumes and
everything labelled with its installation id.
"""
from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[2]
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SUBNET = "10.214.0.0/16"  # not the default stack's 10.213.0.0/16
BUILDS_SUBNET = "10.211.0.0/16"  # not the default stack's builds range, 10.212.0.0/16
# Settings a test process may hold for hub processes run on the host (tests/settings.py sets
# some); the smoke stack must get the compose defaults or the values set below instead.
STACK_VARIABLES = {
    "DJANGO_SECRET_KEY", "PROXY_SHARED_SECRET", "SECRETS_ENCRYPTION_KEY", "COMPOSE_PROJECT_NAME", "DEMOHUB_INSTANCE",
    "DEMOHUB_IMAGE_TAG", "DEMOHUB_ENV_FILE", "UP_TIMEOUT", "HUB_BIND", "HUB_PORT", "HUB_URL",
    "SPACES_DOMAIN", "SPACES_PORT", "PROXY_LISTEN", "PROXY_MAX_BODY_SIZE", "SPACES_SUBNET", "BUILDS_SUBNET",
    "RUNNER_PULL_MISSING_BASE", "BUILD_CONCURRENCY", "LOG_LEVEL", "DATABASE_URL", "REDIS_URL",
    "DATA_DIR", "DJANGO_SETTINGS_MODULE", "EGRESS_ALLOW", "ALLOW_UNISOLATED", "ISOLATION_STATE_FILE",
    "BUILD_CGROUP_PARENT", "METRICS_TOKEN", "METRICS_MULTIPROC_DIR", "LOG_FORMAT",
}


@dataclass
class ComposeStack:
    project: str
    instance: str
    hub_port: int
    spaces_port: int
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-p", self.project, "--env-file", self.env["DEMOHUB_ENV_FILE"], *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )

    def logs(self) -> str:
        out = self.compose("logs", "--no-color", "--tail=40")
        return out.stdout + out.stderr


def free_port() -> int:
    # The proxy listens on all addresses, so the port must be free on all of them.
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def docker_ids(*args: str) -> list[str]:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    return sorted(set(out.stdout.split()))


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory):
    suffix = secrets.token_hex(4)
    hub_port = free_port()
    spaces_port = free_port()
    while spaces_port == hub_port:
        spaces_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    env.update(
        COMPOSE_PROJECT_NAME=f"demohub-smoke-{suffix}",
        DEMOHUB_INSTANCE=f"smoke-{suffix}",
        DEMOHUB_IMAGE_TAG=f"smoke-{suffix}",
        DEMOHUB_ENV_FILE=str(tmp_path_factory.mktemp("compose-smoke") / "env"),
        HUB_PORT=str(hub_port),
        SPACES_PORT=str(spaces_port),
        SPACES_SUBNET=SUBNET,
        BUILDS_SUBNET=BUILDS_SUBNET,
        UP_TIMEOUT="240",
    )
    # As the Makefile does: builds trust the host's CA bundle unless the operator said otherwise.
    if "BUILD_CA_BUNDLE" not in env and os.path.exists(HOST_CA_BUNDLE):
        env["BUILD_CA_BUNDLE"] = HOST_CA_BUNDLE
    stack = ComposeStack(env["COMPOSE_PROJECT_NAME"], env["DEMOHUB_INSTANCE"], hub_port, spaces_port, env)
    try:
        up = subprocess.run(["bash", "scripts/up.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=1200)
        assert up.returncode == 0, f"scripts/up.sh failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-12000:]}"
        yield stack
    finally:
        if os.environ.get("DEMOHUB_KEEP_STACK") == "1":  # for debugging, as tests/e2e/conftest.py
            print(f"kept: docker-compose -p {stack.project} --env-file {env['DEMOHUB_ENV_FILE']} ...")
            return
        down = stack.compose("down", "--volumes", "--remove-orphans")
        label = f"label=demohub.instance={stack.instance}"
        containers = docker_ids("ps", "-aq", "--filter", label)
        if containers:
            subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, check=False)
        networks = docker_ids("network", "ls", "-q", "--filter", label)
        if networks:
            subprocess.run(["docker", "network", "rm", *networks], capture_output=True, check=False)
        images = docker_ids("images", "-q", "--filter", label)
        if images:
            subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False)
        assert down.returncode == 0, f"docker-compose down failed:\n{down.stderr[-3000:]}"
        assert not docker_ids("ps", "-aq", "--filter", label), "containers of the smoke stack are left"
        assert not docker_ids("volume", "ls", "-q", "--filter", f"label=demohub.instance={stack.instance}")


def static_repo(marker: str) -> bytes:
    files = {
        "README.md": "---\ntitle: Compose smoke\nsdk: static\n---\n\nA static space for the smoke test.\n",
        "index.html": f"<!doctype html><title>smoke</title><h1>{marker}</h1>\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_static_space_runs_behind_the_compose_stack(compose_stack: ComposeStack):
    hub = f"http://127.0.0.1:{compose_stack.hub_port}"
    http = requests.Session()
    http.trust_env = False  # loopback only: no proxy from the environment

    username, password = f"smoke{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    r = http.post(f"{hub}/api/users", json={"username": username, "password": password}, timeout=30)
    assert r.status_code == 201, r.text
    r = http.post(f"{hub}/api/token", json={"username": username, "password": password}, timeout=30)
    assert r.status_code == 201, r.text
    http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    r = http.post(f"{hub}/api/spaces", json={"name": "smoke", "sdk": "static", "visibility": "public"}, timeout=30)
    assert r.status_code == 201, r.text
    space_api = f"{hub}/api/spaces/{username}/smoke"

    marker = f"compose smoke {secrets.token_hex(4)}"
    archive = static_repo(marker)
    r = http.post(f"{space_api}/revisions", files={"archive": ("repo.tar.gz", archive, "application/gzip")},
                  timeout=60)
    assert r.status_code == 202, r.text

    deadline = time.monotonic() + 180
    space: dict = {}
    while time.monotonic() < deadline:
        space = http.get(space_api, timeout=30).json()
        if space["status"] == "RUNNING":
            break
        if space["status"] in {"BUILD_ERROR", "CONFIG_ERROR", "RUNTIME_ERROR", "NO_APP_FILE"}:
            build_log = http.get(f"{space_api}/logs/build", timeout=30).text
            pytest.fail(f"space ended {space['status']}: {space.get('error')}\n{build_log[-3000:]}")
        time.sleep(1)
    else:
        pytest.fail(f"space not RUNNING after 180 s: {space}\n{compose_stack.logs()[-8000:]}")

    url = urlsplit(space["url"])
    assert url.port == compose_stack.spaces_port, space["url"]
    # Through this stack's proxy, by the space's own host name (not every resolver maps
    # *.localhost to loopback, so the Host header is sent instead).
    # The proxy picks up a new route within its reload poll (0.2 s), so allow a few seconds.
    visitor = requests.Session()
    visitor.trust_env = False
    deadline = time.monotonic() + 10
    while True:
        page = visitor.get(f"http://127.0.0.1:{url.port}{url.path or '/'}", headers={"Host": url.netloc}, timeout=30)
        if page.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert page.status_code == 200, f"{space['url']} -> {page.status_code}\n{page.text[:1000]}"
    assert marker in page.text
