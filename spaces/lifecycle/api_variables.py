"""/api/spaces/<owner>/<name>/variables[/<key>] and /secrets[/<key>] (design.md §4).

Editors and the owner only, reading included (design.md §6). Variables are listed with their
values; secrets are write-only: every answer about a secret holds its key and when it changed,
never its value.
"""
from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.response import Response

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.lifecycle import variables
from spaces.lifecycle.models import SpaceVariable
from spaces.web.pagination import PageNumberPagination


class VariableOut(serializers.ModelSerializer):
    class Meta:
        model = SpaceVariable
        fields = ["key", "value", "updated_at"]


class SecretOut(serializers.ModelSerializer):
    class Meta:
        model = SpaceVariable
        fields = ["key", "updated_at"]


class ValueIn(serializers.Serializer):
    # No length limit here: the service answers an oversized value with 413 (design.md §4).
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)


class _KindMixin:
    """`secret` picks the kind; the secrets views inherit everything but the serializer."""

    secret = False
    out = VariableOut


class VariableListApi(_KindMixin, BaseApi):
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.EDIT)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(variables.variable_list(space=space, secret=self.secret), request,
                                           view=self)
        return paginator.get_paginated_response(self.out(page, many=True).data)


class VariableDetailApi(_KindMixin, BaseApi):
    def get(self, request, owner, name, key):
        space, _ = get_space(request, owner, name, Action.EDIT)
        return Response(self.out(variables.variable_get(space=space, key=key, secret=self.secret)).data)

    def put(self, request, owner, name, key):
        space, _ = get_space(request, owner, name, Action.EDIT)
        data = ValueIn(data=request.data)
        data.is_valid(raise_exception=True)
        change = variables.variable_set(space=space, key=key, value=data.validated_data["value"],
                                        secret=self.secret, by=request.user)
        return Response(self.out(change.variable).data,
                        status=status.HTTP_201_CREATED if change.created else status.HTTP_200_OK)

    def delete(self, request, owner, name, key):
        space, _ = get_space(request, owner, name, Action.EDIT)
        variables.variable_delete(space=space, key=key, secret=self.secret, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecretListApi(VariableListApi):
    secret = True
    out = SecretOut


class SecretDetailApi(VariableDetailApi):
    secret = True
    out = SecretOut
