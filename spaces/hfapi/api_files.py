"""The repository calls of huggingface_hub: read (revision, tree, paths-info, commits, resolve)
and write (preupload, commit), and duplicate (research/hf-hub-api.md, "Endpoints").

Writes: the preupload answer is `uploadMode: "regular"` for every file, so every client version
sends the bytes inline in the NDJSON commit and never calls LFS or Xet (which this hub does not
run). A commit is one commit on main through repos.services.commit_changes: checked like an
upload before main moves, so a refused file changes nothing; a retried commit (same parent,
same resulting tree) answers the commit it already made instead of building twice.
"""
from __future__ import annotations

import base64
import binascii
import json

from django.conf import settings
from django.db import transaction
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts import ratelimits
from spaces.catalog.history import space_duplicate
from spaces.hfapi import files, options, shapes
from spaces.hfapi.answers import HfError, bad_request
from spaces.hfapi.api_base import HfApiView
from spaces.records.models import Space
from spaces.repos import reading

COMMIT_LINE_MAX = 2 * 1024 * 1024  # bytes of one NDJSON line other than a file's


def _rev_and_path(rest: str) -> tuple[str, str]:
    """'<call>/<rev>[/<path>]' -> (rev, path). A revision holding '/' (refs/pr/1) is not a
    branch this hub has: it reads as a missing revision."""
    parts = rest.split("/", 2)
    rev = parts[1] if len(parts) > 1 and parts[1] else "main"
    return rev, parts[2] if len(parts) > 2 else ""


def _read(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except reading.FileMissing:
        raise files.entry_missing(str(args[-1]) if args else "") from None
    except reading.ReadError:
        raise files.revision_missing(str(args[1]) if len(args) > 1 else "main") from None


# ----------------------------------------------------------------------------- reads
def revision_info(request, args, rest):
    """space_info(revision=...): GET .../revision/<rev>."""
    space, role = get_space(request, *args, files.READ_FILES)
    rev, _ = _rev_and_path(rest)
    return Response(files.space_info(request, space, role, rev=rev))


def tree(request, args, rest):
    """list_repo_tree / list_repo_files: GET .../tree/<rev>[/<path>]?recursive=true."""
    space, _ = get_space(request, *args, files.READ_FILES)
    rev, path = _rev_and_path(rest)
    sha = files.resolve(space, rev)
    recursive = request.query_params.get("recursive") in ("1", "true", "True")
    if recursive:
        entries = _read(reading.tree_recursive, space, sha)
        prefix = reading.clean_path(path) if path else ""
        if prefix:
            entries = [e for e in entries if e.path.startswith(prefix + "/")]
            if not entries:
                raise files.entry_missing(path)
    else:
        entries = _read(reading.tree, space, sha, path)
    return Response([files.entry(e) for e in entries])


def paths_info(request, args, rest):
    """get_paths_info: POST .../paths-info/<rev>, form-encoded `paths` (read tokens allowed)."""
    space, _ = get_space(request, *args, files.READ_FILES)
    rev, _ = _rev_and_path(rest)
    sha = files.resolve(space, rev)
    data = request.data
    paths = data.getlist("paths") if hasattr(data, "getlist") else data.get("paths") or []
    if isinstance(paths, str):
        paths = [paths]
    found = []
    for path in paths[:1000]:
        try:
            found.append(files.entry(reading.stat(space, sha, path)))
        except reading.ReadError:
            continue  # as on Hugging Face: a missing path is left out
    return Response(found)


def commits(request, args, rest):
    """list_repo_commits: GET .../commits/<rev>, newest first, paged by `Link`."""
    space, _ = get_space(request, *args, files.READ_FILES)
    rev, _ = _rev_and_path(rest)
    files.resolve(space, rev)
    try:
        page = max(int(request.query_params.get("p") or 0), 0)
    except ValueError:
        raise bad_request("p", "give a page number") from None
    size = 100
    rows = _read(reading.commits, space, rev, limit=size + 1, offset=page * size)
    resp = Response([{"id": c.sha, "title": c.title, "message": c.message, "date": shapes.hf_time(c.date),
                      "authors": [{"user": c.author_name}], "parents": list(c.parents)} for c in rows[:size]])
    if len(rows) > size:
        resp["Link"] = (f'<{shapes.endpoint(request)}/api/spaces/{space.full_name}/commits/{rev}?p={page + 1}>; '
                        'rel="next"')
    return resp


# ----------------------------------------------------------------------------- writes
def _no_pull_requests(request) -> None:
    if request.query_params.get("create_pr") not in (None, "", "0", "false", "False"):
        raise bad_request("create_pr", "pull requests are not available on this hub; commit to main")
    if request.query_params.get("hot_reload") not in (None, "", "0", "false", "False"):
        raise bad_request("hot_reload", "hot reloading is not available on this hub")


def _main_only(rev: str) -> None:
    if rev != "main":
        raise bad_request("revision", f"commits go to main on this hub ({rev!r} was asked)")


def preupload(request, args, rest):
    """Every file "regular": the bytes travel inline in the commit (no LFS, no Xet). A file
    whose content main already has gets its blob id, so the client leaves it out."""
    space, _ = get_space(request, *args, Action.EDIT)
    rev, _ = _rev_and_path(rest)
    _no_pull_requests(request)
    body = request.data if isinstance(request.data, dict) else {}
    wanted = body.get("files")
    if not isinstance(wanted, list):
        raise bad_request("files", "give a list of {path, sample, size}")
    sha = files.head(space) if rev == "main" else None
    known = {e.path: e.oid for e in reading.tree_recursive(space, sha) if e.type == "file"} if sha else {}
    answer = []
    for item in wanted:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str):
            raise bad_request("files", "every file needs a path")
        one = {"path": path, "uploadMode": "regular", "shouldIgnore": False}
        if path in known:
            one["oid"] = known[path]
        answer.append(one)
    return Response({"files": answer, "commitOid": sha})


