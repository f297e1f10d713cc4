"""Space tags: one normal form for every way in (API PATCH, README front matter).

Browse and `?tag=` match tags exactly, so a tag is stored lower-cased, trimmed, with inner
whitespace as '-', made of a safe character set, deduplicated, at most MAX_TAGS of them.
"""
from __future__ import annotations

import re

MAX_TAGS = 20
MAX_TAG_LENGTH = 64  # Space.tags holds CharField(max_length=64)
TAG_RE = re.compile(r"[a-z0-9][a-z0-9._+:-]*")
ALLOWED = "letters, digits, '-', '_', '.', '+' or ':', starting with a letter or digit"


class TagError(ValueError):
    """A value that cannot be a list of tags; the message says why, without the key."""


def normalize_tag(tag: str) -> str:
    return "-".join(tag.strip().lower().split())


def normalize_tags(value) -> list[str]:
    """The tags in normal form, in their first order, or TagError."""
    if not isinstance(value, (list, tuple)):
        raise TagError("must be a list of tags")
    tags: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise TagError("each tag must be a string")
        tag = normalize_tag(item)
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            raise TagError(f"each tag must be 1 to {MAX_TAG_LENGTH} characters long")
        if not TAG_RE.fullmatch(tag):
            shown = tag if len(tag) <= 30 else tag[:29] + "…"
            raise TagError(f"{shown!r} is not a tag: use {ALLOWED}")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise TagError(f"may hold at most {MAX_TAGS} tags")
    return tags
