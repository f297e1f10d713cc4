"""The previews room's Celery tasks (names fixed: the push hook of spaces/repos sends the first
two by name, spaces/records/jobs.py). Thin adapters: ids in, a service called."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from runner.exceptions import BackendUnavailable
from spaces.previews import services
from spaces.records.jobs import SHORT_LIMITS, START_LIMITS

BUILD_LIMITS = {"soft_time_limit": settings.BUILD_TIMEOUT + 60, "time_limit": settings.BUILD_TIMEOUT + 120}


# A branch other than main was pushed: export its commit, then build it (so: the builds queue).
@shared_task(name="spaces.tasks.preview_update", queue="builds", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=5, max_retries=5, ignore_result=True, **BUILD_LIMITS)
def preview_update(space_id: int, branch: str, sha: str, pusher_id: int | None = None) -> None:
    services.preview_update(space_id=space_id, branch=branch, sha=sha, pusher_id=pusher_id)


@shared_task(name="spaces.tasks.preview_build", queue="builds", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=5, max_retries=5, ignore_result=True, **BUILD_LIMITS)
def preview_build(preview_id: int, sha: str) -> None:
    services.preview_build(preview_id=preview_id, sha=sha)


# A built commit, or a visitor's wake: the container and its health wait (the starts queue).
@shared_task(name="spaces.tasks.preview_start", queue="starts", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=2, max_retries=5, ignore_result=True, **START_LIMITS)
def preview_start(preview_id: int, sha: str = "") -> None:
    services.preview_start(preview_id=preview_id)


@shared_task(name="spaces.tasks.preview_wake", queue="starts", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=1, max_retries=5, ignore_result=True, **START_LIMITS)
def preview_wake(preview_id: int) -> None:
    services.preview_start(preview_id=preview_id)


@shared_task(name="spaces.tasks.preview_delete", queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=2, max_retries=10, ignore_result=True, **SHORT_LIMITS)
def preview_delete(space_id: int, branch: str) -> None:
    services.preview_delete(space_id=space_id, branch=branch)