def _operations(request) -> tuple[dict, dict[str, bytes], list[str]]:
    """The NDJSON body: (header, additions by path, deletions)."""
    header, additions, deletions = None, {}, []
    cap = settings.UPLOAD_MAX_BYTES * 4 // 3 + COMMIT_LINE_MAX
    seen = 0
    for raw in request.stream or ():
        seen += len(raw)
        if seen > cap:
            raise HfError(413, f"The commit is larger than the largest upload this hub takes "
                               f"({settings.UPLOAD_MAX_BYTES} bytes).", code="request_too_large")
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            key, value = line["key"], line["value"]
        except (ValueError, KeyError, TypeError):
            raise bad_request("body", "send one JSON object {key, value} per line") from None
        if key == "header":
            header = value if isinstance(value, dict) else {}
        elif key == "file":
            if value.get("encoding", "base64") != "base64":
                raise bad_request("encoding", "files are sent base64-encoded")
            try:
                additions[value["path"]] = base64.b64decode(value.get("content", ""), validate=True)
            except (binascii.Error, KeyError, TypeError):
                raise bad_request("file", "a file needs a path and base64 content") from None
        elif key in ("deletedFile", "deletedFolder"):
            deletions.append(str(value.get("path", "")))
        elif key == "lfsFile":
            raise bad_request("lfsFile", "this hub takes files inline (uploadMode \"regular\"), not through "
                                         "LFS or Xet; unset HF_HUB_ENABLE_HF_TRANSFER and upload again")
        else:
            raise bad_request(str(key), "not a commit operation this hub knows")
    if header is None:
        raise bad_request("header", "the first line must be the commit header")
    return header, additions, deletions


def commit(request, args, rest):
    """create_commit / upload_file / upload_folder: one commit on main, then its revision."""
    from spaces.repos import services, store

    space, _ = get_space(request, *args, Action.EDIT)
    rev, _ = _rev_and_path(rest)
    _no_pull_requests(request)
    _main_only(rev)
    header, additions, deletions = _operations(request)
    message = str(header.get("summary") or "").strip() or "Upload files"
    if header.get("description"):
        message += "\n\n" + str(header["description"]).strip()
    parent = header.get("parentCommit") or None
    store.ensure_repo(space)
    head = store.head(space)
    already = _already_committed(space, head, parent, additions, deletions)
    if already:
        return _commit_answer(request, space, head)
    revision = services.commit_changes(space, additions=additions, deletions=deletions, author=request.user,
                                       message=message, parent=parent or head)
    return _commit_answer(request, space, revision.commit)


