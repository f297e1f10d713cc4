"""The base of every /hf view: Demohub's authentication and access check, Hugging Face's answers.

What the clients parse (research/hf-hub-api.md, "Pitfalls"): a JSON body `{"error": "..."}`
(huggingface_hub shows it in HfHubHTTPError), and on a 404 `X-Error-Code: RepoNotFound`, which
turns it into RepositoryNotFoundError. The 404 is the same for a missing space and one the caller
may not see (design.md §6). A lost database or broker answers 503 with Retry-After, which the
clients retry.
"""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, permissions
from drf_spectacular.openapi import AutoSchema
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from runner.exceptions import ArchiveError
from spaces.accounts.models import ApiToken
from spaces.hfapi.answers import BAD_TOKEN, HfError, hf_error, not_found
from spaces.records.errors import AccessError, RateLimited, ServiceError
from spaces.repos.store import RepoError, RepoNotFound
from spaces.web.unavailable import DOWN, RETRY_AFTER

log = logging.getLogger(__name__)

def _message(detail) -> str:
    """One sentence naming the field, from DRF's or Django's nested details."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _message(value)
            return inner if field in ("non_field_errors", "detail", "__all__") else f"{field}: {inner}"
    if isinstance(detail, (list, tuple)) and detail:
        return _message(detail[0])
    return str(detail)


class TokenMayRead(permissions.BasePermission):
    """A read-scoped token may only read; views whose POST only reads (paths-info) say so."""

    message = "This API token is read-only; create a write token for this call."

    def has_permission(self, request, view):
        token = request.auth
        if isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ:
            return request.method in permissions.SAFE_METHODS or getattr(view, "post_only_reads", False)
        return True


class NotInTheSchema(AutoSchema):
    """The /hf face is Hugging Face's API, documented by Hugging Face, not part of Demohub's
    OpenAPI schema (/api/schema describes /api/ only)."""

    def is_excluded(self) -> bool:
        return True


class HfApiView(APIView):
    """Every /hf view: errors as the Hugging Face clients parse them."""

    schema = NotInTheSchema()
    permission_classes = [TokenMayRead]
    # The clients never read a browsable API; JSON only.
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc):
        resp = answer_for(exc)
        if resp is None:
            return super().handle_exception(exc)
        return resp


def answer_for(exc) -> JsonResponse | None:
    """The Hugging Face-shaped answer for an exception a view raised (None: not ours)."""
    if isinstance(exc, DOWN):
        log.warning("hf: %s does not answer: %s", type(exc).__name__, exc)
        return hf_error(503, "The hub's database or queue does not answer right now; try again shortly.",
                        code="unavailable", headers={"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"})
    if isinstance(exc, HfError):
        return hf_error(exc.status, exc.message, error_code=exc.error_code, code=exc.code)
    if isinstance(exc, Http404):
        return not_found()
    if isinstance(exc, exceptions.AuthenticationFailed):
        return hf_error(401, BAD_TOKEN, code="invalid_token", headers={"X-Error-Message": BAD_TOKEN})
    if isinstance(exc, exceptions.NotAuthenticated):
        return hf_error(401, "Send a Demohub API token (Authorization: Bearer dh_...) to do this.",
                        code="not_authenticated")
    if isinstance(exc, (exceptions.PermissionDenied, DjangoPermissionDenied)):
        detail = exc.detail if isinstance(exc, exceptions.PermissionDenied) else "You may not do this."
        return hf_error(403, str(detail), code="permission_denied")
    if isinstance(exc, RepoNotFound):
        return hf_error(404, str(exc), error_code="RevisionNotFound", code=exc.code)
    if isinstance(exc, RepoError):
        # A refused or conflicting commit: the hub's sentence, which the client shows as it is.
        return hf_error(exc.http_status or 422, str(exc), code=exc.code)
    if isinstance(exc, (ServiceError, AccessError, ArchiveError)):
        return hf_error(exc.http_status, str(exc), code=exc.code)
    if isinstance(exc, RateLimited):
        return hf_error(429, str(exc), code="rate_limited", headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return hf_error(400, _message(detail), code="invalid")
    if isinstance(exc, exceptions.APIException):
        return hf_error(exc.status_code, _message(exc.detail), code=getattr(exc, "default_code", "error"))
    return None
