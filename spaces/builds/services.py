"""A build: a revision's snapshot made into an image, under a lease (leases.py), with the log
streamed to Redis; a factory rebuild makes a new revision from the latest one's files.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
import structlog
from redis import RedisError

from runner.backends import BuildSpec
from runner.exceptions import BackendUnavailable, BuildCancelled, BuildError
from spaces.builds import leases as build_leases
from spaces.builds.outcomes import finish_revision, space_build_failed
from spaces.lifecycle import logs, quotas, variables
from spaces.lifecycle.engine import get_backend
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import Revision, Sdk, Space
from spaces.records.services import (
    make_latest,
    space_transition,
    status_while_building,
)
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


# ----------------------------------------------------------------------------- builds
def image_name(space: Space, number: int) -> str:
    return f"demohub-{settings.DEMOHUB_INSTANCE}/{space.label}:r{number}"


def revision_build(*, revision_id: int) -> None:
    """Build one revision's image (builds queue). Safe to run twice: the first claim wins.

    The claim takes a lease (spaces/builds/leases.py) that a heartbeat thread renews while the
    build runs; a build whose worker died is retried or failed by the lease sweep.
    """
    lease = build_leases.claim(revision_id)
    if lease is None:
        log.info("revision %s already claimed or finished", revision_id)
        return
    rev = Revision.objects.select_related("space__owner").get(pk=revision_id)
    space = rev.space
    key = logs.build_key(rev.pk)
    logs.reset(key)
    # Builds never get secrets, but a repo may print one it holds: never store it (variables.py).
    mask = variables.secret_masker(space.pk)

    def sink(text: str) -> None:
        if not lease.lost.is_set():  # once another attempt owns the revision, its log is that one's
            try:
                logs.append(key, mask(text), cap=settings.BUILD_LOG_MAX_BYTES)
            except RedisError:
                pass  # Redis is restarting: these lines of the live log are lost, the build goes on

    def should_continue() -> bool:
        return lease.held()

    meta = rev.metadata
    default_version = {"gradio": settings.DEFAULT_GRADIO_VERSION,
                       "streamlit": settings.DEFAULT_STREAMLIT_VERSION}.get(space.sdk, "")
    spec = BuildSpec(space=space.full_name, revision=rev.number, sdk=space.sdk, snapshot=Path(rev.snapshot_path),
                     image=image_name(space, rev.number), app_file=meta.get("app_file") or "app.py",
                     app_port=meta.get("app_port") or 7860, sdk_version=meta.get("sdk_version") or default_version,
                     no_cache=rev.factory)
    # The request id of the upload (or of the task that sent this build): the build log names it,
    # so the log lines of the hub and the worker about this build can be found (README "Logs").
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    if rev.commit:
        title = (rev.message.strip().splitlines() or [""])[0][:200]
        sink(f"==> commit {rev.commit}" + (f": {title}" if title else "") + "\n")
    push = (rev.metadata or {}).get("push") or {}
    if push.get("forced"):
        sink(f"==> force push by {push.get('by')} replaced {push.get('replaced')}\n")
    sink(f"==> revision {rev.number} of {space.full_name} ({space.sdk}), request {request_id}\n")
    retries = build_leases.retries(rev.pk)
    if retries:
        sink(f"==> attempt {retries + 1}: the build worker of the previous attempt stopped responding\n")
    try:
        with lease:
            get_backend().build(spec, log=sink, should_continue=should_continue)
    except BuildCancelled:
        if not lease.lost.is_set():
            sink("==> cancelled: a newer revision superseded this build\n")
            finish_revision(rev, R.CANCELLED, error="superseded by a newer revision", lease=lease.token)
        return
    except BuildError as exc:
        sink(f"==> build failed: {exc}\n")
        if finish_revision(rev, R.FAILED, error=str(exc), lease=lease.token):
            space_build_failed(space, rev, str(exc))
        return
    except BackendUnavailable:
        # Hand the revision back so the retry (or the lease sweep) can claim it again.
        Revision.objects.filter(pk=rev.pk, status=R.BUILDING, task_id=lease.token).update(
            status=R.QUEUED, task_id="")
        sink("==> the container engine is unavailable; the build will be retried\n")
        raise
    sink("==> build succeeded\n")
    if finish_revision(rev, R.SUCCEEDED, image=spec.image, lease=lease.token):
        jobs.send("spaces.tasks.start_revision_task", rev.pk)


def space_rebuild(*, space: Space, by: User | None = None) -> Revision:
    """Factory rebuild: a new revision from the latest one's files, built without cache."""
    source = space.latest_revision
    if source is None:
        raise ServiceError("The space has no revision to run yet; upload one first.", code="no_revision")
    quotas.check_running(space)
    quotas.check_build_queue(space)
    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        number = (space.revisions.aggregate(m=Max("number"))["m"] or 0) + 1
        if not source.snapshot_path:
            raise ServiceError("The files of this revision were pruned; upload the repo again.",
                               code="snapshot_pruned")
        rev = Revision.objects.create(space=space, number=number, content_hash=source.content_hash,
                                      snapshot_path=source.snapshot_path, metadata=source.metadata,
                                      commit=source.commit, message=source.message,
                                      created_by=by, factory=True)
        make_latest(space, rev)
        if space.sdk == Sdk.STATIC:
            Revision.objects.filter(pk=rev.pk).update(status=R.SUCCEEDED, finished_at=timezone.now())
            space_transition(space, status_while_building(space.status), error="")
            jobs.send_on_commit("spaces.tasks.start_revision_task", rev.pk)
        else:
            space_transition(space, status_while_building(space.status), error="")
            jobs.send_on_commit("spaces.tasks.build_revision_task", rev.pk)
    return rev