def _already_committed(space: Space, head: str | None, parent: str | None, additions, deletions) -> bool:
    """Whether main's head already is this commit: a change that changes nothing, or a retried
    POST (the clients retry commits) whose change main's head already made on the same parent.
    A retry's files that main already holds are left out by the client (the preupload answer
    gives their blob ids), so "already made" is: applied to the head, the change changes nothing."""
    from spaces.repos import store

    if head is None:
        return False
    if parent and parent != head and reading.commit(space, head).parents[:1] != (parent,):
        return False          # main moved on by other commits: a conflict, not a retry
    present = {e.path for e in reading.tree_recursive(space, head)}
    gone = [d for d in deletions if d.strip("/") in present
            or any(p.startswith(d.strip("/") + "/") for p in present)]
    if parent and parent != head:
        deletions = gone      # what the first attempt deleted is gone already
    elif len(gone) != len(deletions):
        return False          # deleting a file that is not there: let the commit refuse it by name
    try:
        wanted = store.write_tree_with_changes(space, head, additions=additions, deletions=deletions)
    except store.RepoRefused:
        return False
    return store.tree_of(space, head) == wanted


def _commit_answer(request, space: Space, sha: str) -> Response:
    return Response({"commitUrl": f"{shapes.web_url(request, space)}/commit/{sha}", "commitOid": sha,
                     "pullRequestUrl": None})


def duplicate(request, args, rest):
    """duplicate_space (1.x) / duplicate_repo (2.x): a copy of the files under the caller's name."""
    space, _ = get_space(request, *args, files.READ_FILES)
    if not request.user.is_authenticated:
        raise NotAuthenticated()
    body = request.data if isinstance(request.data, dict) else {}
    target = body.get("repository") or f"{request.user.username}/{space.name}"
    owner, _, name = target.rpartition("/")
    if owner and owner.lower() != request.user.username.lower():
        raise HfError(403, f"You may duplicate into your own name ({request.user.username}) only; Demohub has no "
                           "organizations.", code="permission_denied")
    for field in ("hardware", "storageTier", "volumes"):
        if body.get(field) not in (None, shapes.HARDWARE if field == "hardware" else None):
            raise bad_request(field, "not available on this hub")
    files.check_new_name(name)
    visibility = options.visibility_from(body) or space.visibility   # Hugging Face: the source's, by default
    existing = Space.objects.filter(owner=request.user, name__iexact=name).exclude(status="DELETING").first()
    if existing is not None:
        return Response({"error": "You already created this space repo", "url": shapes.web_url(request, existing)},
                        status=409)
    ratelimits.check_space_create(request, request.user)
    with transaction.atomic():
        copy = space_duplicate(source=space, owner=request.user, name=name, visibility=visibility)
        options.apply_space_options(copy, body, request.user)
    return Response({"url": shapes.web_url(request, copy), "filesCopyPending": False})


class ResolveApi(HfApiView):
    """hf_hub_download / file_exists: GET and HEAD /hf/spaces/<owner>/<name>/resolve/<rev>/<path>.

    Answered here, never redirected (huggingface_hub 1.x follows relative redirects only), with
    what the download path reads: X-Repo-Commit, ETag (the git blob id: the cache's file
    name), Content-Length. The bytes are a download that no browser renders as a page."""

    def get(self, request, owner, name, rest):
        from spaces.repos.files import attachment

        space, _ = get_space(request, owner, name, files.READ_FILES)
        rev, _, path = rest.partition("/")
        sha = files.resolve(space, rev)
        try:
            found = reading.stat(space, sha, path)
            if found.type != "file":
                raise reading.FileMissing(path)
            data = reading.blob(space, sha, path)
        except reading.ReadError:
            raise files.entry_missing(path) from None
        status, body = 200, data
        first = _range_start(request.headers.get("Range", ""), len(data))
        if first:
            status, body = 206, data[first:]
        resp = attachment(body, path)
        resp.status_code = status
        if status == 206:
            resp["Content-Range"] = f"bytes {first}-{len(data) - 1}/{len(data)}"
        resp["ETag"] = f'"{found.oid}"'
        resp["X-Repo-Commit"] = sha
        resp["Accept-Ranges"] = "bytes"
        resp["Content-Length"] = str(len(body))
        if request.method == "HEAD":
            resp.content = b""
            resp["Content-Length"] = str(len(body))
        return resp

    head = get


def _range_start(header: str, size: int) -> int:
    """The first byte of `Range: bytes=N-` (what an interrupted download resumes with); 0 otherwise."""
    if not header.startswith("bytes=") or "," in header:
        return 0
    start, _, end = header[6:].partition("-")
    if not start.isdigit() or end:
        return 0
    return int(start) if int(start) < size else 0

