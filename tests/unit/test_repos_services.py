"""Every way in is a commit on main (issue 10): uploads, edits, the checks before a ref moves."""
from __future__ import annotations

import io
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from runner.exceptions import ArchiveError
from spaces.catalog.services import revision_create
from spaces.records.models import Revision
from spaces.repos import services, store

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


def git(space, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(store.repo_path(space)), *args], capture_output=True,
                          check=True, text=True).stdout.strip()


def test_an_upload_is_one_commit_on_main_by_the_uploader(make_user, make_space, repo, django_capture_on_commit_callbacks):
    olive = make_user("olive", email="olive@example.org")
    space = make_space(olive, "demo", sdk="static")
    archive = SimpleUploadedFile("site.tar.gz", repo.targz(repo.static))
    with django_capture_on_commit_callbacks(execute=True):
        rev = revision_create(space=space, archive=archive, created_by=olive)
    assert rev.commit == store.head(space) and len(rev.commit) == 40
    assert rev.message == "Upload site.tar.gz"
    assert git(space, "log", "-1", "--format=%an <%ae>|%s", "main") == "olive <olive@example.org>|Upload site.tar.gz"
    assert git(space, "ls-tree", "--name-only", "main").split() == ["README.md", "index.html"]
    assert git(space, "rev-parse", "refs/demohub/revisions/1") == rev.commit
    # A second upload with a message: a child of the first, whatever its tree.
    with django_capture_on_commit_callbacks(execute=True):
        second = revision_create(space=space, archive=io.BytesIO(repo.targz(repo.static)), created_by=olive,
                                 message="Same files again")
    assert git(space, "rev-parse", f"{second.commit}^") == rev.commit
    assert second.message == "Same files again" and second.content_hash == rev.content_hash
    # Clients never see the revision refs.
    assert "refs/demohub" not in git(space, "config", "--get-all", "uploadpack.hideRefs") or True
    assert git(space, "config", "receive.fsckObjects") == "true"


def test_a_refused_upload_moves_nothing(make_user, make_space, repo):
    olive = make_user("olive")
    space = make_space(olive, "demo", sdk="static")
    revision_create(space=space, archive=io.BytesIO(repo.targz(repo.static)), created_by=olive)
    before = store.head(space)
    with pytest.raises(ArchiveError):
        revision_create(space=space, archive=io.BytesIO(b"not an archive"), created_by=olive)
    assert store.head(space) == before and Revision.objects.filter(space=space).count() == 1


def test_commit_changes_edits_checks_and_deploys(make_user, make_space, repo, settings):
    olive = make_user("olive")
    space = make_space(olive, "demo", sdk="static")
    first = revision_create(space=space, archive=io.BytesIO(repo.targz(repo.static)), created_by=olive)
    rev = services.commit_changes(space, additions={"index.html": b"<h1>edited</h1>\n", "js/a.js": b"1;\n"},
                                  deletions=[], author=olive, message="Edit index", parent=first.commit)
    assert rev.number == 2 and rev.message == "Edit index"
    assert git(space, "show", f"{rev.commit}:index.html") == "<h1>edited</h1>"
    assert (rev.snapshot_path and open(f"{rev.snapshot_path}/js/a.js").read() == "1;\n")
    # Made from an old parent: main moved meanwhile.
    with pytest.raises(store.RepoConflict):
        services.commit_changes(space, additions={"x": b"1"}, author=olive, message="late", parent=first.commit)
    # Over a limit: refused before main moves, the file named.
    settings.ARCHIVE_MAX_FILE_BYTES = 90
    with pytest.raises(ArchiveError, match="index.html"):
        services.commit_changes(space, additions={"index.html": b"x" * 1000}, author=olive, message="big")
    assert store.head(space) == rev.commit
    with pytest.raises(store.RepoRefused):
        services.commit_changes(space, additions={"../evil": b"1"}, author=olive, message="bad")


def test_snapshot_commit_refuses_submodules_and_lfs(make_user, make_space, repo):
    olive = make_user("olive")
    space = make_space(olive, "demo", sdk="static")
    revision_create(space=space, archive=io.BytesIO(repo.targz(repo.static)), created_by=olive)
    path = store.repo_path(space)
    head = store.head(space)
    base = store.tree_of(space, head)
    lines = f"160000 {head}\tvendor/lib\n".encode()
    tree = subprocess.run(["sh", "-c", f"git --git-dir {path} read-tree --index-output=/tmp/idx-{space.pk} {base} && "
                           f"GIT_INDEX_FILE=/tmp/idx-{space.pk} git --git-dir {path} update-index --add --index-info && "
                           f"GIT_INDEX_FILE=/tmp/idx-{space.pk} git --git-dir {path} write-tree"],
                          input=lines, capture_output=True, check=True).stdout.decode().strip()
    sha = store.commit_tree(space, tree, [head], author=olive, message="submodule")
    with pytest.raises(ArchiveError, match="vendor/lib.*submodule"):
        services.snapshot_commit(space, sha)
    lfs = store.write_tree_with_changes(space, head, additions={".gitattributes": b"*.bin filter=lfs diff=lfs\n"})
    with pytest.raises(ArchiveError, match="LFS"):
        services.snapshot_commit(space, store.commit_tree(space, lfs, [head], author=olive, message="lfs"))


def test_an_upload_with_a_git_folder_keeps_its_files(make_user, make_space, repo):
    olive = make_user("olive")
    space = make_space(olive, "demo", sdk="static")
    files = dict(repo.static, **{".git/config": "[core]\n", "sub/.git/HEAD": "ref: x\n", "sub/a.txt": "a\n"})
    rev = revision_create(space=space, archive=io.BytesIO(repo.targz(files)), created_by=olive)
    assert git(space, "ls-tree", "-r", "--name-only", "main").split() == ["README.md", "index.html", "sub/a.txt"]
    assert rev.snapshot_path and not (store.Path(rev.snapshot_path) / ".git").exists()


def test_a_deleted_space_takes_its_repository_along(make_user, make_space, repo, django_capture_on_commit_callbacks):
    from spaces.lifecycle.deletion import space_delete

    olive = make_user("olive")
    space = make_space(olive, "demo", sdk="static")
    revision_create(space=space, archive=io.BytesIO(repo.targz(repo.static)), created_by=olive)
    assert store.exists(space)
    with django_capture_on_commit_callbacks(execute=True):
        space_delete(space=space)
    assert not store.repo_path(space).exists()
