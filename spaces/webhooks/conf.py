"""The webhooks room's settings (README "Webhooks", "Configuration"): read from the environment
(and the env file hub/settings.py loads) like every setting, each overridable by a Django
setting of the same name (the tests do). A malformed value stops the process with its name."""
from __future__ import annotations

import ipaddress
from functools import lru_cache

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()


@lru_cache(maxsize=1)
def _defaults() -> dict:
    try:
        cidrs = [str(ipaddress.ip_network(c.strip(), strict=False))
                 for c in _env.list("WEBHOOK_ALLOW_CIDRS", default=[]) if c.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOW_CIDRS: {exc}") from None
    return {
        # Non-public addresses webhooks may go to (loopback, private, ... are refused otherwise).
        "WEBHOOK_ALLOW_CIDRS": cidrs,
        "WEBHOOK_TIMEOUT": _env.float("WEBHOOK_TIMEOUT", default=10.0),        # one attempt, all in
        "WEBHOOK_MAX_ATTEMPTS": _env.int("WEBHOOK_MAX_ATTEMPTS", default=5),
        "WEBHOOK_RETRY_BASE_SECONDS": _env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10.0),  # x2 per retry
        "WEBHOOK_DELIVERY_LOG_SIZE": _env.int("WEBHOOK_DELIVERY_LOG_SIZE", default=50),  # rows per webhook
        "WEBHOOK_MAX_PER_SPACE": _env.int("WEBHOOK_MAX_PER_SPACE", default=10),
    }


def setting(name: str):
    """The value of `name`: Django's setting when one is set, else the environment's."""
    return getattr(settings, name) if hasattr(settings, name) else _defaults()[name]
