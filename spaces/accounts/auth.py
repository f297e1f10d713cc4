"""API token authentication: `Authorization: Bearer dh_...` (design.md §4), and HTTP Basic with
the user name and an API token as the password, the way git and its credential helpers send it."""
from __future__ import annotations

import base64
import binascii

from rest_framework import authentication, exceptions, permissions

from spaces.accounts.models import ApiToken
from spaces.accounts.services import token_authenticate


def bearer_from_header(value: str) -> str | None:
    scheme, _, token = (value or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class BadCredentials(Exception):
    """An Authorization header was sent but names no valid token of that user."""


def basic_token_user(value: str):
    """(user, token) of `Authorization: Basic base64(username:token)`; None without a Basic
    header; BadCredentials when the token is invalid, revoked or not the named user's."""
    scheme, _, encoded = (value or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, raw = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("The Authorization header is not valid Basic credentials.") from None
    token = token_authenticate(raw.strip()) if sep else None
    if token is None or token.user.username.casefold() != username.strip().casefold():
        raise BadCredentials("Use your user name and an API token (dh_...) as the password.")
    return token.user, token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        raw = bearer_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        if raw is None:
            return None
        token = token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("The API token is invalid or revoked.", code="invalid_token")
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class TokenScopeAllows(permissions.BasePermission):
    """A read-scoped token may only read."""

    message = "This API token is read-only; create a write token for this call."

    def has_permission(self, request, view):
        token = request.auth
        if isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ:
            return request.method in permissions.SAFE_METHODS
        return True
