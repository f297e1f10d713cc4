"""The repos room's settings (README "Git", "Configuration"): read from the environment (and the
env file hub/settings.py loads) like every setting, each overridable by a Django setting of the
same name (the tests do). REPOS_DIR and GIT_PUSH_MAX_BYTES are in hub/settings.py (the body
gate reads the latter too)."""
from __future__ import annotations

from functools import lru_cache

import environ
from django.conf import settings

_env = environ.Env()


@lru_cache(maxsize=1)
def _defaults() -> dict:
    return {
        # The git program (its http-backend is found with `git --exec-path`).
        "GIT_BINARY": _env.str("GIT_BINARY", default="git"),
        # A push is answered within this many seconds or git http-backend is stopped.
        "GIT_HTTP_TIMEOUT": _env.int("GIT_HTTP_TIMEOUT", default=600),
    }


def setting(name: str):
    """The value of `name`: Django's setting when one is set, else the environment's."""
    return getattr(settings, name) if hasattr(settings, name) else _defaults()[name]
