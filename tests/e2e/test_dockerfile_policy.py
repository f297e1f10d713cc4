"""What a `sdk: docker` Dockerfile may start FROM, on the real stack (issue 15, finding 1).

The attack that was confirmed by hand: a stranger's Dockerfile `FROM <a private space's image>`
with a RUN that prints the private code into the stranger's build log. Each spelling that
slipped past the old line parser is tried as a revision of the stranger's own space; every one
must end in BUILD_ERROR naming its line, before the engine builds anything. An allowed FROM
(the base image) still builds and serves.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid

import docker
import pytest

from .stack import make_archive

pytestmark = [pytest.mark.e2e]

BASE = "demohub/base:bookworm"
SECRET = f"private-code-{uuid.uuid4().hex}"
NOT_ALLOWED = "is not an image this hub allows builds to start from"

PRIVATE_APP = f'''
SECRET = "{SECRET}"
import http.server
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), http.server.SimpleHTTPRequestHandler).serve_forever()
'''


def docker_repo(dockerfile: str, title: str = "Probe", files: dict | None = None) -> bytes:
    return make_archive({
        "README.md": f"---\ntitle: {title}\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": dockerfile,
        **(files or {}),
    })


class LoopbackListener:
    """A loopback TCP port that counts connections: proof that `ADD http://...` sent nothing."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


def upload_and_wait(stack, token: str, owner: str, name: str, archive: bytes, *, timeout: float = 120) -> dict:
    """Upload a revision and wait until it is final; return it with its build log."""
    r = stack.upload(token, owner, name, archive)
    assert r.status_code == 202, r.text
    number = r.json()["number"]
    api = stack.api(token)
    url = f"{stack.hub_url}/api/spaces/{owner}/{name}/revisions/{number}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rev = api.get(url).json()
        if rev["status"] in ("failed", "succeeded", "cancelled"):
            rev["log"] = api.get(f"{stack.hub_url}/api/spaces/{owner}/{name}/logs/build").text
            return rev
        time.sleep(0.3)
    raise AssertionError(f"revision {number} of {owner}/{name} never finished: {rev}")


@pytest.fixture(scope="module")
def private_image(stack):
    """A private `sdk: docker` space of its owner, running, and its revision image's name."""
    owner, token = stack.new_user()
    dockerfile = (f"FROM {BASE}\nCOPY app.py /home/user/app/app.py\n"
                  'CMD ["python3", "/home/user/app/app.py"]\n')
    stack.deploy(token, owner, "secret", "docker", docker_repo(dockerfile, "Secret", {"app.py": PRIVATE_APP}),
                 visibility="private", timeout=300)
    found = docker.from_env().images.list(filters={"label": [f"demohub.instance={stack.instance}",
                                                             f"demohub.space={owner}/secret"]})
    tags = [t for image in found for t in image.tags]
    assert tags and tags[0].startswith(f"demohub-{stack.instance}/"), tags
    return tags[0]


def test_a_stranger_cannot_build_from_a_private_spaces_image(stack, private_image):
    stranger, token = stack.new_user()
    stack.create_space(token, "attack", "docker")
    attack = upload_and_wait(stack, token, stranger, "attack", docker_repo(
        f"FROM {private_image}\nRUN cat /home/user/app/app.py\n"))
    assert attack["status"] == "failed"
    assert stack.space(token, stranger, "attack")["status"] == "BUILD_ERROR"
    assert f"Dockerfile line 1: FROM {private_image} {NOT_ALLOWED}" in attack["error"]
    assert SECRET not in attack["error"] and SECRET not in attack["log"]
    assert "Step 1/" not in attack["log"]  # refused before the engine built anything

    # A name that exists nowhere reads exactly the same: the error tells nothing about others.
    nowhere = f"demohub-{stack.instance}/{stranger}-nothing:r1"
    missing = upload_and_wait(stack, token, stranger, "attack", docker_repo(
        f"FROM {nowhere}\nRUN cat /home/user/app/app.py\n"))
    assert missing["status"] == "failed"
    assert missing["error"].replace(nowhere, "IMAGE") == attack["error"].replace(private_image, "IMAGE")


def test_every_spelling_is_refused_before_the_build_and_the_base_image_still_serves(stack, private_image):
    user, token = stack.new_user()
    stack.create_space(token, "spellings", "docker")
    listener = LoopbackListener()
    try:
        cases = [
            (f"FROM\t{private_image}\nRUN cat /home/user/app/app.py\n", 1, NOT_ALLOWED),
            (f"from {private_image}\nRUN cat /home/user/app/app.py\n", 1, NOT_ALLOWED),
            (f"FROM --platform=linux/amd64 \\\n    {private_image} \\\n    AS x\n", 1, NOT_ALLOWED),
            (f"ARG X={private_image}\nFROM ${{X}}\nRUN cat /home/user/app/app.py\n", 2,
             "build arguments are not allowed in FROM"),
            (f"ARG X={private_image}\nFROM $X\n", 2, "build arguments are not allowed in FROM"),
            (f"FROM {BASE}\nCOPY --from={private_image} /home/user/app/app.py /leak.py\n"
             "RUN cat /leak.py\n", 2, "--from may only name an earlier stage"),
            (f"FROM {BASE}\nRUN --mount=type=bind,from={private_image},target=/x cat /x/home/user/app/app.py\n",
             2, "RUN options"),
            (f"FROM {BASE}\nADD http://127.0.0.1:{listener.port}/probe /probe\n", 2,
             "builds fetch nothing by URL"),
            (f"FROM {BASE}\nONBUILD RUN cat /etc/hostname\n", 2, "ONBUILD is not allowed"),
        ]
        for dockerfile, line, words in cases:
            rev = upload_and_wait(stack, token, user, "spellings", docker_repo(dockerfile))
            assert rev["status"] == "failed", (dockerfile, rev)
            assert rev["error"].startswith(f"Dockerfile line {line}: "), (dockerfile, rev["error"])
            assert words in rev["error"], (dockerfile, rev["error"])
            assert SECRET not in rev["log"] and "Step 1/" not in rev["log"], (dockerfile, rev["log"][-500:])
        time.sleep(0.5)
        assert listener.connections == 0  # the ADD URL was never fetched
    finally:
        listener.close()

    # The base image is allowed: a small server builds, runs and answers through the proxy.
    ok = upload_and_wait(stack, token, user, "spellings", docker_repo(
        f"FROM {BASE}\nRUN mkdir /srv/site && echo base-image-ok > /srv/site/index.html\n"
        'WORKDIR /srv/site\nCMD ["python3", "-m", "http.server", "7860"]\n'), timeout=300)
    assert ok["status"] == "succeeded", ok
    space = stack.wait_status(token, user, "spellings", "RUNNING", timeout=180)
    r = stack.get_app(space["url"])
    assert r.status_code == 200 and "base-image-ok" in r.text
