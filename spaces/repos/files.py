"""What the Files and History faces (pages_files.py, api_files.py) share: finding the revision
in a Hugging Face-style path, the revisions built from commits, how a file is shown, and the
browser editor's commit.
"""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from urllib.parse import unquote

from django.http import Http404, HttpResponse
from django.utils.http import content_disposition_header

from spaces.records.errors import ServiceError
from spaces.records.models import Revision, Space
from spaces.repos import highlight, reading, services, store

EDIT_MAX_BYTES = 1024 * 1024  # the browser editor edits text files up to this size
MESSAGE_MAX = 4000


def raw_path(request) -> str | None:
    """The request's path as the client sent it, %-escapes kept, where the server tells it
    (ASGI's raw_path, a WSGI server's RAW_URI/REQUEST_URI); None where it does not."""
    scope = getattr(request, "scope", None)
    if scope and scope.get("raw_path"):
        return scope["raw_path"].decode("latin-1")
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    return raw.split("?", 1)[0] if raw else None


def split_rev_path(request, space: Space, rest: str) -> tuple[str, str, str]:
    """(revision as named, its SHA, path) from the part of a /tree/, /blob/, /resolve/ or /edit/
    URL after the keyword. Django decodes %2F, so `refs%2Fpr%2F1/app.py` arrives as
    `refs/pr/1/app.py`: the raw path's first segment is tried first, then the longest leading
    segments that name a revision (git never has both `a/b` and `a` as refs). Http404 if none."""
    candidates = []
    raw = raw_path(request)
    prefix = request.path[: len(request.path) - len(rest)] if rest and request.path.endswith(rest) else None
    if raw and prefix and raw.startswith(prefix):
        candidates.append(unquote(raw[len(prefix):].split("/", 1)[0]))
    parts = rest.split("/")
    candidates += ["/".join(parts[:i]) for i in range(min(len(parts), 8), 0, -1)]
    seen = set()
    for rev in candidates:
        if not rev or rev in seen or not (rest == rev or rest.startswith(rev + "/")):
            continue
        seen.add(rev)
        try:
            sha = reading.resolve(space, rev)
        except reading.RevisionMissing:
            continue
        return rev, sha, rest[len(rev):].strip("/")
    raise Http404("No such revision.")


def revisions_for_commits(space: Space, shas: list[str]) -> dict[str, list[Revision]]:
    """The revisions of `space` made from each of `shas` (newest first); a commit can have
    several (a factory rebuild, a rollback to the same tree makes a new commit)."""
    found: dict[str, list[Revision]] = {}
    for rev in (Revision.objects.filter(space=space, commit__in=shas).select_related("created_by")
                .only("pk", "number", "status", "commit", "error", "created_at", "created_by__username")
                .order_by("-number")):
        found.setdefault(rev.commit, []).append(rev)
    return found


@dataclass(frozen=True)
class FileView:
    entry: reading.Entry
    binary: bool
    too_big: bool  # text, but bigger than the page shows
    text: str | None  # the content, when shown
    html: str | None  # highlighted, when shown
    language: str


def file_view(space: Space, sha: str, path: str) -> FileView:
    """How the file at `path` is shown: highlighted text, or "binary, N bytes", or too big."""
    entry = reading.stat(space, sha, path)
    if entry.type != "file":
        raise reading.FileMissing("a directory")
    head = reading.blob(space, sha, path, max_bytes=highlight.SHOW_MAX_BYTES)
    binary = entry.mode == "120000" or reading.is_binary(head)
    too_big = not binary and (entry.size or 0) > highlight.SHOW_MAX_BYTES
    if binary or too_big:
        return FileView(entry, binary, too_big, None, None, "")
    text = head.decode("utf-8")
    return FileView(entry, False, False, text, highlight.file_html(entry.name, text), highlight.language(entry.name))


def editable_text(space: Space, sha: str, path: str) -> str:
    """The text the editor starts from, or ServiceError (binary, too big, a link)."""
    entry = reading.stat(space, sha, path)
    if entry.type != "file" or entry.mode == "120000":
        raise ServiceError("Only a regular text file can be edited here.", code="not_editable", http_status=400)
    if (entry.size or 0) > EDIT_MAX_BYTES:
        raise ServiceError(f"Files over {EDIT_MAX_BYTES // 1024} KiB are edited with git, not in the browser.",
                           code="too_large", http_status=413)
    data = reading.blob(space, sha, path)
    if reading.is_binary(data):
        raise ServiceError("This is a binary file; upload or push a new version instead.", code="binary",
                           http_status=400)
    return data.decode("utf-8")


class EditConflict(ServiceError):
    def __init__(self, head: str):
        super().__init__(f"main has moved on since this file was opened (it is now at {head[:7]}); "
                         "nothing was committed.", code="conflict", http_status=409)
        self.head = head


def file_commit(*, space: Space, path: str, content: bytes, message: str, base: str | None, by) -> Revision:
    """Commit one file's new content on main and make it a revision (built and deployed as an
    upload is, with the same checks before main moves). `base` is the commit the editor started
    from: when main is elsewhere now, EditConflict and nothing changes."""
    path = reading.clean_path(path)
    if not path:
        raise ServiceError("Name the file to change.", code="invalid_path", http_status=400)
    if len(content) > EDIT_MAX_BYTES:
        raise ServiceError(f"Files over {EDIT_MAX_BYTES // 1024} KiB are changed with git, not in the browser.",
                           code="too_large", http_status=413)
    message = (message or "").strip()[:MESSAGE_MAX] or f"Update {path}"
    try:
        return services.commit_changes(space, additions={path: content}, author=by, message=message,
                                       parent=base or None)
    except store.RepoConflict as exc:
        raise EditConflict(store.head(space) or "") from exc
    except store.RepoError as exc:  # refused by the repository's own rules: said as the API says errors
        raise ServiceError(str(exc), code=exc.code, http_status=exc.http_status) from exc


def attachment(data: bytes, path: str) -> HttpResponse:
    """`data` as a download named after `path`: a type that no browser renders as a page,
    nosniff, and a sandbox for any browser that opens it anyway."""
    guessed, _ = mimetypes.guess_type(path)
    kind = "application/octet-stream"
    if guessed and guessed.startswith(("image/", "audio/", "video/")) and "svg" not in guessed:
        kind = guessed
    response = HttpResponse(data, content_type=kind)
    response["Content-Disposition"] = content_disposition_header(True, path.rsplit("/", 1)[-1] or "file")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=0"
    return response
