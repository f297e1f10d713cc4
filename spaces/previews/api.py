"""GET /api/spaces/<owner>/<name>/previews: the space's branch previews, for its editors (the
one access check's Action.OPEN_PREVIEW: a viewer may see the space, not its previews)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.previews import selectors
from spaces.records.models import Preview
from spaces.web.pagination import PageNumberPagination
from spaces.web.unavailable import ApiAnswers503WhenDown


class PreviewOut(serializers.ModelSerializer):
    url = serializers.CharField(read_only=True, help_text="The preview's own host; only editors may open it.")
    pushed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Preview
        fields = ["branch", "commit", "status", "url", "error", "pushed_by", "created_at", "updated_at"]


class PreviewListApi(ApiAnswers503WhenDown, BaseApi):
    """The space's branch previews (editors and the owner): branch, commit, status, url."""

    @extend_schema(responses=PreviewOut(many=True))
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.OPEN_PREVIEW)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.preview_list(space=space), request, view=self)
        return paginator.get_paginated_response(PreviewOut(page, many=True).data)
