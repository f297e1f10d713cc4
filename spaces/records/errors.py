"""The errors a room raises for a request it cannot do; the HTTP faces turn each into an answer
(spaces/web/errors.py for the API: status, `detail` and `code`)."""
from __future__ import annotations


class ServiceError(Exception):
    """A request that conflicts with the current state (HTTP 409) or is invalid (400)."""

    def __init__(self, message: str, *, code: str, http_status: int = 409):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class AccessError(Exception):
    """A request about access that cannot be done as asked (the API maps it to 400/409)."""

    def __init__(self, message: str, *, code: str, http_status: int = 400):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class RateLimited(Exception):
    """Too many attempts; `retry_after` is the number of seconds until the window ends."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
