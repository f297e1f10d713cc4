"""`make backup` then `make restore` on the real compose stack (scripts/backup.sh, restore.sh).

A source stack (its own project, ports, instance and subnets, as the smoke test's) gets a user
with two API tokens, a docker space with a secret and a comment, and a private static space with
a share link. `scripts/backup.sh` writes an encrypted archive (mode 0600); the source is taken
down with its volumes; a fresh stack under another project name and instance comes up and
`scripts/restore.sh` brings the archive back into it. Then the same tokens sign in, the same
spaces, revisions, comments and share links are there, the docker space is built again and
serves its page with the restored secret, and the share link lets a visitor in.
"""
from __future__ import annotations

import os
import secrets
import stat
import subprocess
import tarfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.archives import make_archive

from .test_compose_smoke import HOST_CA_BUNDLE, ROOT, STACK_VARIABLES, ComposeStack, docker_ids, free_port

pytestmark = pytest.mark.compose
TAG = f"backup-{secrets.token_hex(3)}"  # both stacks: the hub images are built once
PASSPHRASE = "correct horse battery " + secrets.token_hex(4)


def stack_env(tmp: Path, role: str, subnet: str, builds_subnet: str) -> dict[str, str]:
    suffix = secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    hub_port, spaces_port = free_port(), free_port()
    while spaces_port == hub_port:
        spaces_port = free_port()
    env.update(COMPOSE_PROJECT_NAME=f"demohub-{role}-{suffix}", DEMOHUB_INSTANCE=f"{role}-{suffix}",
               DEMOHUB_IMAGE_TAG=TAG, DEMOHUB_ENV_FILE=str(tmp / f"{role}.env"), HUB_PORT=str(hub_port),
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


def test_backup_then_restore_onto_a_fresh_stack_serves_the_same_spaces(tmp_path):
    source = target = None
    try:
        source = up(stack_env(tmp_path, "bksrc", "10.208.0.0/16", "10.209.0.0/16"))
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

        target = up(stack_env(tmp_path, "bkdst", "10.206.0.0/16", "10.207.0.0/16"))
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
    finally:
        for stack in (source, target):
            if stack is not None and os.environ.get("DEMOHUB_KEEP_STACK") != "1":
                take_down(stack, images=True)
