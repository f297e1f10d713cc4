"""The API of history.py: POST .../revisions/<n>/rollback and POST .../duplicate."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response

from spaces.access.selectors import Action, Role
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.catalog.api import RevisionOut, SpaceOut
from spaces.catalog.history import space_duplicate, space_rollback
from spaces.records.models import Visibility


class RevisionRollbackApi(BaseApi):
    @extend_schema(operation_id="space_revision_rollback", request=None, responses={
        202: OpenApiResponse(RevisionOut, description="the new revision restoring that one's files: started "
                             "from the kept image (status succeeded) or queued to build"),
        409: OpenApiResponse(description="the revision did not build and run (code `not_runnable`)")})
    def post(self, request, owner, name, number):
        space, _ = get_space(request, owner, name, Action.EDIT)
        revision = get_object_or_404(space.revisions, number=number)
        new = space_rollback(space=space, revision=revision, by=request.user)
        location = f"/api/spaces/{space.owner.username}/{space.name}/revisions/{new.number}"
        return Response(RevisionOut(new).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class SpaceDuplicateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=96)
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False)
        title = serializers.CharField(max_length=96, required=False, allow_blank=True)

    @extend_schema(operation_id="space_duplicate", request=InputSerializer, responses={
        202: OpenApiResponse(SpaceOut, description="the copy, under the caller; its first build is queued. "
                             "Secrets are copied by name only: set their values again.")})
    def post(self, request, owner, name):
        # First the access check (a private space is 404 to anyone who may not see it), then the login.
        source, _ = get_space(request, owner, name, Action.READ_FILES)
        if not request.user.is_authenticated:
            raise NotAuthenticated("Log in or send an API token to duplicate a space.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        copy = space_duplicate(source=source, owner=request.user, name=data.validated_data["name"],
                               visibility=data.validated_data.get("visibility", source.visibility),
                               title=data.validated_data.get("title", ""))
        return Response(SpaceOut(copy, context={"role": Role.OWNER}).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/spaces/{copy.owner.username}/{copy.name}"})
