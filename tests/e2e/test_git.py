"""Issue 10 on the real stack with the real `git` client: push to deploy, clone, and every
refusal of a push (path, link, size, count, submodule, front matter, non-fast-forward) leaving
the running revision serving; who may clone and push a private repository; a read token cannot
push. Static spaces: the proxy serves their files, so no image is built (fast)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from tests.git_client import run_git

pytestmark = pytest.mark.e2e

README = "---\ntitle: Pushed\nsdk: static\n---\n# pushed\n"


def remote(stack, owner: str, name: str, user: str = "", token: str = "") -> str:
    host = stack.hub_url.split("://", 1)[1]
    return f"http://{user}:{token}@{host}/spaces/{owner}/{name}" if user else f"http://{host}/spaces/{owner}/{name}"


def commit(d: Path, files: dict, message: str) -> None:
    for name, content in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    run_git(d, "add", "-A")
    run_git(d, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def small_limits(stack):
    """Limits an operator might set, small enough to test without pushing megabytes."""
    stack.restart_web({"ARCHIVE_MAX_FILE_BYTES": "50000", "ARCHIVE_MAX_FILES": "20"})
    try:
        yield
    finally:
        stack.restart_web()


def serves(stack, token, owner, name, text: str, revision: int, timeout: float = 60) -> None:
    stack.wait_status(token, owner, name, "RUNNING", revision=revision, timeout=timeout)
    url = stack.space(token, owner, name)["url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = stack.get_app(url, "/", headers={"Authorization": f"Bearer {token}"}).text
        if text in body:
            return
        time.sleep(0.3)
    raise AssertionError(f"{url} never served {text!r}; last: {body[:200]!r}")


def test_push_deploys_and_refused_pushes_change_nothing(stack, small_limits, tmp_path):
    owner, token = stack.new_user()
    stack.create_space(token, "site", "static")
    url = remote(stack, owner, "site", owner, token)
    d = tmp_path / "work"
    # Clone the empty repository, commit, push: the space serves the pushed files.
    run_git(tmp_path, "clone", "-q", url, "work")
    commit(d, {"README.md": README, "index.html": "<h1>version one</h1>\n"}, "First version")
    out = run_git(d, "push", "origin", "HEAD:main")
    assert "revision 1 of" in out.stderr and "Watch the build" in out.stderr, out.stderr
    serves(stack, token, owner, "site", "version one", 1)
    rev = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/site/revisions/1").json()
    assert rev["commit"] == run_git(d, "rev-parse", "HEAD").stdout.strip() and rev["message"] == "First version"
    commit(d, {"index.html": "<h1>version two</h1>\n"}, "Second")
    run_git(d, "push", "-q", "origin", "HEAD:main")
    serves(stack, token, owner, "site", "version two", 2)
    good = run_git(d, "rev-parse", "HEAD").stdout.strip()

    def refused(files: dict | None, why: str, *, setup=None) -> None:
        if setup:
            setup()
        if files:
            commit(d, files, "bad change")
        elif setup:
            run_git(d, "commit", "-q", "-m", "bad change")
        out = run_git(d, "push", "origin", "HEAD:main", check=False)
        assert out.returncode != 0 and why in out.stderr and "Nothing was changed" in out.stderr, out.stderr
        run_git(d, "reset", "-q", "--hard", good)
        serves(stack, token, owner, "site", "version two", 2, timeout=5)

    refused({"bad\x01name.txt": "x"}, "is not safe")                          # a path an upload refuses
    refused(None, "leak", setup=lambda: (os.symlink("../../etc/passwd", d / "leak"), run_git(d, "add", "leak")))
    refused({"big.bin": os.urandom(60_000)}, "big.bin")                        # over the file size limit
    refused({f"many/{i}.txt": str(i) for i in range(25)}, "20")                # over the file count
    refused(None, "submodule", setup=lambda: run_git(d, "update-index", "--add", "--cacheinfo", f"160000,{good},vendor"))
    refused({"README.md": "---\nsdk: [broken\n---\n"}, "README.md")           # invalid front matter
    # Not a fast-forward: the remote's last commit would be lost.
    run_git(d, "reset", "-q", "--hard", "HEAD~1")
    commit(d, {"index.html": "<h1>rewritten</h1>\n"}, "rewrite")
    out = run_git(d, "push", "--force", "origin", "HEAD:main", check=False)
    assert out.returncode != 0 and "fast-forward" in out.stderr, out.stderr
    serves(stack, token, owner, "site", "version two", 2, timeout=5)
    assert len(stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/site/revisions").json()["results"]) == 2


def test_private_repositories_and_read_tokens(stack, tmp_path):
    owner, token = stack.new_user()
    stranger, stranger_token = stack.new_user()
    stack.create_space(token, "vault", "static", visibility="private")
    d = tmp_path / "w"
    d.mkdir()
    run_git(d, "init", "-q", "-b", "main")
    commit(d, {"README.md": README, "index.html": "<h1>secret</h1>\n"}, "Secret")
    run_git(d, "push", "-q", remote(stack, owner, "vault", owner, token), "main")
    # The owner clones; anonymous and a stranger get the answer for a missing repository.
    run_git(tmp_path, "clone", "-q", remote(stack, owner, "vault", owner, token), "mine")
    anonymous = run_git(tmp_path, "clone", "-q", remote(stack, owner, "vault"), "anon", check=False)
    missing = run_git(tmp_path, "clone", "-q", remote(stack, owner, "no-such-space"), "none", check=False)
    assert anonymous.returncode != 0 and anonymous.stderr.replace("vault", "X") == missing.stderr.replace(
        "no-such-space", "X").replace("none", "anon")
    r = requests.get(f"{stack.hub_url}/spaces/{owner}/vault/info/refs", params={"service": "git-upload-pack"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    strange = run_git(tmp_path, "clone", "-q", remote(stack, owner, "vault", stranger, stranger_token), "s", check=False)
    assert strange.returncode != 0 and "not found" in strange.stderr.lower(), strange.stderr
    # Pushes: anonymous, a stranger, and the owner's read token are refused; nothing moves.
    commit(d, {"index.html": "<h1>changed</h1>\n"}, "Change")
    read = requests.post(f"{stack.hub_url}/api/token", json={"username": owner, "password": "correct-horse-9",
                                                            "scope": "read"}).json()["token"]
    for url in (remote(stack, owner, "vault"), remote(stack, owner, "vault", stranger, stranger_token),
                remote(stack, owner, "vault", owner, read)):
        assert run_git(d, "push", url, "main", check=False).returncode != 0, url
    revisions = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/vault/revisions").json()
    assert revisions["count"] == 1
