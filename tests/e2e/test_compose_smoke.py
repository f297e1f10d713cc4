"""The one-machine deployment, on one compose project built once for both tests here.

* Smoke test: `scripts/up.sh` (what `make up` runs) brings up docker-compose.yml under its own
  project name, ports, installation id, image tag and spaces subnet, beside any stack already
  running; then a static space goes from upload to RUNNING and is served through the stack's
  proxy. Teardown removes the stack, its volumes and everything labelled with its installation
  id.
* `make backup` then `make restore` (scripts/backup.sh, restore.sh), with the smoke test's stack
  as the source: it gets a user with two API tokens, a docker space with a secret and a comment,
  and a private static space with a share link. `scripts/backup.sh` writes an encrypted archive
  (mode 0600); the source is taken down with its volumes; a fresh stack under another project
  name and instance (the same image tag: the hub images are built once) comes up and
  `scripts/restore.sh` brings the archive back into it. Then the same tokens sign in, the same
  spaces, revisions, comments and share links are there, the docker space is built again and
  serves its page with the restored secret, and the share link lets a visitor in.
"""
from __future__ import annotations

import io
import os
import secrets
import socket
import stat
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.archives import make_archive

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


# ------------------------------------------------------------------------------ backup and restore
PASSPHRASE = "correct horse battery " + secrets.token_hex(4)


def stack_env(tmp: Path, role: str, subnet: str, builds_subnet: str, tag: str) -> dict[str, str]:
    suffix = secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    hub_port, spaces_port = free_port(), free_port()
    while spaces_port == hub_port:
        spaces_port = free_port()
    env.update(COMPOSE_PROJECT_NAME=f"demohub-{role}-{suffix}", DEMOHUB_INSTANCE=f"{role}-{suffix}",
               DEMOHUB_IMAGE_TAG=tag, DEMOHUB_ENV_FILE=str(tmp / f"{role}.env"), HUB_PORT=str(hub_port),
               SPACES_PORT=str(spaces_port), SPACES_SUBNET=subnet, BUILDS_SUBNET=builds_subnet, UP_TIMEOUT="240")
    if "BUILD_CA_BUNDLE" not in env and os.path.exists(HOST_CA_BUNDLE):
        env["BUILD_CA_BUNDLE"] = HOST_CA_BUNDLE
    return env


