"""Writes of the operations room: after a restore (scripts/restore.sh), bring back what the
archive cannot hold.

An archive holds the database, the snapshots and the static sites; not the images and
containers of the machine it came from. Every space that ran, slept or was starting gets the
revision it ran (or its newest built one) built again from its snapshot, under the same
revision number, and then starts as after an upload. Static spaces need no image: their sites
came back with the archive, and the reconciliation (run by the lifecycle worker at start)
writes their routes. Paused spaces, spaces in an error state and spaces being deleted are left
as they are: a paused space's owner resumes it with a factory rebuild.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from celery import current_app
from django.db import transaction

from spaces.records.models import Revision, Sdk, Space
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
BUILD_TASK = "spaces.tasks.build_revision_task"
LEFT_ALONE = {SpaceStatus.PAUSED, SpaceStatus.DELETING}


@dataclass
class Outcome:
    rebuilding: list[str] = field(default_factory=list)
    static: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)


def _target(space: Space) -> Revision | None:
    if space.running_revision is not None:
        return space.running_revision
    latest = space.latest_revision
    return latest if latest is not None and latest.status == Revision.Status.SUCCEEDED else None


def spaces_rebuild_after_restore() -> Outcome:
    outcome = Outcome()
    spaces = Space.objects.select_related("owner", "running_revision", "latest_revision").order_by("pk")
    for space in spaces:
        name = space.full_name
        target = _target(space)
        if space.status in LEFT_ALONE:
            outcome.left[name] = space.status
        elif target is None:
            outcome.left[name] = f"{space.status}, no revision that built"
        elif space.sdk == Sdk.STATIC:
            outcome.static.append(name)
        elif not target.snapshot_path or not os.path.isdir(target.snapshot_path):
            outcome.left[name] = f"the files of revision {target.number} are not in the archive"
        else:
            with transaction.atomic():
                Revision.objects.filter(pk=target.pk).update(
                    status=Revision.Status.QUEUED, image="", task_id="", heartbeat_at=None, started_at=None,
                    finished_at=None, error="")
                Space.objects.filter(pk=space.pk).update(
                    status=SpaceStatus.BUILDING, running_revision=None, latest_revision=target, error="",
                    sleep_mode="")
                # By name (this room sits above the builds): the worker's task, or eagerly in tests.
                transaction.on_commit(lambda pk=target.pk: current_app.signature(
                    BUILD_TASK, args=[pk], queue="builds").apply_async())
            outcome.rebuilding.append(f"{name} r{target.number}")
    log.info("restore: %d spaces rebuilding, %d static, %d left as they were", len(outcome.rebuilding),
             len(outcome.static), len(outcome.left))
    return outcome
