"""The read side of a space's repository: trees, files, commits and diffs, for the Files and
History pages, the API and the Hugging Face face (contract-git.md).

Plain `git` (GIT_DIR = the bare repository), one short subprocess per call, each with a
timeout. Every revision and path comes from a URL, so both are checked here before git sees
them: a revision is a branch, tag, `refs/...` name or (abbreviated) SHA, never an option or a
revision expression (`..`, `^`, `~`, `@{`, `:`); a path is relative, without `.` or `..`
components. Anything missing or malformed raises RevisionMissing or FileMissing (both
ReadError), which the faces answer with 404: nothing here reads outside the object database.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from spaces.repos import store

GIT_TIMEOUT = 20  # seconds: a read of one tree or one diff is far quicker on any sane repo
DIFF_MAX_BYTES = 2 * 1024 * 1024  # a diff is cut here (the page says so); the raw files stay whole
REV_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/+-]{1,255}$")
SHA_RE = re.compile(r"^[0-9a-f]{4,40}$")


class ReadError(Exception):
    """Something the caller asked for is not there (a 404 for the faces)."""


class RevisionMissing(ReadError):
    pass


class FileMissing(ReadError):
    pass


@dataclass(frozen=True)
class Entry:
    path: str  # from the repository root, "/"-separated
    name: str
    type: str  # "file" | "directory"
    size: int | None  # bytes; None for a directory
    oid: str  # the git object id (blob or tree)
    mode: str = ""  # git's mode: 100644, 100755, 120000 (a link), 040000


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    date: datetime
    title: str
    message: str


# ----------------------------------------------------------------------------- plumbing
def repo_dir(space) -> Path:
    """The space's bare repository (store.repo_path: REPOS_DIR / <pk>.git, contract-git.md)."""
    return store.repo_path(space)


def _git(space, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    git_dir = repo_dir(space)
    if not (git_dir / "objects").is_dir():
        raise RevisionMissing("This space has no repository yet.")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_DIR": str(git_dir), "GIT_LITERAL_PATHSPECS": "1",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(git_dir), "LC_ALL": "C"}
    cmd = ["git", "-c", "core.quotePath=false", *args]
    if limit is None:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=GIT_TIMEOUT, check=False)
    # Bounded output (diffs): read at most `limit` + 1 bytes, then stop git.
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        out = proc.stdout.read(limit + 1)
        proc.kill()
        proc.wait(timeout=GIT_TIMEOUT)
    return subprocess.CompletedProcess(cmd, 0, out, b"")


def clean_path(path: str) -> str:
    """`path` as git names it, or FileMissing: relative, "/"-separated, no "." or "..", no NUL."""
    if "\x00" in path or "\\" in path:
        raise FileMissing("No such file.")
    parts = [p for p in path.strip("/").split("/") if p != ""]
    if any(p in (".", "..") for p in parts) or len(path) > 4096:
        raise FileMissing("No such file.")
    return "/".join(parts)