def up(env: dict[str, str]) -> ComposeStack:
    stack = ComposeStack(env["COMPOSE_PROJECT_NAME"], env["DEMOHUB_INSTANCE"], int(env["HUB_PORT"]),
                         int(env["SPACES_PORT"]), env)
    run = subprocess.run(["bash", "scripts/up.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"up.sh failed:\n{run.stdout[-2000:]}\n{run.stderr[-8000:]}"
    return stack


def take_down(stack: ComposeStack, *, images: bool) -> None:
    stack.compose("down", "--volumes", "--remove-orphans")
    label = f"label=demohub.instance={stack.instance}"
    for kind, remove in ((("ps", "-aq"), ("rm", "-f")), (("network", "ls", "-q"), ("network", "rm"))):
        ids = docker_ids(*kind, "--filter", label)
        if ids:
            subprocess.run(["docker", *remove, *ids], capture_output=True, check=False)
    if images:
        ids = docker_ids("images", "-q", "--filter", label)
        if ids:
            subprocess.run(["docker", "rmi", "-f", *ids], capture_output=True, check=False)


def script(name: str, stack: ComposeStack, **extra: str) -> subprocess.CompletedProcess:
    run = subprocess.run(["bash", f"scripts/{name}.sh"], cwd=ROOT, env={**stack.env, **extra}, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, f"{name}.sh failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-6000:]}"
    return run


def wait_running(http: requests.Session, api: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        space = http.get(api, timeout=30).json()
        if space["status"] == "RUNNING" or time.monotonic() > deadline:
            break
        assert space["status"] not in {"BUILD_ERROR", "CONFIG_ERROR", "RUNTIME_ERROR"}, (
            space, http.get(f"{api}/logs/build", timeout=30).text[-2000:])
        time.sleep(1)
    assert space["status"] == "RUNNING", space
    return space


def fetch_app(space: dict, path: str = "/") -> requests.Response:
    url = urlsplit(space["url"])
    visitor = requests.Session()
    visitor.trust_env = False
    deadline = time.monotonic() + 15
    while True:
        page = visitor.get(f"http://127.0.0.1:{url.port}{path}", headers={"Host": url.netloc}, timeout=30)
        if page.status_code == 200 or time.monotonic() > deadline:
            return page
        time.sleep(0.3)


APP = make_archive({
    "README.md": "---\ntitle: Restored app\nsdk: docker\napp_port: 7860\n---\n",
    "Dockerfile": "FROM demohub/base:bookworm\nCOPY index.html /srv/index.html\n"
                  'CMD ["sh", "-c", "mkdir -p /tmp/www && cd /tmp/www && cp /srv/index.html . && '
                  'printenv GREETING > greeting.txt && exec python3 -m http.server 7860"]\n',
    "index.html": "<h1>restored app</h1>\n",
})
SITE = make_archive({"README.md": "---\ntitle: Private site\nsdk: static\n---\n", "index.html": "<h1>private site</h1>\n"})


def snapshot(http: requests.Session, hub: str, owner: str) -> dict:
    """What must come back: spaces, revisions, comments, share links (without secrets)."""
    out = {}
    for name in ("app", "site"):
        api = f"{hub}/api/spaces/{owner}/{name}"
        space = http.get(api, timeout=30).json()
        out[name] = {
            "space": {k: space[k] for k in ("name", "sdk", "visibility", "title", "revision", "comments")},
            "revisions": [(r["number"], r["content_hash"]) for r in http.get(f"{api}/revisions", timeout=30).json()["results"]],
            "comments": [(c["author"], c["body"]) for c in http.get(f"{api}/comments", timeout=30).json()["results"]],
            "links": [(link["id"], link["note"]) for link in http.get(f"{api}/share-links", timeout=30).json()["results"]],
        }
    return out


def test_backup_then_restore_onto_a_fresh_stack_serves_the_same_spaces(compose_stack: ComposeStack, tmp_path):
    source, target = compose_stack, None
    try:
        hub = f"http://127.0.0.1:{source.hub_port}"
        http = requests.Session()
        http.trust_env = False
        owner, password = f"bk{secrets.token_hex(3)}", secrets.token_urlsafe(16)
        assert http.post(f"{hub}/api/users", json={"username": owner, "password": password}, timeout=30).status_code == 201
        tokens = [http.post(f"{hub}/api/token", json={"username": owner, "password": password, "name": f"t{i}"},
                            timeout=30).json()["token"] for i in range(2)]
        http.headers["Authorization"] = f"Bearer {tokens[0]}"
        for name, sdk, visibility in (("app", "docker", "public"), ("site", "static", "private")):
            assert http.post(f"{hub}/api/spaces", json={"name": name, "sdk": sdk, "visibility": visibility},
                             timeout=30).status_code == 201
        greeting = f"hello {secrets.token_hex(4)}"
        assert http.put(f"{hub}/api/spaces/{owner}/app/secrets/GREETING", json={"value": greeting},
                        timeout=30).status_code in (200, 201)
        for name, archive in (("app", APP), ("site", SITE)):
            r = http.post(f"{hub}/api/spaces/{owner}/{name}/revisions", files={"archive": ("r.tar.gz", archive)},
                          timeout=60)
            assert r.status_code == 202, r.text
        assert http.post(f"{hub}/api/spaces/{owner}/app/comments", json={"body": "kept?"}, timeout=30).status_code == 201
        link = http.post(f"{hub}/api/spaces/{owner}/site/share-links", json={"note": "for a friend"}, timeout=30).json()
        app = wait_running(http, f"{hub}/api/spaces/{owner}/app")
        wait_running(http, f"{hub}/api/spaces/{owner}/site")
        assert fetch_app(app, "/greeting.txt").text.strip() == greeting
        before = snapshot(http, hub, owner)

        archive = tmp_path / "backup.tar.gpg"
        script("backup", source, BACKUP_FILE=str(archive), BACKUP_PASSPHRASE=PASSPHRASE)
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        assert not tarfile.is_tarfile(archive)  # encrypted
        take_down(source, images=False)

        target = up(stack_env(tmp_path, "bkdst", "10.206.0.0/16", "10.207.0.0/16", source.env["DEMOHUB_IMAGE_TAG"]))
        restored = script("restore", target, FILE=str(archive), BACKUP_PASSPHRASE=PASSPHRASE)
        assert f"rebuilding {owner}/app r1" in restored.stdout, restored.stdout
        hub = f"http://127.0.0.1:{target.hub_port}"
        for token in tokens:  # both tokens sign in
            http.headers["Authorization"] = f"Bearer {token}"
            assert http.get(f"{hub}/api/me", timeout=30).json()["username"] == owner
        app = wait_running(http, f"{hub}/api/spaces/{owner}/app")
        wait_running(http, f"{hub}/api/spaces/{owner}/site")
        assert snapshot(http, hub, owner) == before
        page = fetch_app(app)
        assert page.status_code == 200 and "restored app" in page.text
        assert fetch_app(app, "/greeting.txt").text.strip() == greeting  # the secret, decrypted
        # The share link of the private site lets a visitor in (its token is stored hashed).
        visitor = requests.Session()
        visitor.trust_env = False
        token = urlsplit(link["url"]).path.rstrip("/").rsplit("/", 1)[-1]
        r = visitor.get(f"{hub}/s/{token}", timeout=30, allow_redirects=False)
        assert r.status_code == 302, (r.status_code, r.text[:500])
        page = visitor.get(f"{hub}{r.headers['Location']}", timeout=30)
        assert page.status_code == 200 and "Private site" in page.text
        r = visitor.get(f"{hub}/s/not-{token}", timeout=30, allow_redirects=False)
        assert r.status_code == 404
    finally:  # the source goes with this module's fixture, the images of both with it
        if target is not None and os.environ.get("DEMOHUB_KEEP_STACK") != "1":
            take_down(target, images=True)
