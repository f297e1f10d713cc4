"""spaces/repos/reading.py over a bare repository made with the git CLI: trees, files, history
and diffs, and every malformed revision or path answered as missing (never read, never run)."""
from __future__ import annotations

import pytest

from spaces.repos import reading

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

def test_tree_lists_directories_first_then_files(repo_space):
    root = reading.tree(repo_space, "main")
    assert [(e.name, e.type) for e in root] == [("src", "directory"), ("index.html", "file"),
                                                  ("logo.png", "file"), ("README.md", "file")]
    assert next(e for e in root if e.name == "index.html").size == len("<h1>two</h1>\n")
    assert [e.path for e in reading.tree(repo_space, "main", "src")] == ["src/app.py"]
    # The first commit still has src/lib.
    assert [e.path for e in reading.tree(repo_space, repo_space.commits[0], "src/")] == ["src/lib", "src/app.py"]


def test_tree_recursive_has_every_directory_and_file(repo_space):
    paths = [(e.path, e.type) for e in reading.tree_recursive(repo_space, repo_space.commits[0][:10])]
    assert ("src/lib", "directory") in paths and ("src/lib/util.py", "file") in paths
    assert len(paths) == 7


def test_blob_reads_a_file_at_any_revision(repo_space):
    assert reading.blob(repo_space, "main", "index.html") == b"<h1>two</h1>\n"
    assert reading.blob(repo_space, repo_space.commits[0], "/index.html") == b"<h1>one</h1>\n"
    assert reading.blob(repo_space, "refs/pr/1", "src/lib/util.py") == b"X = 1\n"
    assert reading.blob(repo_space, "main", "index.html", max_bytes=4) == b"<h1>"
    assert reading.blob_size(repo_space, "main", "index.html") == 13
    assert reading.is_binary(reading.blob(repo_space, "main", "logo.png"))
    assert not reading.is_binary(reading.blob(repo_space, "main", "README.md"))


@pytest.mark.parametrize("path", ["../secret", "src/../index.html", "./index.html", "nope.txt", "src/lib/util.py",
                                  "index.html/x", "a\x00b", "src\\app.py", "*", "src/*.py", ":(glob)**"])
def test_bad_or_missing_paths_are_missing(repo_space, path):
    with pytest.raises(reading.FileMissing):
        reading.blob(repo_space, "main", path)


@pytest.mark.parametrize("rev", ["nope", "--output=/tmp/x", "-h", "main..HEAD", "main^", "main~1", "HEAD@{1}",
                                 "main:index.html", "a" * 300, "refs/heads/", "ma in", "deadbeef"])
def test_bad_or_missing_revisions_are_missing(repo_space, rev):
    with pytest.raises(reading.RevisionMissing):
        reading.tree(repo_space, rev)


def test_directory_is_not_a_blob_and_file_is_not_a_tree(repo_space):
    with pytest.raises(reading.FileMissing):
        reading.blob(repo_space, "main", "src")
    with pytest.raises(reading.FileMissing):
        reading.tree(repo_space, "main", "index.html")


def test_a_space_without_a_repository_has_no_revisions(make_user, make_space, settings, tmp_path):
    settings.REPOS_DIR = tmp_path / "none"
    with pytest.raises(reading.RevisionMissing):
        reading.commits(make_space(make_user("stan"), "empty"))


def test_commits_newest_first_with_paging(repo_space):
    first, second = repo_space.commits
    found = reading.commits(repo_space, "main", limit=10)
    assert [c.sha for c in found] == [second, first]
    assert found[1].title == "First" and found[1].message == "First\n\nThe long story."
    assert found[0].parents == (first,) and found[1].parents == ()
    assert (found[0].author_name, found[0].author_email) == ("Olive", "olive@example.org")
    assert [c.sha for c in reading.commits(repo_space, "main", limit=1, offset=1)] == [first]
    assert reading.commit_count(repo_space, "main") == 2
    assert reading.commit(repo_space, second[:8]).sha == second


def test_diff_against_first_parent_and_root(repo_space):
    first, second = repo_space.commits
    text = reading.diff(repo_space, second)
    assert "-<h1>one</h1>" in text and "+<h1>two</h1>" in text and "deleted file mode" in text
    root = reading.diff(repo_space, first)
    assert "+print('hi')" in root and "Binary files /dev/null and b/logo.png differ" in root
    cut = reading.diff(repo_space, first, max_bytes=100)
    assert cut.endswith("... diff cut at 100 bytes\n") and len(cut) < 200
    with pytest.raises(reading.RevisionMissing):
        reading.diff(repo_space, "main")  # a commit page takes a SHA only
