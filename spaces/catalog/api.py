"""The catalog's JSON API (design.md §4): spaces, revisions, restart and pause.

A view validates its input, calls one selector or service, and serializes the result. Every
view that names a space gets it through `get_space`, i.e. through the one access check.
"""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from spaces.access.selectors import (
    Action,
    Role,
    space_filter,
    space_list_visible_to,
    space_roles,
)
from spaces.access.viewer import get_space
from spaces.accounts import ratelimits
from spaces.accounts.api_base import BaseApi
from spaces.builds.services import space_rebuild
from spaces.catalog.services import revision_create, space_create, space_update
from spaces.community import services as comments
from spaces.lifecycle.deletion import space_delete
from spaces.lifecycle.services import space_pause, space_restart
from spaces.lifecycle.space_errors import space_error_for
from spaces.nodes.services import space_set_hardware
from spaces.nodes.tiers import default_tier
from spaces.records.models import Revision, Sdk, Space, Visibility
from spaces.records.search import DeferredJoinList
from spaces.web.fields import TagsField
from spaces.web.pagination import PageNumberPagination


# ----------------------------------------------------------------------------- serializers
class SpaceOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    url = serializers.CharField()
    revision = serializers.SerializerMethodField()
    running_revision = serializers.SerializerMethodField()
    # The counters spaces.comments keeps in step: no COUNT per space in a list.
    likes = serializers.IntegerField(source="like_count", read_only=True)
    comments = serializers.IntegerField(source="comment_count", read_only=True)
    # Whether the caller likes it: only where the view set `liked` on the row (the detail
    # GET), else left out, so no list pays a query per space for it.
    liked = serializers.BooleanField(read_only=True)
    # The error may quote logs: in full for editors and the owner only. The view passes the
    # caller's role in the context ("role", or "roles" by pk for a list); without it, generic.
    error = serializers.SerializerMethodField()
    # Hardware tiers (spaces/nodes): the owner's choice ("" = the README's suggestion or the
    # default) and the tier the space runs with (the one it was last placed with).
    hardware = serializers.CharField(read_only=True)
    tier = serializers.SerializerMethodField()

    class Meta:
        model = Space
        fields = ["owner", "name", "sdk", "visibility", "status", "url", "title", "emoji",
                  "short_description", "tags", "revision", "running_revision", "error", "likes",
                  "comments", "liked", "sleep_after", "sleep_mode", "last_active_at", "hardware", "tier",
                  "created_at", "updated_at", "allow_force_push"]

    def get_tier(self, obj) -> str:
        return obj.tier or obj.hardware or default_tier().name

    def get_revision(self, obj) -> int | None:
        return obj.latest_revision.number if obj.latest_revision_id else None

    def get_running_revision(self, obj) -> int | None:
        return obj.running_revision.number if obj.running_revision_id else None

    def get_error(self, obj) -> str:
        role = self.context.get("role") or self.context.get("roles", {}).get(obj.pk, Role.NONE)
        return space_error_for(obj, role)



