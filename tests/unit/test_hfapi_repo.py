"""The real Hugging Face clients commit to and read a space's repository through /hf (issue 11).

Every upload (upload_folder, upload_file, create_commit, `hf upload`) is one commit on main and
one revision built like any upload; a refused file changes nothing; a retried commit answers the
commit it already made. Reads (space_info, list_repo_files/tree/commits, get_paths_info,
hf_hub_download, file_exists, `hf download`) answer as on Hugging Face, within the one access
check. Live server, fake runner backend; tests/hf_clients.py runs the clients.
"""
from __future__ import annotations

import pytest

from spaces.records.models import Space
from spaces.repos import store
from tests.hf_clients import run_cli, run_hf

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hub")]

STATIC = {"README.md": "---\ntitle: Shouter\nsdk: static\n---\n# Shouter\n", "index.html": "<h1>one</h1>\n",
          "assets/style.css": "h1 { color: red }\n"}


@pytest.fixture
def hf(live_server, tmp_path):
    def run(code: str, token: str | None = None, version: str = "2.4.0", folder: dict | None = None) -> dict:
        cwd = tmp_path / "work"
        cwd.mkdir(exist_ok=True)
        for path, text in (folder or {}).items():
            target = cwd / "app" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text if isinstance(text, bytes) else text.encode())
        return run_hf(version, code, endpoint=f"{live_server.url}/hf", hf_home=tmp_path / "hf-home", token=token,
                      cwd=cwd)

    return run


def revisions(space: Space) -> list[tuple[int, str]]:
    return list(space.revisions.order_by("number").values_list("number", "commit"))


def test_upload_folder_file_and_commits_then_read_everything_back(hf, people, make_space, make_token):
    space = make_space(people["owner"], "shouter", visibility="private")
    got = hf('''
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete
        sid = "olive/shouter"
        first = api.upload_folder(folder_path="app", repo_id=sid, repo_type="space", commit_message="First")
        RESULT["first"] = [first.oid, first.commit_url]
        info = api.space_info(sid)
        RESULT["info"] = [info.sha, sorted(s.rfilename for s in info.siblings), info.runtime.stage]
        RESULT["files"] = api.list_repo_files(sid, repo_type="space")
        RESULT["tree"] = sorted((e.path, type(e).__name__) for e in api.list_repo_tree(sid, repo_type="space"))
        RESULT["deep"] = [e.path for e in api.list_repo_tree(sid, repo_type="space", path_in_repo="assets")]
        RESULT["paths"] = sorted(e.path for e in api.get_paths_info(sid, ["index.html", "assets", "nope"],
                                                                    repo_type="space"))
        second = api.upload_file(path_or_fileobj=b"<h1>two</h1>\\n", path_in_repo="index.html", repo_id=sid,
                                 repo_type="space", commit_message="Second")
        ops = lambda: [CommitOperationDelete("assets/style.css"), CommitOperationAdd("notes.txt", b"hello")]
        third = api.create_commit(sid, ops(), commit_message="Third", repo_type="space", parent_commit=second.oid)
        # The client retries a commit POST: the same change from the same parent is the same commit.
        again = api.create_commit(sid, ops(), commit_message="Third", repo_type="space", parent_commit=second.oid)
        RESULT["commits"] = [second.oid, third.oid, again.oid]
        RESULT["stale"] = outcome(lambda: api.create_commit(sid, [CommitOperationAdd("late.txt", b"late")],
                                                            commit_message="Late", repo_type="space",
                                                            parent_commit=first.oid))
        RESULT["log"] = [(c.commit_id, c.title) for c in api.list_repo_commits(sid, repo_type="space")]
        path = hh.hf_hub_download(sid, "index.html", repo_type="space")
        RESULT["download"] = open(path).read()
        RESULT["old"] = open(hh.hf_hub_download(sid, "index.html", repo_type="space", revision=first.oid)).read()
        RESULT["exists"] = [api.file_exists(sid, "notes.txt", repo_type="space"),
                            api.file_exists(sid, "assets/style.css", repo_type="space")]
        RESULT["missing"] = outcome(lambda: hh.hf_hub_download(sid, "nope.txt", repo_type="space"))
        RESULT["no_rev"] = outcome(lambda: api.list_repo_files(sid, repo_type="space", revision="nobranch"))
        RESULT["pr"] = outcome(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=sid,
                                                       repo_type="space", create_pr=True))
        RESULT["logs"] = "".join(api.fetch_space_logs(sid, build=True))
        RESULT["restart"] = api.restart_space(sid).stage
    ''', token=make_token(people["owner"]), folder=STATIC)
    first, url = got["first"]
    assert url.endswith(f"/hf/spaces/olive/shouter/commit/{first}")
    assert got["info"] == [first, sorted(STATIC), "RUNNING"]
    assert sorted(got["files"]) == sorted(STATIC)
    assert got["tree"] == [["README.md", "RepoFile"], ["assets", "RepoFolder"], ["index.html", "RepoFile"]]
    assert got["deep"] == ["assets/style.css"]
    assert got["paths"] == ["assets", "index.html"]
    second, third, again = got["commits"]
    assert again == third
    assert got["stale"][1] == 409 and "changed meanwhile" in got["stale"][2], got["stale"]
    assert [c for c, _ in got["log"]] == [third, second, first]
    assert [t for _, t in got["log"]] == ["Third", "Second", "First"]
    assert got["download"] == "<h1>two</h1>\n" and got["old"] == "<h1>one</h1>\n"
    assert got["exists"] == [True, False]
    assert got["missing"][0] == "RemoteEntryNotFoundError"
    assert got["no_rev"][0] == "RevisionNotFoundError"
    assert got["pr"][1] == 400 and "create_pr" in got["pr"][2]
    assert "==> commit" in got["logs"]
    assert got["restart"] in ("APP_STARTING", "RUNNING")
    # Three commits, three revisions (the retry made none), each recording its commit.
    assert revisions(space) == [(1, first), (2, second), (3, third)]
    assert store.head(space) == third


