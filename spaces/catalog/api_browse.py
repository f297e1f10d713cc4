"""GET /api/users/<username>: a user's public profile (users are public; their private spaces
count only for callers who may see them)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from rest_framework.response import Response

from spaces.access.selectors import space_list_visible_to
from spaces.accounts.api_base import BaseApi


class UserDetailApi(BaseApi):
    def get(self, request, username):
        user = get_object_or_404(get_user_model(), username__iexact=username)
        visible = space_list_visible_to(request.user).filter(owner=user).count()
        return Response({"username": user.username, "date_joined": user.date_joined, "spaces": visible})
