"""Issue 15, finding 9 on the real stack: the hub does not start on a published
DJANGO_SECRET_KEY, and a share-link id (sequential) opens nothing without the hub's key."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.core import signing

from .stack import ROOT, free_port, make_archive

pytestmark = pytest.mark.e2e
COOKIE_SALT = "demohub.space-cookie"  # spaces/access/proxy_gate.py


@pytest.mark.parametrize("key", ["", "dev-insecure-change-me", "e2e-short"])
def test_the_hub_refuses_to_start_on_a_published_or_missing_key(stack, key):
    env = {**stack.env, "DJANGO_SECRET_KEY": key, "DEMOHUB_ENV_FILE": "/dev/null", "DJANGO_DEBUG": "false"}
    proc = subprocess.run([sys.executable, "-m", "uvicorn", "hub.asgi:application", "--host", "127.0.0.1",
                           "--port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=20)  # on a hub that accepts the key, uvicorn keeps running: a failure
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr and "DJANGO_SECRET_KEY" in proc.stderr


def test_a_share_link_id_opens_nothing_without_the_hubs_key(stack):
    owner, token = stack.new_user()
    r = stack.api(token).post(f"{stack.hub_url}/api/spaces", json={"name": "vault", "sdk": "static",
                                                                     "visibility": "private"})
    assert r.status_code == 201, r.text
    assert stack.upload(token, owner, "vault", make_archive(
        {"README.md": "---\nsdk: static\n---\n", "index.html": "<h1>inside the vault</h1>"})).status_code == 202
    space = stack.wait_status(token, owner, "vault", "RUNNING", timeout=60)
    link = stack.api(token).post(f"{stack.hub_url}/api/spaces/{owner}/vault/share-links", json={}).json()
    label = space["url"].split("//", 1)[1].split(".", 1)[0]
    payload = {"l": label, "s": link["id"]}  # what a space cookie of this link's holder carries

    def visit(cookie: str):
        return stack.get_app(space["url"], cookies={"demohub_space": cookie}, allow_redirects=False)

    forged = signing.dumps(payload, key="dev-insecure-change-me", salt=COOKIE_SALT, compress=True)
    assert "inside the vault" not in visit(forged).text
    genuine = signing.dumps(payload, key=stack.secret_key, salt=COOKIE_SALT, compress=True)
    deadline = time.monotonic() + 10  # the route of a new private space may still be loading
    while "inside the vault" not in visit(genuine).text:
        assert time.monotonic() < deadline, "a cookie signed with the hub's own key did not enter"
        time.sleep(0.5)
    assert "inside the vault" not in visit(forged).text
