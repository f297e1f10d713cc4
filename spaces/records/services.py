"""The one writer of a space's status (`space_transition`), and the revision pointers.

Every status change in every room goes through `space_transition`: one conditional UPDATE whose
WHERE holds the allowed sources (status.py), so two writers never both win.
"""
from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.utils import timezone

from spaces.records import events
from spaces.records.models import Revision, Space
from spaces.records.search import SEARCHED_FIELDS, space_search_vector_refresh
from spaces.records.status import SERVING, SpaceStatus, allowed_sources

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


def space_transition(space: Space | int, to: str, *, error: str | None = None,
                     expected: frozenset[str] | set[str] | None = None, **fields) -> bool:
    """Move a space to `to` if the state machine allows it from its current status.

    One conditional UPDATE: a concurrent change that got there first makes this a no-op and
    returns False. `fields` are written in the same UPDATE. `expected` narrows the sources to
    the statuses the caller saw (the crash handler acts only on the state it observed).
    """
    space_id = space if isinstance(space, int) else space.pk
    values = {"status": to, "updated_at": timezone.now(), **fields}
    if error is not None:
        values["error"] = error[:4000]
    sources = allowed_sources(to) if expected is None else allowed_sources(to) & frozenset(expected)
    changed = Space.objects.filter(pk=space_id, status__in=sources).update(**values) == 1
    previous = space.status if isinstance(space, Space) else None
    if changed and isinstance(space, Space):
        for key, value in values.items():
            setattr(space, key, value)
    if changed:
        events.space_status_changed.send(sender=Space, space_id=space_id, previous=previous, status=to)
    return changed


def status_while_building(status: str) -> str:
    """The status while a new revision builds: beside a serving revision RUNNING_BUILDING,
    beside a sleeping one still SLEEPING (it serves again once woken), else BUILDING."""
    if status in SERVING:
        return S.RUNNING_BUILDING
    if status == S.SLEEPING:
        return S.SLEEPING
    return S.BUILDING


def status_keeping_running_revision(status: str) -> str | None:
    """Where a space falls back when a new revision fails, if it has a revision to keep:
    RUNNING while one serves, SLEEPING while it sleeps; None when nothing runs."""
    if status in SERVING:
        return S.RUNNING
    if status == S.SLEEPING:
        return S.SLEEPING
    return None


def make_latest(space: Space, rev: Revision) -> None:
    """`rev` becomes the space's latest revision; older builds still queued or running are
    cancelled (a newer upload supersedes them, design.md §2)."""
    space.revisions.filter(status__in=[R.QUEUED, R.BUILDING], number__lt=rev.number).update(
        status=R.CANCELLED, error=f"superseded by revision {rev.number}", finished_at=timezone.now())
    Space.objects.filter(pk=space.pk).update(latest_revision=rev)


def apply_metadata(space: Space, metadata: dict) -> None:
    updates = {}
    for key, attr in (("title", "title"), ("emoji", "emoji"), ("short_description", "short_description"),
                      ("color_from", "color_from"), ("color_to", "color_to"), ("tags", "tags"),
                      ("readme", "readme")):
        if metadata.get(key):
            updates[attr] = metadata[key]
    if updates:
        Space.objects.filter(pk=space.pk).update(**updates)
        if SEARCHED_FIELDS & set(updates):
            space_search_vector_refresh([space.pk])
