"""Owner actions on a running space: restart (resuming a paused one) and pause.

Status changes go through `space_transition` only; the work is sent to the workers after the
transaction commits (spaces/records/jobs.py). A factory rebuild is a build: spaces/builds.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model

from spaces.analytics.services import record_event
from spaces.lifecycle import quotas
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import container_name
from spaces.nodes.selectors import here
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import Revision, Space
from spaces.records.services import space_transition
from spaces.records.status import SpaceStatus

User = get_user_model()
S = SpaceStatus
R = Revision.Status


def space_restart(*, space: Space, by: User | None = None) -> Revision:
    """Restart the serving revision (resuming a paused space) with a new container, no build."""
    rev = space.latest_revision
    if rev is None:
        raise ServiceError("The space has no revision to run yet; upload one first.", code="no_revision")
    quotas.check_running(space)
    target = space.running_revision or (rev if rev.status == R.SUCCEEDED else None)
    if target is None:
        raise ServiceError("No revision of this space has built successfully; upload a fixed one "
                           "or use factory rebuild.", code="nothing_to_run")
    # latest_revision stays the newest row: the start task is told this is a restart instead.
    if not space_transition(space, S.APP_STARTING, error="", sleep_mode=""):
        raise ServiceError(f"A space that is {space.status} cannot be restarted now.", code="conflict")
    jobs.send_on_commit("spaces.tasks.start_revision_task", target.pk, kwargs={"restart": True})
    record_event(space.pk, "restart")  # analytics: the owner's restart
    return target


def space_pause(*, space: Space) -> None:
    if not space_transition(space, S.PAUSED, sleep_mode=""):
        raise ServiceError(f"A space that is {space.status} cannot be paused.", code="conflict")
    jobs.send_on_commit("spaces.tasks.stop_space_task", space.pk)


def space_release(*, space_id: int) -> None:
    """On the node a space left (spaces/nodes): stop its containers here unless it came back."""
    space = Space.objects.select_related("owner").filter(pk=space_id).first()
    if space is not None and not Space.objects.filter(here(), pk=space_id).exists():
        for slot in ("a", "b"):
            get_backend().stop(container_name(space, slot), timeout=10)


def space_stop_containers(*, space_id: int) -> None:
    space = Space.objects.select_related("owner").get(pk=space_id)
    for slot in ("a", "b"):
        get_backend().stop(container_name(space, slot), timeout=10)
