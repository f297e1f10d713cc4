"""Git over smart HTTP with the real `git` client against a live hub (issue 10): clone, push,
the checks of the receive hooks, and who may do what (design.md §6)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from spaces.records.models import Revision, Space
from spaces.repos import store
from tests.git_client import run_git

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hub")]

README = "---\ntitle: Site\nsdk: static\n---\n# hi\n"


def url(live_server, owner: str, name: str, user: str = "", token: str = "", suffix: str = "") -> str:
    base = live_server.url.replace("http://", "")
    cred = f"{user}:{token}@" if user else ""
    return f"http://{cred}{base}/spaces/{owner}/{name}{suffix}"


@pytest.fixture
def work(tmp_path):
    def make(name="w") -> Path:
        d = tmp_path / name
        d.mkdir()
        return d
    return make


def commit_files(d: Path, files: dict[str, str | bytes], message: str = "change") -> None:
    for name, content in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    run_git(d, "add", "-A")
    run_git(d, "commit", "-q", "-m", message)


def test_push_deploys_and_clone_reads(live_server, make_user, make_space, make_token, work):
    olive = make_user("olive")
    space = make_space(olive, "site", sdk="static")
    token = make_token(olive)
    d = work()
    run_git(d, "init", "-q", "-b", "main")
    commit_files(d, {"README.md": README, "index.html": "<h1>one</h1>\n"}, "First")
    push = run_git(d, "push", url(live_server, "olive", "site", "olive", token), "main")
    assert "revision 1 of olive/site" in push.stderr, push.stderr
    assert "Watch the build" in push.stderr
    rev = Revision.objects.get(space=space, number=1)
    assert rev.commit == run_git(d, "rev-parse", "HEAD").stdout.strip()
    assert rev.message == "First" and rev.status == Revision.Status.SUCCEEDED
    assert (Path(rev.snapshot_path) / "index.html").read_text() == "<h1>one</h1>\n"
    # Anyone may clone a public space, with or without .git.
    clone = work("clone")
    run_git(clone, "clone", "-q", url(live_server, "olive", "site", suffix=".git"), "c")
    assert (clone / "c" / "index.html").read_text() == "<h1>one</h1>\n"
    # Clients never see the revision refs.
    refs = run_git(clone, "ls-remote", url(live_server, "olive", "site")).stdout
    assert "refs/heads/main" in refs and "refs/demohub" not in refs


def test_refused_pushes_change_nothing(live_server, make_user, make_space, make_token, work, settings):
    olive = make_user("olive")
    space = make_space(olive, "site", sdk="static")
    token = make_token(olive)
    remote = url(live_server, "olive", "site", "olive", token)
    d = work()
    run_git(d, "init", "-q", "-b", "main")
    commit_files(d, {"README.md": README, "index.html": "one\n"}, "First")
    run_git(d, "push", "-q", remote, "main")
    head = store.head(space)
    settings.ARCHIVE_MAX_FILE_BYTES = 1000
    # A big file in an intermediate commit, removed again at the tip: still refused.
    commit_files(d, {"big.bin": b"x" * 5000}, "big")
    run_git(d, "rm", "-q", "big.bin")
    run_git(d, "commit", "-q", "-m", "remove big")
    out = run_git(d, "push", remote, "main", check=False)
    assert out.returncode != 0 and "big.bin" in out.stderr and "limit" in out.stderr and "LFS" in out.stderr, out.stderr
    assert store.head(space) == head
    run_git(d, "reset", "-q", "--hard", "HEAD~2")
    # A link leaving the repo.
    os.symlink("../../etc/passwd", d / "leak")
    run_git(d, "add", "leak")
    run_git(d, "commit", "-q", "-m", "link")
    out = run_git(d, "push", remote, "main", check=False)
    assert out.returncode != 0 and "leak" in out.stderr, out.stderr
    run_git(d, "reset", "-q", "--hard", "HEAD~1")
    # Invalid front matter at the tip.
    commit_files(d, {"README.md": "---\nsdk: [oops\n---\n"}, "bad readme")
    out = run_git(d, "push", remote, "main", check=False)
    assert out.returncode != 0 and "README.md" in out.stderr, out.stderr
    run_git(d, "reset", "-q", "--hard", "HEAD~1")
    # A submodule (gitlink).
    run_git(d, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor")
    run_git(d, "commit", "-q", "-m", "submodule")
    out = run_git(d, "push", remote, "main", check=False)
    assert out.returncode != 0 and "submodule" in out.stderr, out.stderr
    run_git(d, "reset", "-q", "--hard", "HEAD~1")
    # Not a fast-forward: refused until the owner allows force pushes, then recorded.
    commit_files(d, {"index.html": "two\n"}, "amend me")
    run_git(d, "push", "-q", remote, "main")
    run_git(d, "commit", "-q", "--amend", "-m", "amended")
    out = run_git(d, "push", "--force", remote, "main", check=False)
    assert out.returncode != 0 and "fast-forward" in out.stderr, out.stderr
    assert Revision.objects.filter(space=space).count() == 2
    Space.objects.filter(pk=space.pk).update(allow_force_push=True)
    run_git(d, "push", "-q", "--force", remote, "main")
    rev = Revision.objects.get(space=space, number=3)
    assert rev.metadata["push"]["forced"] and rev.metadata["push"]["by"] == "olive"
    assert rev.commit == store.head(space)


def test_who_may_clone_and_push(live_server, make_user, make_space, make_token, work):
    olive, stan, vera = make_user("olive"), make_user("stan"), make_user("vera")
    make_space(olive, "secret", sdk="static", visibility="private", viewers=[vera])
    public = make_space(olive, "open", sdk="static")
    d = work()
    anonymous = run_git(d, "ls-remote", url(live_server, "olive", "secret"), check=False)
    assert anonymous.returncode != 0 and "401" in anonymous.stderr or "terminal prompts" in anonymous.stderr
    stranger = run_git(d, "ls-remote", url(live_server, "olive", "secret", "stan", make_token(stan)), check=False)
    assert stranger.returncode != 0 and "not found" in stranger.stderr.lower(), stranger.stderr
    run_git(d, "ls-remote", url(live_server, "olive", "secret", "vera", make_token(vera, "read")))
    wrong_name = run_git(d, "ls-remote", url(live_server, "olive", "secret", "olive", make_token(vera)), check=False)
    assert wrong_name.returncode != 0
    # Pushes: a read token, a viewer and anonymous are refused.
    run_git(d, "init", "-q", "-b", "main")
    commit_files(d, {"README.md": README, "index.html": "x\n"})
    for remote in (url(live_server, "olive", "open", "olive", make_token(olive, "read")),
                   url(live_server, "olive", "secret", "vera", make_token(vera)),
                   url(live_server, "olive", "open")):
        out = run_git(d, "push", remote, "main", check=False)
        assert out.returncode != 0, remote
    assert store.head(public) is None


@pytest.mark.parametrize("method, suffix", [("get", "info/refs?service=git-upload-pack"),
                                            ("get", "info/refs?service=git-receive-pack"),
                                            ("post", "git-upload-pack"), ("post", "git-receive-pack")])
def test_a_database_that_does_not_answer_is_a_503_with_retry_after(make_user, make_space, make_token, monkeypatch,
                                                                   method, suffix):
    import base64

    from django.db import OperationalError, connection
    from django.test import Client

    olive = make_user("olive")
    make_space(olive, "site")
    auth = "Basic " + base64.b64encode(f"olive:{make_token(olive)}".encode()).decode()

    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    client = Client(HTTP_AUTHORIZATION=auth)
    path = f"/spaces/olive/site/{suffix}"
    resp = client.get(path) if method == "get" else client.post(path, b"0000", content_type="application/x-git")
    assert resp.status_code == 503, resp.content
    assert resp["Retry-After"] == "5"


def test_the_hook_socket_answers_only_its_own_push():
    import sys

    from spaces.repos.git_http import HOOKS_DIR, HookServer

    server = HookServer(space_id=1, pusher_id=1)
    try:
        env = {**server.env(), "DEMOHUB_HOOK_KEY": "not-the-key", "PATH": os.environ["PATH"]}
        proc = subprocess.run([sys.executable, "-I", "-S", str(HOOKS_DIR / "client.py"), "pre-receive"],
                              input=f"{'0' * 40} {'1' * 40} refs/heads/main\n", capture_output=True, text=True,
                              env=env, timeout=30)
        assert proc.returncode == 1 and "nothing was changed" in proc.stderr, proc.stderr
        assert oct(os.stat(server.dir).st_mode & 0o777) == "0o700"
    finally:
        server.close()
    assert not os.path.exists(server.dir)


def test_a_push_while_the_job_queue_is_down_changes_nothing_or_says_when_its_build_starts(
        live_server, make_user, make_space, make_token, work, monkeypatch):
    from kombu.exceptions import OperationalError

    from spaces.lifecycle import readiness
    from spaces.records import jobs

    olive = make_user("olive")
    space = make_space(olive, "site", sdk="static")
    remote = url(live_server, "olive", "site", "olive", make_token(olive))
    d = work()
    run_git(d, "init", "-q", "-b", "main")
    commit_files(d, {"README.md": README, "index.html": "one\n"}, "First")
    run_git(d, "push", "-q", remote, "main")
    head = store.head(space)
    commit_files(d, {"index.html": "two\n"}, "Second")
    # Down when the push arrives: refused before any ref moves, with when to try again.
    monkeypatch.setattr(readiness, "queue_answers", lambda: False)
    out = run_git(d, "push", remote, "main", check=False)
    assert out.returncode != 0 and "job queue (Redis) does not answer right now; push again" in out.stderr, out.stderr
    assert store.head(space) == head and Space.objects.get(pk=space.pk).latest_revision.number == 1
    # Gone between the check and the revision: the revision is recorded, and the pusher told
    # that its work starts once the queue is back (the hub resends queued work by itself).
    monkeypatch.setattr(readiness, "queue_answers", lambda: True)

    def broker_down(task, *args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(jobs, "send", broker_down)
    out = run_git(d, "push", remote, "main")
    assert "revision 2 of olive/site is commit" in out.stderr and "its build starts once it does" in out.stderr, \
        out.stderr
    assert "no revision was made" not in out.stderr
    assert Revision.objects.get(space=space, number=2).commit == store.head(space) != head
