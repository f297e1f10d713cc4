"""The JSON API under /api/ (design.md §4): one APIView per operation, thin.

A view validates its input, calls one selector or service, and serializes the result. Every
view that names a space gets it through `get_space`, i.e. through the one access check.
"""
from __future__ import annotations

from django.contrib.auth import authenticate
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django_ratelimit.core import is_ratelimited
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, Throttled
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .api_pagination import PageNumberPagination
from .auth import TokenScopeAllows
from .models import ApiToken, Revision, Sdk, Space, Visibility
from .selectors import Action, Role, can, space_filter, space_get_for_viewer, space_list_annotated


def get_space(request, owner: str, name: str, action: Action = Action.VIEW) -> tuple[Space, Role]:
    """The space if the caller may see it (else 404), and may do `action` (else 403/401)."""
    space, role = space_get_for_viewer(owner=owner, name=name, user=request.user)
    if not can(role, action, user=request.user, space=space):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Log in or send an API token to do this.")
        raise PermissionDenied("You may see this space but not do this.")
    return space, role


def rate_limited(request, group: str, rate: str, key: str = "ip") -> None:
    if is_ratelimited(request, group=group, key=key, rate=rate, increment=True):
        raise Throttled(wait=60, detail="Too many attempts; wait a minute and try again.")


class BaseApi(APIView):
    permission_classes = [TokenScopeAllows]


# ----------------------------------------------------------------------------- serializers
class SpaceOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    url = serializers.CharField()
    revision = serializers.SerializerMethodField()
    running_revision = serializers.SerializerMethodField()
    likes = serializers.SerializerMethodField()

    class Meta:
        model = Space
        fields = ["owner", "name", "sdk", "visibility", "status", "url", "title", "emoji",
                  "short_description", "tags", "revision", "running_revision", "error", "likes",
                  "sleep_after", "created_at", "updated_at"]

    def get_revision(self, obj) -> int | None:
        return obj.latest_revision.number if obj.latest_revision_id else None

    def get_running_revision(self, obj) -> int | None:
        return obj.running_revision.number if obj.running_revision_id else None

    def get_likes(self, obj) -> int:
        count = getattr(obj, "like_count", None)
        return count if count is not None else obj.likes.count()


class RevisionOut(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Revision
        fields = ["number", "status", "content_hash", "error", "created_by", "created_at", "started_at",
                  "finished_at", "factory"]


# ----------------------------------------------------------------------------- accounts
class UserCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=39)
        password = serializers.CharField(max_length=128)
        email = serializers.EmailField(required=False, allow_blank=True)

    def post(self, request):
        rate_limited(request, "signup", "10/h")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(**data.validated_data)
        return Response({"username": user.username, "email": user.email}, status=status.HTTP_201_CREATED)


class TokenCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128)
        name = serializers.CharField(max_length=100, required=False, allow_blank=True)
        scope = serializers.ChoiceField(choices=ApiToken.Scope.values, required=False)

    def post(self, request):
        rate_limited(request, "token", "20/m")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, username=data.validated_data["username"],
                            password=data.validated_data["password"])
        if user is None:
            raise NotAuthenticated("Wrong username or password.")
        token, raw = services.token_create(user=user, name=data.validated_data.get("name", ""),
                                           scope=data.validated_data.get("scope", ApiToken.Scope.WRITE))
        return Response({"token": raw, "name": token.name, "scope": token.scope}, status=status.HTTP_201_CREATED)


# ----------------------------------------------------------------------------- spaces
SORTS = {"recent": ["-updated_at", "-pk"], "likes": ["-like_count", "-updated_at"],
         "trending": ["-recent_likes", "-like_count", "-updated_at"]}


class SpaceListCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=96)
        sdk = serializers.ChoiceField(choices=Sdk.values)
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False)
        title = serializers.CharField(max_length=96, required=False, allow_blank=True)
        short_description = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def get(self, request):
        qs = space_list_annotated(request.user)
        params = request.query_params
        qs = space_filter(qs, search=params.get("search", "").strip(), sdk=params.get("sdk", ""),
                          tag=params.get("tag", ""), author=params.get("author", ""),
                          status=params.get("status", ""))
        sort = params.get("sort", "trending")
        if sort not in SORTS:
            raise serializers.ValidationError({"sort": "Use trending, likes or recent."})
        if sort == "trending":
            from datetime import timedelta

            from django.utils import timezone

            week = timezone.now() - timedelta(days=7)
            qs = qs.annotate(recent_likes=Count("likes", filter=Q(likes__created_at__gte=week), distinct=True))
        qs = qs.order_by(*SORTS[sort])
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs.select_related("running_revision"), request, view=self)
        return paginator.get_paginated_response(SpaceOut(page, many=True).data)

    def post(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Log in or send an API token to create a space.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        space = services.space_create(owner=request.user, **data.validated_data)
        return Response(SpaceOut(space).data, status=status.HTTP_201_CREATED)


class SpaceDetailApi(BaseApi):
    class PatchSerializer(serializers.Serializer):
        visibility = serializers.ChoiceField(choices=Visibility.values, required=False)
        title = serializers.CharField(max_length=96, required=False, allow_blank=True)
        short_description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        tags = serializers.ListField(child=serializers.CharField(max_length=64), max_length=20, required=False)
        sleep_after = serializers.IntegerField(required=False, min_value=-1)

    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name)
        return Response(SpaceOut(space).data)

    def patch(self, request, owner, name):
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unknown = set(request.data) - set(self.PatchSerializer().fields)
        if unknown:
            raise serializers.ValidationError({k: "This field cannot be changed here." for k in sorted(unknown)})
        needs = Action.ADMIN if "visibility" in data.validated_data else Action.EDIT
        space, _ = get_space(request, owner, name, needs)
        space = services.space_update(space=space, **data.validated_data)
        return Response(SpaceOut(space).data)

    def delete(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        services.space_delete(space=space)
        return Response(SpaceOut(space).data, status=status.HTTP_202_ACCEPTED)


class RevisionListCreateApi(BaseApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.READ_LOGS)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(space.revisions.select_related("created_by"), request, view=self)
        return paginator.get_paginated_response(RevisionOut(page, many=True).data)

    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.EDIT)
        archive = request.FILES.get("archive")
        if archive is None:
            raise serializers.ValidationError({"archive": "Attach the repo as a .zip or .tar.gz file "
                                                          "in the multipart field 'archive'."})
        rev = services.revision_create(space=space, archive=archive, created_by=request.user)
        location = f"/api/spaces/{space.owner.username}/{space.name}/revisions/{rev.number}"
        return Response(RevisionOut(rev).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class RevisionDetailApi(BaseApi):
    def get(self, request, owner, name, number):
        space, _ = get_space(request, owner, name, Action.READ_LOGS)
        rev = get_object_or_404(space.revisions.select_related("created_by"), number=number)
        return Response(RevisionOut(rev).data)


class SpaceRestartApi(BaseApi):
    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.EDIT)
        factory = request.query_params.get("factory") in ("1", "true")
        services.space_restart(space=space, factory=factory, by=request.user)
        space.refresh_from_db()
        return Response(SpaceOut(space).data, status=status.HTTP_202_ACCEPTED)


class SpacePauseApi(BaseApi):
    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        services.space_pause(space=space)
        return Response(SpaceOut(space).data, status=status.HTTP_202_ACCEPTED)


class MeApi(BaseApi):
    permission_classes = [IsAuthenticated, TokenScopeAllows]

    def get(self, request):
        return Response({"username": request.user.username, "email": request.user.email})
