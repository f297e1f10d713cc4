"""One bare git repository per space, driven with plain `git` subprocesses (no pack code here).

The repository of a space is `<REPOS_DIR>/<space id>.git`, default branch `main`. Every
revision's commit stays reachable as `refs/demohub/revisions/<n>` (hidden from clients by
`uploadpack.hideRefs` / `receive.hideRefs`, so a clone shows only branches and tags, and a push
can never move them).

Writers build the new commit first (objects only: nothing a client sees changes), hand it to a
`check` callable (services.snapshot_commit: the archive checks of an upload), and only then
move the branch with a compare-and-swap `git update-ref <ref> <new> <old>`: a refused change
leaves every ref where it was, and a branch that moved meanwhile is a RepoConflict.

Functions take anything with a `.pk` as the space, so the data migration can use them with its
historical models.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from spaces.repos.conf import setting

ZERO = "0" * 40
MAIN = "main"
REVISION_REFS = "refs/demohub/revisions/"
# Quarantine variables git sets for its receive hooks: the hook's own git calls must see the
# objects of the push before they are moved into the repository.
_KEEP_ENV = frozenset({"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"})
# Set while a receive hook's checks run in the hub process (spaces/repos/receive.py).
_quarantine: ContextVar[dict | None] = ContextVar("git_quarantine", default=None)
_CONFIG = (("receive.fsckObjects", "true"), ("transfer.fsckObjects", "true"), ("http.receivepack", "true"),
           ("http.uploadpack", "true"), ("http.getanyfile", "false"), ("uploadpack.hideRefs", "refs/demohub"),
           ("receive.hideRefs", "refs/demohub"), ("core.logAllRefUpdates", "always"),
           ("receive.denyNonFastForwards", "false"), ("receive.denyDeletes", "false"))


class RepoError(Exception):
    """Base of this module's errors: `code` a machine word, `http_status` for the faces."""

    http_status = 422

    def __init__(self, message: str, *, code: str = "repo_error", http_status: int | None = None):
        super().__init__(message)
        self.code = code
        if http_status is not None:
            self.http_status = http_status


class RepoNotFound(RepoError):
    http_status = 404


class RepoRefused(RepoError):
    """A change that is not accepted (a bad path, a failed check): nothing moved."""


class RepoConflict(RepoRefused):
    """The branch is no longer where the change started from."""

    http_status = 409


@dataclass(frozen=True)
class TreeEntry:
    mode: str       # "100644", "100755", "120000", "040000", "160000"
    type: str       # "blob", "tree", "commit"
    oid: str
    size: int       # -1 for trees and gitlinks
    path: str


# ------------------------------------------------------------------------------ plumbing
def repo_path(space) -> Path:
    return Path(setting("REPOS_DIR")) / f"{int(space.pk)}.git"


