"""The repository as huggingface_hub reads it: tree entries, siblings, revisions and names.

Reads go through repos.reading (helper B's read side). A missing revision is the client's
RevisionNotFoundError, a missing file its EntryNotFoundError: both only after the access check
let the caller see the space, so neither tells a stranger that a private space exists.
"""
from __future__ import annotations

import re

from spaces.access.selectors import Action, Role, can
from spaces.hfapi import shapes
from spaces.hfapi.answers import bad_request, entry_missing, revision_missing
from spaces.records.models import Space
from spaces.repos import reading

READ_FILES = Action.READ_FILES
__all__ = ["entry_missing", "revision_missing"]
# Names huggingface_hub's validate_repo_id refuses: such a space could never be reached by it.
REFUSED_NAME = re.compile(r"(\.git$)|(--)|(\.\.)")


def check_new_name(name: str) -> None:
    if REFUSED_NAME.search(name):
        raise bad_request("name", "a space name may not end in .git or hold '--' or '..' "
                                  "(Hugging Face's clients refuse such names)")


def head(space: Space) -> str | None:
    """main's commit, or None while the space has no repository or no commit yet."""
    try:
        return reading.resolve(space, "main")
    except reading.ReadError:
        return None


def resolve(space: Space, rev: str | None) -> str:
    """The commit `rev` names (a branch, a SHA; None or "main": main's head), or RevisionNotFound."""
    rev = rev or "main"
    try:
        return reading.resolve(space, rev)
    except reading.ReadError:
        raise revision_missing(rev) from None


def entry(e: reading.Entry) -> dict:
    """A RepoFile / RepoFolder of list_repo_tree and get_paths_info."""
    if e.type == "directory":
        return {"type": "directory", "path": e.path, "oid": e.oid}
    return {"type": "file", "path": e.path, "oid": e.oid, "size": e.size or 0}


def siblings(space: Space, sha: str | None) -> list[dict]:
    if sha is None:
        return []
    return [{"rfilename": e.path, "size": e.size, "blobId": e.oid}
            for e in reading.tree_recursive(space, sha) if e.type == "file"]


def space_info(request, space: Space, role: Role, *, rev: str | None) -> dict:
    """space_info: the space, its commit and its files (the caller may read files: checked)."""
    from spaces.lifecycle.space_errors import space_error_for

    if rev is not None:
        sha = resolve(space, rev)
    else:
        sha = head(space)
    files = siblings(space, sha) if can(role, READ_FILES, space=space) else None
    return shapes.space_info(space, sha=sha, siblings=files, error=space_error_for(space, role))
