"""API token authentication: `Authorization: Bearer dh_...` (design.md §4)."""
from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from spaces.accounts.models import ApiToken
from spaces.accounts.services import token_authenticate


def bearer_from_header(value: str) -> str | None:
    scheme, _, token = (value or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


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
