"""The builds room's Celery tasks: the build itself (own queue, "builds") and the lease sweep.

Names are fixed (`name="spaces.tasks...."`): the routes, the beat schedule and jobs.py use them.
"""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from runner.exceptions import BackendUnavailable
from spaces.builds import leases as build_leases
from spaces.builds.services import revision_build
from spaces.records.jobs import SHORT_LIMITS


@shared_task(name="spaces.tasks.build_revision_task", bind=True, queue="builds", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=5, max_retries=5, soft_time_limit=settings.BUILD_TIMEOUT + 60,
             time_limit=settings.BUILD_TIMEOUT + 120)
def build_revision_task(self, revision_id: int) -> None:
    revision_build(revision_id=revision_id)


@shared_task(name="spaces.tasks.build_leases_sweep_task", queue="lifecycle", expires=30, ignore_result=True, **SHORT_LIMITS)
def build_leases_sweep_task() -> None:
    build_leases.sweep()