def test_a_refused_file_gets_the_hubs_reason_and_changes_nothing(hf, people, make_space, make_token, settings):
    space = make_space(people["owner"], "shouter")
    got = hf('''
        sid = "olive/shouter"
        RESULT["first"] = api.upload_folder(folder_path="app", repo_id=sid, repo_type="space").oid
        big = b"---\\nsdk: static\\n---\\n" + b"x" * (2 * 1024 * 1024)
        RESULT["refused"] = outcome(lambda: api.upload_file(path_or_fileobj=big, path_in_repo="README.md",
                                                            repo_id=sid, repo_type="space"))
        RESULT["files"] = sorted(api.list_repo_files(sid, repo_type="space"))
        RESULT["sha"] = api.space_info(sid).sha
    ''', token=make_token(people["owner"]), folder=STATIC)
    name, status, message = got["refused"]
    assert name == "HfHubHTTPError" and status == 413, got["refused"]
    assert "README" in message, message                      # Demohub's own sentence
    assert got["sha"] == got["first"] == store.head(space)
    assert revisions(space) == [(1, got["first"])]
    assert got["files"] == sorted(STATIC)


FILE_CALLS = '''
    for vis in ("public", "private"):
        sid = f"olive/{vis}-demo"
        RESULT[vis] = {
            "files": outcome(lambda: sorted(api.list_repo_files(sid, repo_type="space"))),
            "download": outcome(lambda: open(hh.hf_hub_download(sid, "index.html", repo_type="space")).read()),
            "paths": outcome(lambda: [p.path for p in api.get_paths_info(sid, ["index.html"], repo_type="space")]),
            "upload": outcome(lambda: api.upload_file(path_or_fileobj=b"hi", path_in_repo="hi.txt", repo_id=sid,
                                                      repo_type="space").oid),
        }
'''
NF = "RepositoryNotFoundError"
FILE_EXPECTED = {
    "owner": {"public": dict(files="ok", download="ok", paths="ok", upload="ok"),
              "private": dict(files="ok", download="ok", paths="ok", upload="ok")},
    "editor": {"public": dict(files="ok", download="ok", paths="ok", upload="ok"),
               "private": dict(files="ok", download="ok", paths="ok", upload="ok")},
    "viewer": {"public": dict(files="ok", download="ok", paths="ok", upload=403),
               "private": dict(files="ok", download="ok", paths="ok", upload=403)},
    "stranger": {"public": dict(files="ok", download="ok", paths="ok", upload=403),
                 "private": dict(files=NF, download=NF, paths=NF, upload=NF)},
    "anonymous": {"public": dict(files="ok", download="ok", paths="ok", upload=401),
                  "private": dict(files=NF, download=NF, paths=NF, upload=NF)},
    "read-token": {"public": dict(files="ok", download="ok", paths="ok", upload=403),
                   "private": dict(files="ok", download="ok", paths="ok", upload=403)},
}