def resolve(space, rev: str = "main") -> str:
    """The full SHA of the commit `rev` names (branch, tag, refs/... or SHA), or RevisionMissing."""
    rev = rev or "main"
    if not REV_RE.match(rev) or rev.endswith((".lock", "/", ".")) or "//" in rev:
        raise RevisionMissing(f"No revision {rev!r}.")
    # --end-of-options: whatever `rev` says, git reads it as a revision, never as an option.
    done = _git(space, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    sha = done.stdout.decode().strip()
    if done.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise RevisionMissing(f"No revision {rev!r}.")
    return sha


# ----------------------------------------------------------------------------- trees and files
def _entries(raw: bytes, prefix: str) -> list[Entry]:
    found = []
    for record in raw.split(b"\x00"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split(None, 3)
        if kind not in ("blob", "tree"):
            continue  # a submodule (gitlink): uploads and pushes refuse them; never shown
        name = name.decode("utf-8", "replace")
        path = f"{prefix}/{name}" if prefix else name
        found.append(Entry(path=path, name=path.rsplit("/", 1)[-1], type="file" if kind == "blob" else "directory",
                           size=int(size) if size.strip().isdigit() else None, oid=oid, mode=mode))
    return found


def _sorted(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.type != "directory", e.path.lower()))


def stat(space, rev: str, path: str) -> Entry:
    """The entry at `path` (a file or a directory; "" is the root) in `rev`, or FileMissing."""
    sha = resolve(space, rev)
    path = clean_path(path)
    if not path:
        tree_oid = _git(space, "rev-parse", f"{sha}^{{tree}}").stdout.decode().strip()
        return Entry(path="", name="", type="directory", size=None, oid=tree_oid, mode="040000")
    done = _git(space, "ls-tree", "-l", "-z", "--full-tree", sha, "--", path)
    entries = [e for e in _entries(done.stdout, "") if e.path == path]
    if done.returncode != 0 or not entries:
        raise FileMissing(f"No file {path!r} in this revision.")
    return entries[0]


def tree(space, rev: str, path: str = "") -> list[Entry]:
    """The entries of the directory `path` in `rev`: directories first, then files, by name."""
    entry = stat(space, rev, path)
    if entry.type != "directory":
        raise FileMissing(f"{entry.path!r} is a file, not a directory.")
    done = _git(space, "ls-tree", "-l", "-z", entry.oid)
    return _sorted(_entries(done.stdout, entry.path))


def tree_recursive(space, rev: str) -> list[Entry]:
    """Every directory and file of `rev`, depth first in path order."""
    sha = resolve(space, rev)
    done = _git(space, "ls-tree", "-r", "-t", "-l", "-z", "--full-tree", sha)
    return sorted(_entries(done.stdout, ""), key=lambda e: e.path)


def blob_size(space, rev: str, path: str) -> int:
    entry = stat(space, rev, path)
    if entry.type != "file":
        raise FileMissing(f"{entry.path!r} is a directory.")
    return entry.size or 0


def blob(space, rev: str, path: str, *, max_bytes: int | None = None) -> bytes:
    """The content of the file at `path` in `rev` (the first `max_bytes` when given)."""
    entry = stat(space, rev, path)
    if entry.type != "file":
        raise FileMissing(f"{entry.path!r} is a directory.")
    if max_bytes is not None and (entry.size or 0) > max_bytes:
        return _git(space, "cat-file", "blob", entry.oid, limit=max_bytes).stdout[:max_bytes]
    return _git(space, "cat-file", "blob", entry.oid).stdout


def is_binary(data: bytes) -> bool:
    """git's own test (a NUL in the first 8000 bytes), and text that is not UTF-8."""
    if b"\x00" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data) - 4  # a character cut at the end of a bounded read is text
    return False


# ----------------------------------------------------------------------------- history
_FIELDS = "%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%B"


def _commit(record: bytes) -> Commit:
    sha, parents, name, email, date, message = record.decode("utf-8", "replace").split("\x1f", 5)
    message = message.strip("\n")
    return Commit(sha=sha.strip(), parents=tuple(parents.split()), author_name=name, author_email=email,
                  date=datetime.fromisoformat(date), title=message.split("\n", 1)[0], message=message)


def commits(space, rev: str = "main", *, limit: int = 30, offset: int = 0) -> list[Commit]:
    """The commits reachable from `rev`, newest first (first parents only: main's own line)."""
    sha = resolve(space, rev)
    done = _git(space, "log", "-z", "--first-parent", f"--format={_FIELDS}", f"--skip={max(offset, 0)}",
                f"--max-count={max(min(limit, 1000), 0)}", sha, "--")
    return [_commit(r) for r in done.stdout.split(b"\x00") if r.strip()]


def commit_count(space, rev: str = "main") -> int:
    sha = resolve(space, rev)
    return int(_git(space, "rev-list", "--first-parent", "--count", sha).stdout.decode().strip() or 0)


def commit(space, sha: str) -> Commit:
    """One commit by SHA (full or abbreviated), or RevisionMissing."""
    if not SHA_RE.match(sha or ""):
        raise RevisionMissing(f"No commit {sha!r}.")
    full = resolve(space, sha)
    done = _git(space, "log", "-z", "-1", f"--format={_FIELDS}", full, "--")
    return _commit(done.stdout.rstrip(b"\x00"))


def diff(space, sha: str, *, max_bytes: int = DIFF_MAX_BYTES) -> str:
    """The unified diff of commit `sha` against its first parent (against nothing for the
    first commit), renames found; cut after `max_bytes` with a last line saying so."""
    full = commit(space, sha).sha
    # --root: the first commit shows as all additions; -m --first-parent: a merge as what it
    # brought to main. Binary files show as "Binary files ... differ" (no --binary).
    done = _git(space, "diff-tree", "-p", "-M", "--root", "-m", "--first-parent", "--no-commit-id",
                "--no-color", "--no-ext-diff", full, limit=max_bytes)
    text = done.stdout[:max_bytes].decode("utf-8", "replace")
    if len(done.stdout) > max_bytes:
        text = text.rsplit("\n", 1)[0] + f"\n... diff cut at {max_bytes} bytes\n"
    return text
