"""Account calls of the JSON API (design.md §4): sign-up, API tokens.

POST /api/users and POST /api/token take no credentials and are rate limited
(spaces/accounts/ratelimits.py, shared with the login and sign-up pages). GET /api/tokens and
DELETE /api/tokens/<id> act on the caller's own tokens only and never return a secret.
"""
from __future__ import annotations

from django.contrib.auth import authenticate
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from spaces.accounts import ratelimits
from spaces.accounts.api_base import BaseApi
from spaces.accounts.auth import TokenScopeAllows
from spaces.accounts.models import ApiToken
from spaces.accounts.selectors import token_list_for_user
from spaces.accounts.services import signup_ensure_open, token_create, token_revoke, user_create
from spaces.web.pagination import PageNumberPagination


class TokenOut(serializers.ModelSerializer):
    """A token as listed: never its secret, only the hint (its first characters)."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "scope", "hint", "created_at", "last_used_at", "revoked_at"]


class UserCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=39)
        password = serializers.CharField(max_length=128)
        email = serializers.EmailField(required=False, allow_blank=True)

    def post(self, request):
        signup_ensure_open()
        ratelimits.check_signup(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_create(**data.validated_data)
        return Response({"username": user.username, "email": user.email}, status=status.HTTP_201_CREATED)


class TokenCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128)
        name = serializers.CharField(max_length=100, required=False, allow_blank=True)
        scope = serializers.ChoiceField(choices=ApiToken.Scope.values, required=False)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # A login: counted before the password is checked, so failures count too.
        ratelimits.check_login(request, data.validated_data["username"])
        user = authenticate(request, username=data.validated_data["username"],
                            password=data.validated_data["password"])
        if user is None:
            raise NotAuthenticated("Wrong username or password.")
        ratelimits.remember_login_address(request, user.username)
        ratelimits.check_token_create(request, user)
        token, raw = token_create(user=user, name=data.validated_data.get("name", ""),
                                           scope=data.validated_data.get("scope", ApiToken.Scope.WRITE))
        return Response({"token": raw, "name": token.name, "scope": token.scope}, status=status.HTTP_201_CREATED)


class TokenListApi(BaseApi):
    permission_classes = [IsAuthenticated, TokenScopeAllows]

    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(token_list_for_user(request.user), request, view=self)
        return paginator.get_paginated_response(TokenOut(page, many=True).data)


class TokenDetailApi(BaseApi):
    # A read token may list tokens but not revoke one (TokenScopeAllows).
    permission_classes = [IsAuthenticated, TokenScopeAllows]

    def delete(self, request, token_id):
        token_revoke(user=request.user, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)




class MeApi(BaseApi):
    permission_classes = [IsAuthenticated, TokenScopeAllows]

    def get(self, request):
        return Response({"username": request.user.username, "email": request.user.email})
