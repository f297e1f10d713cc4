"""The repository over the JSON API: tree, files, raw downloads, commits with their diffs, and
committing one file (design.md §4 extended; the Files and History tabs' data).

GET /api/spaces/<owner>/<name>/tree[/<path>]?rev=&recursive=   entries
GET /api/spaces/<owner>/<name>/files/<path>?rev=                metadata, and the text when shown
POST /api/spaces/<owner>/<name>/files/<path>                    commit new content (editors, write token)
GET /api/spaces/<owner>/<name>/raw/<path>?rev=                  the bytes, as a download
GET /api/spaces/<owner>/<name>/commits?rev=&page=               commits of main (or rev), newest first
GET /api/spaces/<owner>/<name>/commits/<sha>                    one commit with its diff

Reading is Action.READ_FILES (anyone who may see the space, not a share link); a missing
revision or path is a 404 like a missing space.
"""
from __future__ import annotations

import base64
import binascii

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.repos import files, reading
from spaces.web.pagination import PageNumberPagination

REV = OpenApiParameter("rev", str, description="A branch, tag, refs/... name or commit SHA (default main).")


def _read(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except reading.ReadError as exc:
        raise Http404(str(exc)) from exc


# ----------------------------------------------------------------------------- serializers
class EntryOut(serializers.Serializer):
    path = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["file", "directory"])
    size = serializers.IntegerField(allow_null=True)
    oid = serializers.CharField()


class TreeOut(serializers.Serializer):
    rev = serializers.CharField()
    commit = serializers.CharField()
    path = serializers.CharField()
    entries = EntryOut(many=True)


class FileOut(serializers.Serializer):
    path = serializers.CharField()
    commit = serializers.CharField()
    size = serializers.IntegerField()
    oid = serializers.CharField()
    binary = serializers.BooleanField()
    too_big = serializers.BooleanField(help_text="text bigger than `content` carries: use /raw")
    content = serializers.CharField(allow_null=True, help_text="the text (UTF-8); null for binary or too big")
    raw_url = serializers.CharField()


class RevisionRef(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()


class RevisionOut(serializers.Serializer):
    """The revision object of design.md §4 (as GET .../revisions/<n> answers)."""

    number = serializers.IntegerField()
    status = serializers.CharField()
    content_hash = serializers.CharField()
    commit = serializers.CharField()
    message = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()


class CommitOut(serializers.Serializer):
    sha = serializers.CharField()
    parents = serializers.ListField(child=serializers.CharField())
    author_name = serializers.CharField()
    author_email = serializers.CharField()
    date = serializers.DateTimeField()
    title = serializers.CharField()
    message = serializers.CharField()
    revisions = RevisionRef(many=True, help_text="the space's revisions made from this commit")


class CommitDetailOut(CommitOut):
    diff = serializers.CharField(help_text="unified diff against the first parent (cut at 2 MiB)")


def _commit_data(found: reading.Commit, revisions) -> dict:
    return {**found.__dict__, "parents": list(found.parents),
            "revisions": [{"number": r.number, "status": r.status} for r in revisions]}


class _Commits:
    """The commits of one revision as a sequence the paginator can count and slice."""

    def __init__(self, space, sha: str):
        self.space, self.sha = space, sha

    def count(self) -> int:
        return reading.commit_count(self.space, self.sha)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item: slice):
        return reading.commits(self.space, self.sha, limit=item.stop - item.start, offset=item.start)


# ----------------------------------------------------------------------------- views
class TreeApi(BaseApi):
    @extend_schema(operation_id="space_tree", parameters=[
        REV, OpenApiParameter("recursive", bool, description="every directory and file below")],
        responses=TreeOut)
    def get(self, request, owner, name, path=""):
        space, _ = get_space(request, owner, name, Action.READ_FILES)
        rev = request.query_params.get("rev") or "main"
        sha = _read(reading.resolve, space, rev)
        if request.query_params.get("recursive") in ("1", "true"):
            prefix = _read(reading.clean_path, path)
            _read(reading.tree, space, sha, prefix)  # 404 unless a directory
            entries = [e for e in _read(reading.tree_recursive, space, sha)
                       if not prefix or e.path.startswith(prefix + "/")]
        else:
            entries = _read(reading.tree, space, sha, path)
        return Response(TreeOut({"rev": rev, "commit": sha, "path": path.strip("/"),
                                 "entries": [e.__dict__ for e in entries]}).data)