def git_env(path: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEEP_ENV}
    env.update(_quarantine.get() or {})
    env.update({"GIT_DIR": str(path), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    env.update(extra or {})
    return env


@contextlib.contextmanager
def quarantine(env: dict):
    """Let this thread's git calls see the objects of a push still in quarantine (the variables
    git gives its pre-receive hook)."""
    token = _quarantine.set({k: v for k, v in env.items() if k in _KEEP_ENV and v})
    try:
        yield
    finally:
        _quarantine.reset(token)


def git(path: Path, *args: str, input: bytes | None = None, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run `git <args>` on the bare repository at `path`; raise RepoError when it fails."""
    proc = subprocess.run([setting("GIT_BINARY"), *args], input=input, capture_output=True,
                          env=git_env(path, env), check=False)
    if check and proc.returncode != 0:
        raise RepoError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[:500]}")
    return proc


def _out(path: Path, *args: str, **kw) -> str:
    return git(path, *args, **kw).stdout.decode().strip()


def ensure_repo(space) -> Path:
    """The space's repository, created (empty, branch main) when it does not exist yet."""
    path = repo_path(space)
    if (path / "HEAD").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    try:
        git(tmp, "init", "-q", "--bare", "-b", MAIN, str(tmp))
        for key, value in _CONFIG:
            git(tmp, "config", key, value)
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "HEAD").exists():   # not a lost race with another creator
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def delete_repo(space) -> None:
    shutil.rmtree(repo_path(space), ignore_errors=True)


def exists(space) -> bool:
    return (repo_path(space) / "HEAD").exists()


def head(space, branch: str = MAIN) -> str | None:
    if not exists(space):
        return None
    proc = git(repo_path(space), "rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}", check=False)
    return proc.stdout.decode().strip() or None


def resolve(space, rev: str) -> str:
    """The commit SHA a branch name, a tag, a (short) SHA or "HEAD" names; RepoNotFound else."""
    if not exists(space) or not rev or rev.startswith("-") or "\n" in rev:
        raise RepoNotFound(f"No revision {rev!r} in this repository.", code="revision_not_found")
    path = repo_path(space)
    for candidate in (f"refs/heads/{rev}", f"refs/tags/{rev}", rev):
        proc = git(path, "rev-parse", "-q", "--verify", "--end-of-options", f"{candidate}^{{commit}}", check=False)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
    raise RepoNotFound(f"No revision {rev!r} in this repository.", code="revision_not_found")


def branches(space) -> dict[str, str]:
    if not exists(space):
        return {}
    out = _out(repo_path(space), "for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def tree_of(space, sha: str) -> str:
    return _out(repo_path(space), "rev-parse", "--verify", f"{sha}^{{tree}}")


def is_ancestor(space, older: str, newer: str) -> bool:
    return git(repo_path(space), "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def ls_tree(space, sha: str) -> list[TreeEntry]:
    """Every entry of the commit's tree, recursively (blobs, links and gitlinks; no trees)."""
    raw = git(repo_path(space), "ls-tree", "-r", "-l", "-z", "--full-tree", sha).stdout
    entries = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        entries.append(TreeEntry(mode, kind, oid, int(size) if size != "-" else -1,
                                 name.decode("utf-8", errors="surrogateescape")))
    return entries


def archive(space, sha: str, dest) -> None:
    """Write the commit's tree as an uncompressed tar into the binary file `dest`."""
    proc = subprocess.run([setting("GIT_BINARY"), "archive", "--format=tar", sha], stdout=dest,
                          stderr=subprocess.PIPE, env=git_env(repo_path(space)), check=False)
    if proc.returncode != 0:
        raise RepoError(f"git archive failed: {proc.stderr.decode(errors='replace').strip()[:500]}")


# ------------------------------------------------------------------------------ writing
def identity(user, date: datetime | None = None) -> dict:
    """GIT_AUTHOR_* / GIT_COMMITTER_* for `user` (None: the hub itself)."""
    if user is None:
        name, email = "Demohub", "demohub@localhost"
    else:
        name = (user.get_full_name() if hasattr(user, "get_full_name") else "") or user.username
        email = user.email or f"{user.username}@users.noreply.localhost"
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
           "GIT_COMMITTER_EMAIL": email}
    if date is not None:
        stamp = f"@{int(date.timestamp())} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return env


def _check_path(path: str) -> str:
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or any(ord(c) < 32 for c in path)
            or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)):
        raise RepoRefused(f"The path {path!r} is not allowed in a repository.", code="unsafe_path")
    return path


def _index_info(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8", errors="surrogateescape")


def _write_index_tree(path: Path, base_tree: str | None, lines: list[str]) -> str:
    with tempfile.TemporaryDirectory(prefix="demohub-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if base_tree:
            git(path, "read-tree", base_tree, env=env)
        if lines:
            git(path, "update-index", "--add", "--remove", "--index-info", input=_index_info(lines), env=env)
        return _out(path, "write-tree", env=env)


def write_tree_from_directory(space, src: Path) -> str:
    """Store the files and symbolic links under `src` (a checked snapshot) as a tree.

    A `.git` folder anywhere in it is left out: git cannot hold one (an upload of a checked-out
    repository keeps only its files)."""
    path = ensure_repo(space)
    src = Path(src)
    files: list[tuple[str, str]] = []     # (relative path, mode)
    links: list[tuple[str, bytes]] = []
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d.lower() != ".git" and not os.path.islink(os.path.join(root, d)))
        rel_root = os.path.relpath(root, src)
        for name in sorted(names) + sorted(d for d in os.listdir(root) if os.path.islink(os.path.join(root, d))
                                           and os.path.isdir(os.path.join(root, d))):
            full = os.path.join(root, name)
            rel = _check_path(name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/"))
            if os.path.islink(full):
                links.append((rel, os.fsencode(os.readlink(full))))
            elif os.path.isfile(full):
                files.append((rel, "100755" if os.access(full, os.X_OK) else "100644"))
    lines = []
    if files:
        stdin = "".join(f"{os.path.join(src, rel)}\n" for rel, _ in files).encode("utf-8", errors="surrogateescape")
        oids = _out(path, "hash-object", "-w", "--no-filters", "--stdin-paths", input=stdin).split()
        lines += [f"{mode} {oid}\t{rel}" for (rel, mode), oid in zip(files, oids, strict=True)]
    for rel, target in links:
        oid = _out(path, "hash-object", "-w", "--stdin", input=target)
        lines.append(f"120000 {oid}\t{rel}")
    return _write_index_tree(path, None, lines)


def write_tree_with_changes(space, base: str | None, *, additions: dict[str, bytes],
                            deletions: Iterable[str] = ()) -> str:
    """The tree of commit `base` (None: empty) with files added or replaced and others removed."""
    path = ensure_repo(space)
    lines = []
    current = {e.path: e for e in ls_tree(space, base)} if base else {}
    for name in deletions:
        name = _check_path(name.strip("/"))
        if name not in current and not any(p.startswith(name + "/") for p in current):
            raise RepoRefused(f"There is no file {name!r} to delete.", code="file_missing", http_status=404)
        for p in [p for p in current if p == name or p.startswith(name + "/")]:
            lines.append(f"0 {ZERO}\t{p}")
    for name, data in additions.items():
        name = _check_path(name.strip("/"))
        oid = _out(path, "hash-object", "-w", "--stdin", input=data)
        mode = current[name].mode if name in current and current[name].mode == "100755" else "100644"
        lines.append(f"{mode} {oid}\t{name}")
    return _write_index_tree(path, tree_of(space, base) if base else None, lines)


def commit_tree(space, tree: str, parents: list[str], *, author, message: str,
                date: datetime | None = None) -> str:
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    text = (message.strip() or "Update").encode() + b"\n"
    return _out(repo_path(space), *args, input=text, env=identity(author, date))


def update_ref(space, ref: str, new: str, old: str | None, *, reason: str = "demohub") -> None:
    """Move `ref` to `new` only if it is still at `old` (None: must not exist); else RepoConflict."""
    proc = git(repo_path(space), "update-ref", "-m", reason, ref, new, old or ZERO, check=False)
    if proc.returncode != 0:
        raise RepoConflict(f"{ref.removeprefix('refs/heads/')} changed meanwhile; reload and try again.",
                           code="conflict")


def set_revision_ref(space, number: int, sha: str) -> None:
    git(repo_path(space), "update-ref", "-m", f"revision {number}", f"{REVISION_REFS}{int(number)}", sha)


def _commit_on(space, tree: str, *, author, message: str, parent: str | None, branch: str,
               check: Callable[[str], None] | None, date: datetime | None) -> str:
    current = head(space, branch)
    if parent is not None and parent != current:
        raise RepoConflict(f"{branch} changed meanwhile; reload and try again.", code="conflict")
    sha = commit_tree(space, tree, [current] if current else [], author=author, message=message, date=date)
    if check is not None:
        check(sha)        # raises to refuse: the commit stays unreferenced, nothing moved
    update_ref(space, f"refs/heads/{branch}", sha, current, reason=message.splitlines()[0][:200] if message else "")
    return sha


def commit_directory(space, src: Path, *, author, message: str, parent: str | None = None, branch: str = MAIN,
                     check: Callable[[str], None] | None = None, date: datetime | None = None) -> str:
    """One commit on `branch` whose tree is the folder `src`; returns its SHA.

    `parent`: the commit the change was made from (the branch must still be there), None: the
    branch's current head. `check(sha)` may refuse the commit before the branch moves."""
    tree = write_tree_from_directory(space, src)
    return _commit_on(space, tree, author=author, message=message, parent=parent, branch=branch,
                      check=check, date=date)


def commit_changes(space, *, additions: dict[str, bytes], deletions: Iterable[str] = (), author, message: str,
                   parent: str | None = None, branch: str = MAIN,
                   check: Callable[[str], None] | None = None) -> str:
    """One commit on `branch` adding/replacing `additions` and removing `deletions`."""
    base = parent if parent is not None else head(space, branch)
    tree = write_tree_with_changes(space, base, additions=additions, deletions=deletions)
    return _commit_on(space, tree, author=author, message=message, parent=base, branch=branch,
                      check=check, date=None)
