"""Rate limits of the account endpoints: login, sign-up and token creation (design.md §4: 429).

Counters are django-ratelimit's fixed windows in the cache (Redis), so they hold across hub
processes. The page and the API call of one action share a counter (same group), so switching
between them gains nothing. Every check counts the attempt it guards, before the work: a
failed login counts as much as a good one. Rates are settings (hub/settings.py) read at each
call. The client address is REMOTE_ADDR (django-ratelimit's default): the hub never reads
X-Forwarded-For itself, see README "Accounts and API tokens".

A view calls a check_* function and turns RateLimited into its 429: the API through
spaces.api_errors (JSON code "rate_limited"), a page by re-rendering its form with the message.
Both send Retry-After.
"""
from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage


class RateLimited(Exception):
    """Too many attempts; `retry_after` is the number of seconds until the window ends."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def hit(request, *, group: str, rate: str, key) -> None:
    """Count one attempt in `group` (key: "ip", or a callable (group, request) -> str); raise
    RateLimited once the count is over `rate`."""
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage is not None and usage["should_limit"]:
        # time_left is -1 when the cache could not be reached (django-ratelimit then fails
        # closed); a client still needs a positive wait.
        wait = max(1, usage["time_left"])
        raise RateLimited(f"Too many attempts; try again in {_seconds(wait)}.", retry_after=wait)


def check_login(request, username: str) -> None:
    """Per client address, and per username (any case) so that many addresses cannot take
    turns guessing one account's password."""
    hit(request, group="login:ip", rate=settings.LOGIN_RATE_PER_IP, key="ip")
    username = (username or "").strip().lower()
    if username:
        hit(request, group="login:username", rate=settings.LOGIN_RATE_PER_USERNAME,
            key=lambda group, request: username)


def check_signup(request) -> None:
    hit(request, group="signup:ip", rate=settings.SIGNUP_RATE_PER_IP, key="ip")


def check_space_create(request, user) -> None:
    """Creating spaces, per user: each create writes a route and reloads the proxy."""
    hit(request, group="space-create:user", rate=settings.SPACE_CREATE_RATE_PER_USER,
        key=lambda group, request: str(user.pk))


def check_token_create(request, user) -> None:
    hit(request, group="token-create:user", rate=settings.TOKEN_CREATE_RATE_PER_USER,
        key=lambda group, request: str(user.pk))


def _seconds(wait: int) -> str:
    if wait < 120:
        return f"{wait} second{'s' if wait != 1 else ''}"
    return f"{-(-wait // 60)} minutes"