class TreePathApi(TreeApi):
    """The same for a directory below the root (its own operation id in the schema)."""

    @extend_schema(operation_id="space_tree_path", parameters=[
        REV, OpenApiParameter("recursive", bool, description="every directory and file below")],
        responses=TreeOut)
    def get(self, request, owner, name, path=""):
        return super().get(request, owner, name, path)


class FileApi(BaseApi):
    class CommitIn(serializers.Serializer):
        content = serializers.CharField(allow_blank=True, trim_whitespace=False)
        encoding = serializers.ChoiceField(choices=["utf-8", "base64"], default="utf-8")
        message = serializers.CharField(required=False, allow_blank=True, max_length=files.MESSAGE_MAX)
        base = serializers.RegexField(r"^[0-9a-f]{40}$", required=False,
                                      help_text="the commit the change starts from: 409 if main is elsewhere now")

    @extend_schema(operation_id="space_file", parameters=[REV], responses=FileOut)
    def get(self, request, owner, name, path):
        space, _ = get_space(request, owner, name, Action.READ_FILES)
        rev = request.query_params.get("rev") or "main"
        sha = _read(reading.resolve, space, rev)
        view = _read(files.file_view, space, sha, path)
        return Response(FileOut({
            "path": view.entry.path, "commit": sha, "size": view.entry.size or 0, "oid": view.entry.oid,
            "binary": view.binary, "too_big": view.too_big, "content": view.text,
            "raw_url": f"/api/spaces/{space.owner.username}/{space.name}/raw/{view.entry.path}?rev={sha}"}).data)

    @extend_schema(operation_id="space_file_commit", request=CommitIn, responses={
        202: OpenApiResponse(RevisionOut, description="the new revision, built and deployed as an upload is"),
        409: OpenApiResponse(description="`base` is not main's head any more (code `conflict`)")})
    def post(self, request, owner, name, path):
        space, _ = get_space(request, owner, name, Action.EDIT)
        data = self.CommitIn(data=request.data)
        data.is_valid(raise_exception=True)
        content = data.validated_data["content"]
        if data.validated_data["encoding"] == "base64":
            try:
                raw = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise serializers.ValidationError({"content": "Not valid base64."}) from exc
        else:
            raw = content.encode()
        revision = _read(files.file_commit, space=space, path=path, content=raw,
                         message=data.validated_data.get("message", ""), base=data.validated_data.get("base"),
                         by=request.user)
        location = f"/api/spaces/{space.owner.username}/{space.name}/revisions/{revision.number}"
        return Response(RevisionOut(revision).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class RawApi(BaseApi):
    @extend_schema(operation_id="space_file_raw", parameters=[REV],
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, owner, name, path):
        space, _ = get_space(request, owner, name, Action.READ_FILES)
        sha = _read(reading.resolve, space, request.query_params.get("rev") or "main")
        return files.attachment(_read(reading.blob, space, sha, path), path)


class CommitListApi(BaseApi):
    @extend_schema(operation_id="space_commits", parameters=[REV], responses=CommitOut(many=True))
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.READ_FILES)
        sha = _read(reading.resolve, space, request.query_params.get("rev") or "main")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(_Commits(space, sha), request, view=self)
        revisions = files.revisions_for_commits(space, [c.sha for c in page])
        return paginator.get_paginated_response(
            CommitOut([_commit_data(c, revisions.get(c.sha, [])) for c in page], many=True).data)


class CommitDetailApi(BaseApi):
    @extend_schema(operation_id="space_commit", responses=CommitDetailOut)
    def get(self, request, owner, name, sha):
        space, _ = get_space(request, owner, name, Action.READ_FILES)
        found = _read(reading.commit, space, sha)
        revisions = files.revisions_for_commits(space, [found.sha]).get(found.sha, [])
        return Response(CommitDetailOut({**_commit_data(found, revisions),
                                         "diff": _read(reading.diff, space, found.sha)}).data)