@pytest.mark.parametrize("who", list(FILE_EXPECTED))
def test_files_follow_the_one_access_check(hf, people, make_space, make_token, upload, api, who):
    for vis in ("public", "private"):
        space = make_space(people["owner"], f"{vis}-demo", visibility=vis, editors=[people["editor"]],
                           viewers=[people["viewer"]])
        assert upload(api(people["owner"]), space, STATIC).status_code == 202
    if who == "read-token":
        token = make_token(people["owner"], scope="read")
    else:
        token = make_token(people[who]) if people[who] is not None else None
    got = hf(FILE_CALLS, token=token)
    for vis, calls in FILE_EXPECTED[who].items():
        for call, want in calls.items():
            seen = got[vis][call]
            if want == "ok":
                assert seen[0] == "ok", (who, vis, call, seen)
            elif want == NF:
                assert seen[0] == NF, (who, vis, call, seen)
            else:
                assert seen[1] == want, (who, vis, call, seen)
    if who in ("viewer", "stranger", "anonymous", "read-token"):
        assert all(len(revisions(s)) == 1 for s in Space.objects.all())


def test_huggingface_hub_1_uploads_downloads_and_duplicates(hf, people, make_space, make_token):
    make_space(people["owner"], "shouter")
    got = hf('''
        sid = "olive/shouter"
        RESULT["oid"] = api.upload_folder(folder_path="app", repo_id=sid, repo_type="space").oid
        RESULT["download"] = open(hh.hf_hub_download(sid, "index.html", repo_type="space")).read()
        RESULT["files"] = sorted(api.list_repo_files(sid, repo_type="space"))
        copy = outcome(lambda: str(api.duplicate_space(sid, to_id="olive/shouter-copy", private=True)))
        RESULT["copy"] = copy
        RESULT["copy_files"] = outcome(lambda: sorted(api.list_repo_files("olive/shouter-copy", repo_type="space")))
    ''', token=make_token(people["owner"]), version="1.33.0", folder=STATIC)
    assert got["download"] == "<h1>one</h1>\n" and got["files"] == sorted(STATIC)
    assert got["copy"][0] == "ok" and got["copy"][1].endswith("/hf/spaces/olive/shouter-copy"), got["copy"]
    assert got["copy_files"] == ["ok", sorted(STATIC)]
    assert Space.objects.get(owner__username="olive", name="shouter-copy").is_private


def test_the_hf_command_line_uploads_and_downloads(live_server, tmp_path, people, make_space, make_token):
    space = make_space(people["owner"], "shouter")
    folder = tmp_path / "app"
    for path, text in STATIC.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    common = dict(endpoint=f"{live_server.url}/hf", hf_home=tmp_path / "hf-home", token=make_token(people["owner"]))
    up = run_cli(["upload", "olive/shouter", str(folder), ".", "--repo-type", "space"], **common)
    assert up.returncode == 0, (up.stdout, up.stderr)
    assert len(revisions(space)) == 1
    down = run_cli(["download", "olive/shouter", "index.html", "--repo-type", "space", "--local-dir",
                    str(tmp_path / "out")], **common)
    assert down.returncode == 0, (down.stdout, down.stderr)
    assert (tmp_path / "out" / "index.html").read_text() == "<h1>one</h1>\n"
