"""Branch previews end to end (issue 10 item 8): the real `git` client pushes to the real stack;
a branch becomes a preview on its own host that only editors can open through the real proxy,
main keeps serving its own code, and `git push origin :branch` removes the preview (its host
answers as a missing one, its container is gone).

One small `sdk: docker` app (FROM the base image, no package install) for main and the branch:
two short builds.
"""
from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
import requests

from tests.git_client import run_git

pytestmark = [pytest.mark.e2e]

SERVER = '''
import http.server, os
WHO = open("/srv/who.txt").read().strip()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{WHO} on {os.environ.get('SPACE_HOST', '')}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), H).serve_forever()
'''
FILES = {
    "README.md": "---\ntitle: Previewed\nsdk: docker\napp_port: 7860\n---\n",
    "Dockerfile": "FROM demohub/base:bookworm\nCOPY server.py who.txt /srv/\nCMD [\"python3\", \"/srv/server.py\"]\n",
    "server.py": SERVER,
}


def commit(d: Path, who: str) -> None:
    for name, text in {**FILES, "who.txt": who + "\n"}.items():
        (d / name).write_text(text)
    run_git(d, "add", "-A")
    run_git(d, "commit", "-q", "-m", who)


def wait_previews(stack, token: str, path: str, done, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        r = stack.api(token).get(f"{stack.hub_url}/api/spaces/{path}/previews")
        assert r.status_code == 200, r.text
        found = r.json()["results"]
        if done(found):
            return found
        assert time.monotonic() < deadline, f"previews never got there: {found}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def pushed(stack, alice, tmp_path_factory):
    """alice's public docker space: main pushed and serving, branch `feature` pushed."""
    owner, token = alice
    stack.create_space(token, "previewed", "docker")
    remote = f"http://{owner}:{token}@localhost:{stack.hub_port}/spaces/{owner}/previewed"
    d = tmp_path_factory.mktemp("previews")
    run_git(d, "init", "-q", "-b", "main")
    commit(d, "main")
    run_git(d, "push", "-q", remote, "main")
    space = stack.wait_status(token, owner, "previewed", "RUNNING", timeout=300)
    run_git(d, "checkout", "-q", "-b", "feature")
    commit(d, "feature")
    out = run_git(d, "push", remote, "feature")
    assert "builds as a preview" in out.stderr, out.stderr
    found = wait_previews(stack, token, f"{owner}/previewed", lambda p: p and p[0]["status"] in ("running", "failed"))
    assert found[0]["status"] == "running", found
    return {"owner": owner, "token": token, "space": space, "preview": found[0], "repo": d, "remote": remote}


def test_a_pushed_branch_is_a_preview_only_editors_open_and_main_keeps_serving(stack, pushed):
    preview, space = pushed["preview"], pushed["space"]
    assert preview["branch"] == "feature" and preview["commit"] == run_git(pushed["repo"], "rev-parse", "HEAD").stdout.strip()
    host = preview["url"].split("//", 1)[1].split(":", 1)[0]
    assert len(host.split(".", 1)[0]) <= 63 and "--feature-" in host
    # The owner, with their credentials, through the real proxy: the branch's code, on its own host.
    owner = stack.get_app(preview["url"], headers={"Authorization": f"Bearer {pushed['token']}"})
    assert (owner.status_code, owner.text) == (200, f"feature on {host}")
    # main is untouched and stays public.
    assert stack.get_app(space["url"]).text.startswith("main on ")
    assert stack.space(None, pushed["owner"], "previewed")["status"] == "RUNNING"
    # A stranger and an anonymous caller get a missing host's answers, on a public space too.
    _, stranger_token = stack.new_user()
    missing = preview["url"].replace(host.split(".", 1)[0], pushed["owner"] + "-no-such-space")
    for headers in ({"Authorization": f"Bearer {stranger_token}"}, {"Accept": "application/json"}):
        got, gone = stack.get_app(preview["url"], headers=headers), stack.get_app(missing, headers=headers)
        assert got.status_code in (401, 404) and (got.status_code, got.text) == (gone.status_code, gone.text), headers
    # A browser without a login is sent to log in, exactly as for a missing host.
    anon = stack.get_app(preview["url"], headers={"Accept": "text/html"}, allow_redirects=False)
    assert anon.status_code == 302 and "/go/" in anon.headers["Location"]
    # The owner's API lists it; a stranger's does not (a public space: 403).
    assert stack.api(stranger_token).get(
        f"{stack.hub_url}/api/spaces/{pushed['owner']}/previewed/previews").status_code == 403


def test_deleting_the_branch_removes_the_preview(stack, pushed):
    preview, token = pushed["preview"], pushed["token"]
    label = preview["url"].split("//", 1)[1].split(".", 1)[0]
    name = f"dh-{stack.instance}-{label}"
    engine = docker.from_env()
    assert engine.containers.get(name).status == "running"
    run_git(pushed["repo"], "push", "-q", pushed["remote"], ":feature")
    wait_previews(stack, token, f"{pushed['owner']}/previewed", lambda p: not p, timeout=60)
    deadline = time.monotonic() + 30
    while True:
        r = stack.get_app(preview["url"], headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 404:
            break
        assert time.monotonic() < deadline, (r.status_code, r.text[:300])
        time.sleep(0.3)
    assert r.json()["code"] == "not_found"   # the owner too: the host is gone
    # The row goes first (so nothing of the preview starts again), then its container (stopped
    # with a grace of 2 s), image and route.
    deadline = time.monotonic() + 30
    while True:
        try:
            engine.containers.get(name)
        except docker.errors.NotFound:
            break
        assert time.monotonic() < deadline, f"container {name} is still there"
        time.sleep(0.3)
    assert not engine.images.list(name=f"demohub-{stack.instance}/{label}")
    assert stack.get_app(pushed["space"]["url"]).text.startswith("main on ")
    assert requests.get(f"{stack.hub_url}/api/spaces/{pushed['owner']}/previewed", timeout=10).json()["status"] == \
        "RUNNING"
