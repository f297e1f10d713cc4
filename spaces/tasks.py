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

from . import access, build_leases, health, housekeeping, reconcile, search, services, sleep

log = logging.getLogger(__name__)


@shared_task(bind=True, queue="builds", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=5, max_retries=5, soft_time_limit=settings.BUILD_TIMEOUT + 60,
             time_limit=settings.BUILD_TIMEOUT + 120)
def build_revision_task(self, revision_id: int) -> None:
    services.revision_build(revision_id=revision_id)


@shared_task(queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=5)
def start_revision_task(revision_id: int, restart: bool = False) -> None:
    try:
        services.revision_start(revision_id=revision_id, restart=restart)
    except reconcile.StartBusy:
        # Another start of the space runs (this is a duplicate, or it was sent again while the
        # first still ran): come back once it is done, when this one finds its work done or
        # starts what is still wanted. A fresh message, not a retry: it may wait out a long start.
        start_revision_task.apply_async((revision_id,), {"restart": restart}, countdown=2)


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


# Expires well within its interval: a backlog of rounds would all find the same.
@shared_task(queue="lifecycle", expires=max(settings.HOUSEKEEPING_INTERVAL / 2, 30), ignore_result=True)
def housekeeping_task() -> None:
    housekeeping.housekeeping_run()


@shared_task(queue="lifecycle", expires=60)
def reconcile_task() -> None:
    services.reconcile()


# Crashes and stuck builds (spaces/health.py, spaces/build_leases.py). The checks expire
# within a few intervals: a backlog of them would all find the same.
@shared_task(queue="lifecycle", expires=10, ignore_result=True)
def crash_check_task() -> None:
    health.crashes_check()


# Sent by the crash check when a restart is due; the check sends it again if it is lost.
@shared_task(queue="lifecycle", acks_late=True, ignore_result=True)
def restart_crashed_space_task(space_id: int) -> None:
    health.restart_crashed(space_id=space_id)


@shared_task(queue="lifecycle", expires=30, ignore_result=True)
def build_leases_sweep_task() -> None:
    build_leases.sweep()


# Starts and purges a restart lost (spaces/reconcile.py); also part of every reconcile.
@shared_task(queue="lifecycle", expires=10, ignore_result=True)
def lost_work_sweep_task() -> None:
    reconcile.sweep()


@shared_task(queue="lifecycle", expires=5, ignore_result=True)
def copy_run_logs_task() -> None:
    services.run_logs_copy_all()


# Expires well within its beat interval: a backlog of refreshes would all compute the same.
@shared_task(queue="lifecycle", expires=60, ignore_result=True)
def refresh_trending_task() -> None:
    search.space_trending_refresh()


# Idle spaces: freeze, stop, hold the frozen-memory cap. Expires before the next round starts.
@shared_task(queue="lifecycle", expires=10, ignore_result=True)
def sleep_check_task() -> None:
    sleep.sleep_check()


# The next visitor of a sleeping space: unfreeze it or start it (spaces/sleep.py).
@shared_task(queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=1,
             max_retries=5, ignore_result=True)
def wake_space_task(space_id: int) -> None:
    sleep.space_wake(space_id)


# Spaces whose share links just expired: end their holders' cached access and open connections.
@shared_task(queue="lifecycle", expires=25, ignore_result=True)
def share_links_expired_task() -> None:
    access.share_links_expired_sweep()


@worker_ready.connect
def _reconcile_at_start(sender=None, **kwargs) -> None:
    # A lifecycle worker that (re)starts rebuilds routes and finds orphans at once.
    task_consumer = getattr(sender, "task_consumer", None)  # the sender is the worker's Consumer
    queues = {q.name for q in getattr(task_consumer, "queues", [])}
    if "lifecycle" in queues:
        reconcile_task.delay()