class RevisionOut(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Revision
        fields = ["number", "status", "content_hash", "commit", "message", "error", "created_by", "created_at",
                  "started_at", "finished_at", "factory"]


# ----------------------------------------------------------------------------- spaces
class SpaceListCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=96)
        sdk = serializers.ChoiceField(choices=Sdk.values)
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False)
        title = serializers.CharField(max_length=96, required=False, allow_blank=True)
        short_description = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def get(self, request):
        params = request.query_params
        # An unknown sdk, status or sort is a ValidationError naming it: a 400.
        qs = space_filter(space_list_visible_to(request.user), search=params.get("search", ""),
                          sdk=params.get("sdk", ""), tag=params.get("tag", ""),
                          author=params.get("author", ""), status=params.get("status", ""),
                          sort=params.get("sort", ""))
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(DeferredJoinList(qs), request, view=self)
        roles = space_roles(page, request.user)
        return paginator.get_paginated_response(SpaceOut(page, many=True, context={"roles": roles}).data)

    def post(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Log in or send an API token to create a space.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ratelimits.check_space_create(request, request.user)  # 429; the quotas are 403s in the service
        space = space_create(owner=request.user, **data.validated_data)
        return Response(SpaceOut(space, context={"role": Role.OWNER}).data, status=status.HTTP_201_CREATED)


class SpaceDetailApi(BaseApi):
    class PatchSerializer(serializers.Serializer):
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False)
        title = serializers.CharField(max_length=96, required=False, allow_blank=True)
        short_description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        tags = TagsField(required=False)
        sleep_after = serializers.IntegerField(required=False, min_value=-1)
        allow_force_push = serializers.BooleanField(
            required=False, help_text="owner only: editors may force-push main (each one is recorded)")
        hardware = serializers.CharField(required=False, allow_blank=True, max_length=63)

    def get(self, request, owner, name):
        space, role = get_space(request, owner, name)
        space.liked = comments.like_exists(space=space, user=request.user)
        return Response(SpaceOut(space, context={"role": role}).data)

    def patch(self, request, owner, name):
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unknown = set(request.data) - set(self.PatchSerializer().fields)
        if unknown:
            raise serializers.ValidationError({k: "This field cannot be changed here." for k in sorted(unknown)})
        fields = dict(data.validated_data)
        # The tier is the owner's choice, like visibility (what the owner's quota pays for).
        needs = Action.ADMIN if {"visibility", "hardware", "allow_force_push"} & set(fields) else Action.EDIT
        space, role = get_space(request, owner, name, needs)
        if "hardware" in fields:
            space = space_set_hardware(space=space, hardware=fields.pop("hardware"))
        if fields:
            space = space_update(space=space, **fields)
        return Response(SpaceOut(space, context={"role": role}).data)

    def delete(self, request, owner, name):
        space, role = get_space(request, owner, name, Action.ADMIN)
        space_delete(space=space)
        return Response(SpaceOut(space, context={"role": role}).data, status=status.HTTP_202_ACCEPTED)


class RevisionUploadIn(serializers.Serializer):
    archive = serializers.FileField(help_text="the repo as a .zip or .tar.gz; it becomes one commit on main")
    message = serializers.CharField(required=False, max_length=10_000,
                                    help_text='the commit message (default "Upload <file name>")')


class RevisionListCreateApi(BaseApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.READ_LOGS)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(space.revisions.select_related("created_by"), request, view=self)
        return paginator.get_paginated_response(RevisionOut(page, many=True).data)

    @extend_schema(request={"multipart/form-data": RevisionUploadIn}, responses={202: RevisionOut})
    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.EDIT)
        archive = request.FILES.get("archive")
        if archive is None:
            raise serializers.ValidationError({"archive": "Attach the repo as a .zip or .tar.gz file "
                                                          "in the multipart field 'archive'."})
        message = request.data.get("message") or ""
        if not isinstance(message, str) or len(message) > 10_000:
            raise serializers.ValidationError({"message": "Give the commit message as text "
                                                          "(at most 10000 characters)."})
        rev = revision_create(space=space, archive=archive, created_by=request.user, message=message or None)
        location = f"/api/spaces/{space.owner.username}/{space.name}/revisions/{rev.number}"
        return Response(RevisionOut(rev).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class RevisionDetailApi(BaseApi):
    def get(self, request, owner, name, number):
        space, _ = get_space(request, owner, name, Action.READ_LOGS)
        rev = get_object_or_404(space.revisions.select_related("created_by"), number=number)
        return Response(RevisionOut(rev).data)


class SpaceRestartApi(BaseApi):
    def post(self, request, owner, name):
        space, role = get_space(request, owner, name, Action.EDIT)
        factory = request.query_params.get("factory") in ("1", "true")
        if factory:
            space_rebuild(space=space, by=request.user)
        else:
            space_restart(space=space, by=request.user)
        space.refresh_from_db()
        return Response(SpaceOut(space, context={"role": role}).data, status=status.HTTP_202_ACCEPTED)


class SpacePauseApi(BaseApi):
    def post(self, request, owner, name):
        space, role = get_space(request, owner, name, Action.ADMIN)
        space_pause(space=space)
        return Response(SpaceOut(space, context={"role": role}).data, status=status.HTTP_202_ACCEPTED)
