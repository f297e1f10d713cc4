"""Answers in the shape Hugging Face's clients parse: `{"error": ...}` and `X-Error-Code`."""
from __future__ import annotations

from django.http import JsonResponse

NOT_FOUND = "Repository not found."
# huggingface_hub reads a 401 with this message as a bad token, not as a missing repository.
BAD_TOKEN = "Invalid credentials in Authorization header"


class HfError(Exception):
    """An answer in Hugging Face's shape: status, message, and X-Error-Code when the client
    should raise a typed error (RevisionNotFound, EntryNotFound)."""

    def __init__(self, status: int, message: str, *, error_code: str = "", code: str = ""):
        super().__init__(message)
        self.status, self.message, self.error_code, self.code = status, message, error_code, code


def hf_error(status: int, message: str, *, error_code: str = "", code: str = "", headers=None) -> JsonResponse:
    body = {"error": message}
    if code:
        body["code"] = code
    resp = JsonResponse(body, status=status)
    if error_code:
        resp["X-Error-Code"] = error_code
    for key, value in (headers or {}).items():
        resp[key] = value
    return resp


def not_found() -> JsonResponse:
    return hf_error(404, NOT_FOUND, error_code="RepoNotFound", code="not_found")


def bad_request(field: str, message: str) -> HfError:
    return HfError(400, f"{field}: {message}", code="invalid")


def revision_missing(rev: str) -> HfError:
    return HfError(404, f"Revision not found: {rev}.", error_code="RevisionNotFound", code="revision_not_found")


def entry_missing(path: str) -> HfError:
    return HfError(404, f"Entry not found: {path}.", error_code="EntryNotFound", code="file_missing")
