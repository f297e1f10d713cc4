"""API for who may enter a space: collaborators and share links (owner only, design.md §4, §6)."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.response import Response

from spaces.access import services as access
from spaces.access.models import Collaborator, ShareLink
from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.web.pagination import PageNumberPagination


class CollaboratorOut(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Collaborator
        fields = ["username", "role", "created_at"]


class CollaboratorIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Collaborator.Role.values)


class ShareLinkOut(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = ShareLink
        fields = ["id", "note", "created_by", "created_at", "expires_at", "max_uses", "use_count",
                  "last_used_at", "revoked_at"]


class ShareLinkIn(serializers.Serializer):
    expires_in_days = serializers.FloatField(required=False, allow_null=True, min_value=0.001,
                                             max_value=access.SHARE_MAX_DAYS)
    max_uses = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                        max_value=access.SHARE_MAX_USES)
    note = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


def _paginated(request, view, queryset, serializer):
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class CollaboratorListApi(BaseApi):
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        qs = space.collaborators.select_related("user").order_by("user__username")
        return _paginated(request, self, qs, CollaboratorOut)

    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        data = CollaboratorIn(data=request.data)
        data.is_valid(raise_exception=True)
        collab, created = access.collaborator_set(space=space, **data.validated_data)
        return Response(CollaboratorOut(collab).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CollaboratorDetailApi(BaseApi):
    def delete(self, request, owner, name, username):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        if not access.collaborator_remove(space=space, username=username):
            return Response({"detail": f"{username} is not a collaborator of this space.", "code": "not_found"},
                            status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ShareLinkListApi(BaseApi):
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        qs = space.share_links.select_related("created_by").order_by("-created_at", "-id")
        return _paginated(request, self, qs, ShareLinkOut)

    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        data = ShareLinkIn(data=request.data)
        data.is_valid(raise_exception=True)
        link, raw = access.share_link_create(space=space, by=request.user, **data.validated_data)
        # The URL holds the token: it is in this answer only (only its hash is stored).
        return Response({**ShareLinkOut(link).data, "url": access.share_link_url(raw)}, status=status.HTTP_201_CREATED)


class ShareLinkDetailApi(BaseApi):
    def get(self, request, owner, name, link_id):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        return Response(ShareLinkOut(get_object_or_404(space.share_links, pk=link_id)).data)

    def delete(self, request, owner, name, link_id):
        space, _ = get_space(request, owner, name, Action.ADMIN)
        access.share_link_revoke(link=get_object_or_404(space.share_links, pk=link_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
