"""Celery tasks: thin adapters that take ids, load rows and call a service.

Builds go to the "builds" queue; everything else (start, stop, routes, reconciliation, log
copying) to "lifecycle", so starting a space never waits behind a build.
"""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from runner.exceptions import BackendUnavailable

from . import services

log = logging.getLogger(__name__)


@shared_task(bind=True, queue="builds", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=5, max_retries=5, soft_time_limit=settings.BUILD_TIMEOUT + 60,
             time_limit=settings.BUILD_TIMEOUT + 120)
def build_revision_task(self, revision_id: int) -> None:
    services.revision_build(revision_id=revision_id)


@shared_task(queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=5)
def start_revision_task(revision_id: int) -> None:
    services.revision_start(revision_id=revision_id)


@shared_task(queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=5)
def stop_space_task(space_id: int) -> None:
    services.space_stop_containers(space_id=space_id)


@shared_task(queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=10)
def delete_space_task(space_id: int) -> None:
    services.space_purge(space_id=space_id)


@shared_task(queue="lifecycle")
def publish_route_task(space_id: int) -> None:
    services.space_publish_route(space_id=space_id)


@shared_task(queue="lifecycle", expires=60)
def reconcile_task() -> None:
    services.reconcile()


@shared_task(queue="lifecycle", expires=5, ignore_result=True)
def copy_run_logs_task() -> None:
    services.run_logs_copy_all()


@worker_ready.connect
def _reconcile_at_start(sender=None, **kwargs) -> None:
    # A lifecycle worker that (re)starts rebuilds routes and finds orphans at once.
    task_consumer = getattr(sender, "task_consumer", None)  # the sender is the worker's Consumer
    queues = {q.name for q in getattr(task_consumer, "queues", [])}
    if "lifecycle" in queues:
        reconcile_task.delay()
