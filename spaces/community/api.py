"""Comments and likes in the JSON API (design.md §4):

    GET, POST      /api/spaces/<owner>/<name>/comments        threads, oldest first; {body, reply_to?}
    PATCH, DELETE  /api/spaces/<owner>/<name>/comments/<id>   {body} (author) or {hidden} (owner)
    POST, DELETE   /api/spaces/<owner>/<name>/like            {"liked", "likes"}

Reading needs Action.READ_COMMENTS, writing Action.INTERACT (a login on a public space, a
collaborator on a private one); both go through api.get_space, so a space the caller may not
see is a 404 exactly like a missing one. The rules about whose comment is whose, and what
`reply_to` a reply ends up with, are in spaces.comments.
"""
from __future__ import annotations

from django.http import Http404
from rest_framework import serializers, status
from rest_framework.response import Response

from spaces.access.selectors import Action, Role
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.accounts.ratelimits import rate_limited
from spaces.community import services as comments
from spaces.community.models import Comment
from spaces.records.markdown import render_markdown
from spaces.records.models import Space
from spaces.web.pagination import PageNumberPagination


class CommentOut(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username")
    html = serializers.SerializerMethodField()
    # Set on the row by comments.comment_set_caller_flags for the caller of this request.
    can_edit = serializers.BooleanField(read_only=True)
    can_hide = serializers.BooleanField(read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "html", "reply_to", "hidden", "created_at", "edited_at",
                  "can_edit", "can_hide"]

    def get_html(self, obj) -> str:
        return render_markdown(obj.body)


class ThreadOut(CommentOut):
    """A top-level comment with the replies the caller may read, oldest first."""

    replies = CommentOut(many=True, source="thread_replies", read_only=True)

    class Meta(CommentOut.Meta):
        fields = CommentOut.Meta.fields + ["replies"]


def _comment_out(comment: Comment, request, role: Role) -> dict:
    comments.comment_set_caller_flags(comment, user=request.user, role=role)
    return CommentOut(comment).data


def _comment_for(request, space: Space, role: Role, comment_id: int) -> Comment:
    """A comment of `space` the caller may read, or 404 (hidden from them reads as missing)."""
    comment = (comments.comments_visible_to(space=space, user=request.user, role=role)
               .filter(pk=comment_id).first())
    if comment is None:
        raise Http404("No such comment.")
    comment.space = space
    return comment


class CommentListCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        # Emptiness and length are checked by comments.comment_create, for the pages too.
        body = serializers.CharField(allow_blank=True, trim_whitespace=False)
        reply_to = serializers.IntegerField(required=False, allow_null=True, min_value=1)

    def get(self, request, owner, name):
        space, role = get_space(request, owner, name, Action.READ_COMMENTS)
        threads = comments.comment_threads(space=space, user=request.user, role=role)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(threads, request, view=self)
        comments.comment_page_prepare(page, space=space, user=request.user, role=role)
        return paginator.get_paginated_response(ThreadOut(page, many=True).data)

    def post(self, request, owner, name):
        space, role = get_space(request, owner, name, Action.INTERACT)
        rate_limited(request, "comment-create", comments.COMMENT_CREATE_RATE, key="user")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = comments.comment_create(space=space, author=request.user, body=data.validated_data["body"],
                                          reply_to=data.validated_data.get("reply_to"))
        return Response(_comment_out(comment, request, role), status=status.HTTP_201_CREATED)


class CommentDetailApi(BaseApi):
    class PatchSerializer(serializers.Serializer):
        body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
        hidden = serializers.BooleanField(required=False)

    def patch(self, request, owner, name, comment_id):
        space, role = get_space(request, owner, name, Action.INTERACT)
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unknown = set(request.data) - set(self.PatchSerializer().fields)
        if unknown:
            raise serializers.ValidationError({k: "This field cannot be changed here." for k in sorted(unknown)})
        # One change per request: an edit is the author's, hiding the owner's.
        if len(data.validated_data) != 1:
            raise serializers.ValidationError({"non_field_errors": "Send either body (to edit) or hidden "
                                                                   "(to hide or unhide)."})
        comment = _comment_for(request, space, role, comment_id)
        if "body" in data.validated_data:
            comments.comment_edit(comment=comment, by=request.user, body=data.validated_data["body"])
        else:
            comments.comment_set_hidden(comment=comment, by=request.user, hidden=data.validated_data["hidden"])
        return Response(_comment_out(comment, request, role))

    def delete(self, request, owner, name, comment_id):
        space, role = get_space(request, owner, name, Action.INTERACT)
        comment = _comment_for(request, space, role, comment_id)
        comments.comment_delete(comment=comment, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LikeApi(BaseApi):
    """Liking twice or taking back a like that is not there is fine: the answer is the state."""

    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.INTERACT)
        return Response(comments.like_add(space=space, user=request.user)._asdict())

    def delete(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.INTERACT)
        return Response(comments.like_remove(space=space, user=request.user)._asdict())
