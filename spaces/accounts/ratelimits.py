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

import hashlib

from django.conf import settings
from django.core.cache import cache
from django_ratelimit.core import get_usage

from spaces.records.errors import RateLimited


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
    """Three counters (issue 15, #12), so that guessing is bounded and a stranger cannot lock
    the owner out:

    * per client address (LOGIN_RATE_PER_IP), whatever the user name;
    * per user name and address (LOGIN_RATE_PER_USERNAME_AND_IP);
    * per user name (any case) across addresses (LOGIN_RATE_PER_USERNAME), so that many
      addresses cannot take turns guessing one password -- except from an address this
      account logged in from before (remember_login_address): a stranger who exhausts this
      counter locks out only addresses the owner has never used.
    """
    hit(request, group="login:ip", rate=settings.LOGIN_RATE_PER_IP, key="ip")
    username = (username or "").strip().lower()
    if not username:
        return
    hit(request, group="login:username-ip", rate=settings.LOGIN_RATE_PER_USERNAME_AND_IP,
        key=lambda group, request: _name_and_address(request, username))
    if not _known_address(request, username):
        hit(request, group="login:username", rate=settings.LOGIN_RATE_PER_USERNAME,
            key=lambda group, request: username)


KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600


def _name_and_address(request, username: str) -> str:
    # Hashed: the cache key holds neither the name nor the address in clear.
    raw = f"{username.strip().lower()}|{request.META.get('REMOTE_ADDR', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _known_key(request, username: str) -> str:
    # Next to django-ratelimit's counters (same prefix): one family of keys to inspect or clear.
    prefix = getattr(settings, "RATELIMIT_CACHE_PREFIX", "rl:")
    return f"{prefix}login-known:{_name_and_address(request, username)}"


def remember_login_address(request, username: str) -> None:
    """After a successful login: this address is the account owner's for KNOWN_ADDRESS_SECONDS."""
    try:
        cache.set(_known_key(request, username), 1, KNOWN_ADDRESS_SECONDS)
    except Exception:  # the login itself has succeeded; this only loosens a limit later
        pass


def _known_address(request, username: str) -> bool:
    try:
        return cache.get(_known_key(request, username)) is not None
    except Exception:
        return False


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




def rate_limited(request, group: str, rate: str, key: str = "ip") -> None:
    """Count one attempt; over `rate`, a 429 {"code": "rate_limited"} with Retry-After."""
    hit(request, group=group, rate=rate, key=key)
