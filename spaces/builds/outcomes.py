"""How a build ends: the revision's final status, and what a failed build does to its space.

Both the build (services.py) and the lease sweep (leases.py) end builds.
"""
from __future__ import annotations

from django.utils import timezone

from spaces.lifecycle import logs
from spaces.records import events
from spaces.records.models import Revision, Space
from spaces.records.services import space_transition, status_keeping_running_revision
from spaces.records.status import SpaceStatus

S = SpaceStatus
R = Revision.Status


def finish_revision(rev: Revision, status: str, *, error: str = "", image: str = "",
                     lease: str | None = None) -> bool:
    """End a building revision. With `lease`, only while that lease still holds it: a worker
    that lost its lease (its revision was retried elsewhere) must not write over the retry."""
    text, _ = logs.read(logs.build_key(rev.pk))
    rows = Revision.objects.filter(pk=rev.pk, status=R.BUILDING)
    if lease is not None:
        rows = rows.filter(task_id=lease)
    done = rows.update(status=status, error=error[:4000], image=image, finished_at=timezone.now(),
                       build_log=text.decode("utf-8", "replace"))
    if done == 1:
        events.revision_finished.send(sender=Revision, revision_id=rev.pk, status=status)
    return done == 1


def space_build_failed(space: Space, rev: Revision, message: str) -> None:
    space.refresh_from_db()
    if space.latest_revision_id != rev.pk:
        return  # an older build failing says nothing about the space now
    fallback = status_keeping_running_revision(space.status)
    if fallback:
        space_transition(space, fallback, error=f"revision {rev.number} failed to build: {message}")
    else:
        space_transition(space, S.BUILD_ERROR, error=message)
