"""Branch previews' rules that sit low (issue 10 item 8): their settings, their host labels,
and what a push may add. The push hook (spaces/repos) calls `preview_refusal` before a ref
moves; the previews room (spaces/previews) builds, runs and removes them.

A preview's host label fits DNS (at most 63 characters): ``<space label[:40]>--<branch
slug[:14]>-<hash6>``, where the hash is of the space's label and the branch name, so two
branches whose slugs agree (``feat/a`` and ``feat-a``) still get two labels. Labels are kept
in HostLabel like every space's, so none is ever issued twice.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from functools import lru_cache

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from spaces.records.models import HostLabel, Preview, Space

_env = environ.Env()
MAIN = "main"


@lru_cache(maxsize=1)
def _defaults() -> dict:
    values = {
        # Previews per space; a push of one more new branch is refused with a `remote:` line.
        "PREVIEW_MAX_PER_SPACE": _env.int("PREVIEW_MAX_PER_SPACE", default=3),
        # Seconds a preview may sit idle before its container is stopped (the next request wakes it).
        "PREVIEW_SLEEP_AFTER": _env.int("PREVIEW_SLEEP_AFTER", default=600),
    }
    if values["PREVIEW_MAX_PER_SPACE"] < 0 or values["PREVIEW_SLEEP_AFTER"] < 5:
        raise ImproperlyConfigured("PREVIEW_MAX_PER_SPACE must be >= 0 (0: no previews) and "
                                   "PREVIEW_SLEEP_AFTER at least 5 seconds")
    return values


def setting(name: str):
    """The value of `name`: Django's setting when one is set, else the environment's."""
    return getattr(settings, name) if hasattr(settings, name) else _defaults()[name]


def branch_slug(branch: str) -> str:
    """The DNS-safe part of a branch name: lowercase letters, digits and single dashes."""
    return re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")


def preview_label_for(space: Space, branch: str) -> str:
    """A label no host ever had, for `branch` of `space` (see the module docstring)."""
    base = f"{space.label[:40].rstrip('-')}--{branch_slug(branch)[:14].strip('-') or 'branch'}"
    digest = hashlib.sha256(f"{space.label}\0{branch}".encode()).hexdigest()
    for attempt in range(10):
        candidate = f"{base}-{digest[attempt * 6:attempt * 6 + 6]}"
        if not HostLabel.objects.filter(label=candidate).exists():
            return candidate
    return f"{base}-{secrets.token_hex(3)}"


def preview_refusal(space: Space, branch: str, *, also=()) -> str | None:
    """Why a push may not create (or update) the preview of `branch`, or None when it may.

    For the push hook, before the ref moves: a deletion is always allowed (do not call this
    for one), `main` is never a preview. An existing preview may always be updated; a new one
    only while the space has fewer than PREVIEW_MAX_PER_SPACE, counting the new branches `also`
    that the same push adds.
    """
    if branch == MAIN:
        return None
    if not branch_slug(branch):
        return (f"branch '{branch}' cannot be previewed: its name needs a letter or digit to make a host name "
                "of; use another branch name")
    existing = list(Preview.objects.filter(space=space).values_list("branch", flat=True))
    existing += [b for b in also if b not in existing and b != branch]
    if branch in existing:
        return None
    limit = setting("PREVIEW_MAX_PER_SPACE")
    if len(existing) >= limit:
        names = ", ".join(sorted(existing)) or "none"
        return (f"branch '{branch}' would be preview number {len(existing) + 1} of this space, and at most {limit} "
                f"may exist (PREVIEW_MAX_PER_SPACE); the previews are: {names}. Delete one first, for example "
                f"`git push origin :{min(existing, default='old-branch')}`")
    return None
