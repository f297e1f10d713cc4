"""A space with a bare repository made by the git CLI (tests of the read side and its faces)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from spaces.repos import reading

GIT_ENV = {"GIT_AUTHOR_NAME": "Olive", "GIT_AUTHOR_EMAIL": "olive@example.org", "GIT_COMMITTER_NAME": "Olive",
           "GIT_COMMITTER_EMAIL": "olive@example.org", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def write_commit(work: Path, files: dict[str, bytes | str | None], message: str) -> str:
    for path, content in files.items():
        target = work / path
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", message)
    return git(work, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo_space(settings, tmp_path, make_user, make_space):
    """A space whose bare repository holds two commits on main (and refs/pr/1 at the first)."""
    settings.REPOS_DIR = tmp_path / "repos"
    space = make_space(make_user("olive"), "demo")
    return with_repo(space, tmp_path)


def with_repo(space, tmp_path: Path):
    """Give `space` a bare repository with two commits on main (and refs/pr/1 at the first)."""
    work = tmp_path / f"work-{space.pk}"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    first = write_commit(work, {"README.md": "---\nsdk: static\n---\n# Demo\n", "index.html": "<h1>one</h1>\n",
                                "src/app.py": "print('hi')\n", "src/lib/util.py": "X = 1\n",
                                "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary"}, "First\n\nThe long story.")
    second = write_commit(work, {"index.html": "<h1>two</h1>\n", "src/lib/util.py": None}, "Second")
    bare = reading.repo_dir(space)
    bare.parent.mkdir(parents=True, exist_ok=True)
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    git(bare, "update-ref", "refs/pr/1", first)  # a ref named like Hugging Face's pull requests
    space.commits = (first, second)
    return space
