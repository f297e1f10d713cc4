"""Issue 15, findings 7 and 12 on the real stack: per-user quotas and the creation rate limit,
addresses reused after a delete, anonymous volumes removed with their containers, secrets
encrypted in Postgres, and large bodies refused before they are read."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid

import docker
import pytest

from .stack import make_archive

pytestmark = pytest.mark.e2e

STATIC = {"README.md": "---\nsdk: static\n---\n", "index.html": "<h1>hi</h1>"}
# A tiny `sdk: docker` app that declares a VOLUME (the engine makes an anonymous volume per
# container) and serves the value of its secret, so a test sees what the app received.
VOLUME_APP = {
    "README.md": "---\nsdk: docker\napp_port: 7860\n---\n",
    "Dockerfile": ("FROM demohub/base:bookworm\nVOLUME /data\n"
                   'CMD ["sh", "-c", "mkdir -p /tmp/www && printf %s \\"$APP_SECRET\\" > /tmp/www/secret.txt '
                   '&& cd /tmp/www && exec python3 -m http.server 7860"]\n'),
}
SECRET = "s3cret-" + uuid.uuid4().hex


def create(stack, token, name, sdk="static"):
    return stack.api(token).post(f"{stack.hub_url}/api/spaces", json={"name": name, "sdk": sdk})


def delete(stack, token, owner, name) -> None:
    r = stack.api(token).delete(f"{stack.hub_url}/api/spaces/{owner}/{name}")
    assert r.status_code == 202, r.text
    # The API hides a space at once (DELETING); its row, holding the address, goes with the purge.
    deadline = time.monotonic() + 60
    while _sql(stack, f"SELECT count(*) FROM spaces_space s JOIN auth_user u ON u.id = s.owner_id "
                      f"WHERE u.username = '{owner}' AND s.name = '{name}'") != "0":
        assert time.monotonic() < deadline, f"{owner}/{name} was not purged within 60 s"
        time.sleep(0.3)


def _sql(stack, query: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", stack.db_name, "-At", "-c", query],
                          check=True, capture_output=True, text=True).stdout.strip()


def refused(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["detail"], body


# ------------------------------------------------------------------------------ quotas
@pytest.fixture
def low_quotas(stack):
    """The web process with small quotas for this module, as an operator would set them."""
    stack.restart_web({"QUOTA_SPACES_PER_USER": "2", "QUOTA_RUNNING_SPACES_PER_USER": "1",
                       "QUOTA_QUEUED_BUILDS_PER_USER": "1", "QUOTA_STORAGE_PER_USER": "300k",
                       "SPACE_CREATE_RATE_PER_USER": "4/h"})
    try:
        yield
    finally:
        stack.restart_web()


def test_quota_refusals_through_the_api(stack, low_quotas):
    owner, token = stack.new_user()
    # Running spaces: one runs, a second may not start.
    stack.deploy(token, owner, "one", "static", make_archive(STATIC), timeout=60)
    assert create(stack, token, "two").status_code == 201
    refused(stack.upload(token, owner, "two", make_archive(STATIC)), 403, "quota_running_spaces")
    # Spaces owned: two is the most.
    refused(create(stack, token, "three"), 403, "quota_spaces")
    # Storage: uploads to the running space count their uncompressed bytes.
    big = {**STATIC, "blob.bin": os.urandom(200_000).hex()[:200_000]}
    assert stack.upload(token, owner, "one", make_archive(big)).status_code == 202
    refused(stack.upload(token, owner, "one", make_archive(big)), 403, "quota_storage")
    # The creation rate: 4 attempts an hour (refused ones count), then 429 with Retry-After.
    refused(create(stack, token, "four"), 403, "quota_spaces")
    r = create(stack, token, "five")
    refused(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) > 0
    # Builds queued: one build at a time per user.
    owner2, token2 = stack.new_user()
    stack.deploy(token2, owner2, "first", "docker", make_archive(VOLUME_APP), wanted=None)
    assert create(stack, token2, "second", "docker").status_code == 201
    refused(stack.upload(token2, owner2, "second", make_archive(VOLUME_APP)), 403, "quota_builds_queued")
    # The hub keeps serving the space that runs.
    space = stack.space(token, owner, "one")
    assert space["status"] == "RUNNING" and stack.get_app(space["url"]).status_code == 200


# ------------------------------------------------------------------------------ addresses
def _upstream(stack, label: str) -> str:
    text = (stack.data_dir / "proxy" / "routes" / f"{label}.conf").read_text()
    return re.search(r"server\s+([0-9.]+):", text)[1]


def _label(space: dict) -> str:
    return space["url"].split("//", 1)[1].split(".", 1)[0]


def _create_with_route(stack, token, name: str) -> str:
    """Create a container space; return its slot-a address once its route is written."""
    r = create(stack, token, name, "docker")
    assert r.status_code == 201, r.text
    route = stack.data_dir / "proxy" / "routes" / f"{_label(r.json())}.conf"
    deadline = time.monotonic() + 30
    while not route.exists():
        assert time.monotonic() < deadline, "the route of a new space was never written"
        time.sleep(0.2)
    return _upstream(stack, _label(r.json()))


def test_a_deleted_spaces_address_is_given_to_the_next_space(stack):
    owner, token = stack.new_user()
    gap = _create_with_route(stack, token, "gap")
    keep = _create_with_route(stack, token, "keep")  # a newer space: the gap is not at the end
    delete(stack, token, owner, "gap")
    seen = []
    for i in range(3):  # a create/delete loop stays on the one free address
        seen.append(_create_with_route(stack, token, f"loop{i}"))
        delete(stack, token, owner, f"loop{i}")
    assert seen == [gap] * 3, f"expected the freed address {gap} each time, got {seen}"
    assert keep != gap


# ------------------------------------------------------------------------------ secrets and volumes
@pytest.fixture(scope="module")
def volume_space(stack):
    owner, token = stack.new_user()
    assert create(stack, token, "vol", "docker").status_code == 201
    r = stack.api(token).put(f"{stack.hub_url}/api/spaces/{owner}/vol/secrets/APP_SECRET", json={"value": SECRET})
    assert r.status_code == 201, r.text
    assert stack.upload(token, owner, "vol", make_archive(VOLUME_APP)).status_code == 202
    space = stack.wait_status(token, owner, "vol", "RUNNING", timeout=240)
    return owner, token, space


def test_a_secret_is_encrypted_in_postgres_and_the_app_gets_it(stack, volume_space):
    _, _, space = volume_space
    assert stack.get_app(space["url"], "/secret.txt").text == SECRET
    row = _sql(stack, "SELECT value FROM spaces_spacevariable WHERE key = 'APP_SECRET'")
    assert row.startswith("fernet:") and SECRET not in row
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-a", "-t", "spaces_spacevariable",
                           stack.db_name], check=True, capture_output=True, text=True).stdout
    assert SECRET not in dump


def _volumes_of(stack, owner: str) -> dict[str, set[str]]:
    """Volume names mounted by each container of `owner`/vol, by container name."""
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": [f"demohub.instance={stack.instance}",
                                                                f"demohub.space={owner}/vol"]})
    return {c.name: {m["Name"] for m in c.attrs["Mounts"] if m.get("Type") == "volume"} for c in found}


def _gone(names: set[str], timeout: float = 60) -> None:
    client = docker.from_env()
    deadline = time.monotonic() + timeout
    while True:
        left = {n for n in names if n in {v.name for v in client.volumes.list()}}
        if not left:
            return
        assert time.monotonic() < deadline, f"anonymous volumes left behind: {left}"
        time.sleep(0.5)


def test_a_volume_declaring_space_leaves_no_volume_after_redeploy_or_delete(stack, volume_space):
    owner, token, _ = volume_space
    first = set().union(*_volumes_of(stack, owner).values())
    assert first, "the VOLUME of the Dockerfile made no volume"
    assert stack.upload(token, owner, "vol", make_archive({**VOLUME_APP, "v2": "2"})).status_code == 202
    stack.wait_status(token, owner, "vol", "RUNNING", timeout=240, revision=2)
    _gone(first)  # the old container went with its volume
    second = set().union(*_volumes_of(stack, owner).values())
    assert second and not (second & first)
    delete(stack, token, owner, "vol")
    _gone(second)


# ------------------------------------------------------------------------------ bodies
def _post_headers_then_wait(stack, path: str, length: int, headers: dict[str, str]) -> tuple[str, float]:
    """Send a request line, headers and the first 64 KiB of a `length`-byte body, then wait
    for an answer without sending more. Returns (status line, seconds to the answer)."""
    with socket.create_connection(("127.0.0.1", stack.hub_port), timeout=15) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in {
            "Host": f"localhost:{stack.hub_port}", "Content-Type": "multipart/form-data; boundary=xx",
            "Content-Length": str(length), **headers}.items())
        started = time.monotonic()
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + b"--xx\r\n" + b"a" * 65536)
        try:
            answer = sock.recv(4096).decode("latin-1")
        except TimeoutError:
            return "", time.monotonic() - started
        return answer.split("\r\n", 1)[0], time.monotonic() - started


def test_large_bodies_are_refused_before_they_are_read(stack):
    owner, token = stack.new_user()
    _, stranger = stack.new_user()
    assert create(stack, token, "pub").status_code == 201
    r = stack.api(token).post(f"{stack.hub_url}/api/spaces", json={"name": "priv", "sdk": "static",
                                                                     "visibility": "private"})
    assert r.status_code == 201
    fifty_mb = 50 * 2**20
    cases = [
        (f"/api/spaces/{owner}/pub/revisions", {}, "401"),                                     # anonymous
        (f"/api/spaces/{owner}/pub/revisions", {"Authorization": "Bearer dh_nope"}, "401"),     # bad token
        (f"/api/spaces/{owner}/priv/revisions", {"Authorization": f"Bearer {stranger}"}, "404"),  # hidden
        (f"/api/spaces/{owner}/pub/revisions", {"Authorization": f"Bearer {stranger}"}, "403"),   # not an editor
        (f"/spaces/{owner}/pub/settings", {"Cookie": "sessionid=forged"}, "401"),               # page, no session
    ]
    for path, headers, status in cases:
        line, took = _post_headers_then_wait(stack, path, fifty_mb, headers)
        assert line.startswith(f"HTTP/1.1 {status}"), (path, headers, line or "no answer: the body was awaited")
        assert took < 5
    # Over the upload cap: 413 whoever asks, before the body.
    line, _ = _post_headers_then_wait(stack, f"/api/spaces/{owner}/pub/revisions", 500 * 2**20,
                                      {"Authorization": f"Bearer {token}"})
    assert line.startswith("HTTP/1.1 413"), line
    # The owner's real upload still goes through, and the hub keeps serving.
    assert stack.upload(token, owner, "pub", make_archive(STATIC)).status_code == 202
    assert stack.space(token, owner, "pub")["name"] == "pub"
