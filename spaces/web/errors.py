"""Every API error is {"detail": "<human sentence>", "code": "<machine word>"} (design.md §4)."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from runner.exceptions import ArchiveError
from spaces.records.errors import AccessError, RateLimited, ServiceError


def _first_message(detail) -> tuple[str, str]:
    """Flatten DRF's nested detail into one sentence that names the field."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            msg, code = _first_message(value)
            return (msg if field in ("non_field_errors", "detail") else f"{field}: {msg}"), code
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail), getattr(detail, "code", "invalid") or "invalid"


def exception_handler(exc, context):
    if isinstance(exc, ArchiveError):
        return Response({"detail": str(exc), "code": exc.code}, status=exc.http_status)
    if isinstance(exc, (ServiceError, AccessError)):
        return Response({"detail": str(exc), "code": exc.code}, status=exc.http_status)
    if isinstance(exc, RateLimited):
        return Response({"detail": str(exc), "code": "rate_limited"}, status=status.HTTP_429_TOO_MANY_REQUESTS,
                        headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        return Response({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        message, code = _first_message(exc.detail)
        body = {"detail": message, "code": code}
        if isinstance(exc, exceptions.ValidationError):
            body["errors"] = exc.detail
        response.data = body
    return response
