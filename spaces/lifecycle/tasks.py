"""The lifecycle's Celery tasks: thin adapters that take ids, load rows and call a service.

Four queues, each with a worker of its own, so that nothing slow holds up what must be quick
(README "Security: one user cannot stall the lifecycle"):

* "builds": image builds;
* "starts": starting an app and waiting until it answers (a new revision, a wake from stopped,
  a crash restart). A start may wait up to SPACE_STARTUP_TIMEOUT_MAX; four apps that never
  answer fill this queue's worker and delay only other starts;
* "routes": publishing a space's proxy route (creation, visibility, access changes): short, and
  never behind a start or a sleep check, so a space made private is closed at the proxy at once;
* "lifecycle": the rest (stop, delete, sleep and crash checks, reconciliation, log copying).

Every task has a soft and a hard time limit: a stuck engine call cannot hold a worker for good.
"""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from runner.exceptions import BackendUnavailable
from spaces.lifecycle import claims, converge, health, housekeeping, reconcile, sleep
from spaces.lifecycle.deletion import space_purge
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import space_publish_route
from spaces.lifecycle.run_logs import run_logs_copy_all
from spaces.lifecycle.services import space_release, space_stop_containers
from spaces.lifecycle.starts import revision_start
from spaces.nodes import heartbeat
from spaces.nodes.conf import setting as node_setting
from spaces.records import jobs
from spaces.records.jobs import ROUND_LIMITS, SHORT_LIMITS, START_LIMITS

log = logging.getLogger(__name__)

STARTS = "starts"
ROUTES = "routes"


@shared_task(name="spaces.tasks.start_revision_task", queue=STARTS, acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=5, **START_LIMITS)
def start_revision_task(revision_id: int, restart: bool = False, move: bool = False, forwarded: bool = False) -> None:
    try:
        revision_start(revision_id=revision_id, restart=restart, move=move, forwarded=forwarded)
    except claims.StartBusy:
        # Another start of the space runs (this is a duplicate, or it was sent again while the
        # first still ran): come back once it is done, when this one finds its work done or
        # starts what is still wanted. A fresh message, not a retry: it may wait out a long start.
        # Sent by name: to the queue of the node the space is placed on (spaces/nodes/routing.py).
        kwargs = {"restart": restart, **({"move": True} if move else {}), **({"forwarded": True} if forwarded else {})}
        jobs.send("spaces.tasks.start_revision_task", revision_id, kwargs=kwargs, countdown=2)


@shared_task(name="spaces.tasks.stop_space_task", queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=5, **SHORT_LIMITS)
def stop_space_task(space_id: int) -> None:
    space_stop_containers(space_id=space_id)


@shared_task(name="spaces.tasks.delete_space_task", queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=10, **ROUND_LIMITS)
def delete_space_task(space_id: int) -> None:
    space_purge(space_id=space_id)


@shared_task(name="spaces.tasks.publish_route_task", queue=ROUTES, **SHORT_LIMITS)
def publish_route_task(space_id: int, end_open_connections: bool = False) -> None:
    space_publish_route(space_id=space_id, end_open_connections=end_open_connections)


# Expires well within its interval: a backlog of rounds would all find the same.
@shared_task(name="spaces.tasks.housekeeping_task", queue="lifecycle", expires=max(settings.HOUSEKEEPING_INTERVAL / 2, 30), ignore_result=True,
             soft_time_limit=1800, time_limit=1860)  # image pruning can be slow on a big engine
def housekeeping_task() -> None:
    housekeeping.housekeeping_run()


@shared_task(name="spaces.tasks.reconcile_task", queue="lifecycle", expires=60, **ROUND_LIMITS)
def reconcile_task() -> None:
    converge.reconcile()


# The engine's half of reconcile on a node's own engine (sent to its queue by spaces/nodes).
@shared_task(name="spaces.tasks.containers_converge_task", queue="lifecycle", expires=60, ignore_result=True,
             **SHORT_LIMITS)
def containers_converge_task() -> None:
    converge.containers_converge()


# Crashes and stuck builds (spaces/lifecycle/health.py, spaces/builds/leases.py). The checks expire
# within a few intervals: a backlog of them would all find the same.
@shared_task(name="spaces.tasks.crash_check_task", queue="lifecycle", expires=10, ignore_result=True, **ROUND_LIMITS)
def crash_check_task() -> None:
    health.crashes_check()


# Sent by the crash check when a restart is due; the check sends it again if it is lost.
@shared_task(name="spaces.tasks.restart_crashed_space_task", queue=STARTS, acks_late=True, ignore_result=True, **START_LIMITS)
def restart_crashed_space_task(space_id: int) -> None:
    health.restart_crashed(space_id=space_id)


# Starts and purges a restart lost (spaces/lifecycle/reconcile.py); also part of every reconcile.
@shared_task(name="spaces.tasks.lost_work_sweep_task", queue="lifecycle", expires=10, ignore_result=True, **SHORT_LIMITS)
def lost_work_sweep_task() -> None:
    reconcile.sweep()


@shared_task(name="spaces.tasks.copy_run_logs_task", queue="lifecycle", expires=5, ignore_result=True, **SHORT_LIMITS)
def copy_run_logs_task() -> None:
    run_logs_copy_all()


# Idle spaces: freeze, stop, hold the frozen-memory cap. Expires before the next round starts;
# one round at a time (a Redis lock in sleep_check).
@shared_task(name="spaces.tasks.sleep_check_task", queue="lifecycle", expires=10, ignore_result=True, **ROUND_LIMITS)
def sleep_check_task() -> None:
    sleep.sleep_check()


# The sleep check's decision for a space on another node (spaces/nodes/routing.py: its queue).
@shared_task(name="spaces.tasks.sleep_space_task", queue="lifecycle", acks_late=True, ignore_result=True, **SHORT_LIMITS)
def sleep_space_task(space_id: int, mode: str, idle_since: float | None = None) -> None:
    sleep.space_sleep(space_id, mode, idle_since=idle_since)


# The next visitor of a sleeping space: unfreeze it (here: quick), or start it again (on the
# starts queue, wake_start_space_task) (spaces/lifecycle/sleep.py).
@shared_task(name="spaces.tasks.wake_space_task", queue="lifecycle", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=1,
             max_retries=5, ignore_result=True, **SHORT_LIMITS)
def wake_space_task(space_id: int) -> None:
    sleep.space_wake(space_id)


@shared_task(name="spaces.tasks.wake_start_space_task", queue=STARTS, acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=1,
             max_retries=5, ignore_result=True, **START_LIMITS)
def wake_start_space_task(space_id: int, forwarded: bool = False) -> None:
    sleep.space_wake_start(space_id, forwarded=forwarded)


# A node's worker (spaces/nodes/heartbeat.py): what must happen on the engine of the node a
# space left (a move, a drain), and fencing when the hub removed the node.
@shared_task(name="spaces.tasks.node_release_task", acks_late=True, autoretry_for=(BackendUnavailable,), retry_backoff=2,
             max_retries=5, ignore_result=True, **SHORT_LIMITS)
def node_release_task(space_id: int) -> None:
    space_release(space_id=space_id)


@shared_task(name="spaces.tasks.node_remove_space_task", acks_late=True, autoretry_for=(BackendUnavailable,),
             retry_backoff=2, max_retries=5, ignore_result=True, **SHORT_LIMITS)
def node_remove_space_task(full_name: str) -> None:
    get_backend().remove_space(full_name)  # a deleted space's containers and images on this node


@shared_task(name="spaces.tasks.node_fence_task", ignore_result=True, **SHORT_LIMITS)
def node_fence_task(name: str) -> None:
    if name == node_setting("NODE_NAME"):
        heartbeat.fence(get_backend())


@worker_ready.connect
def _reconcile_at_start(sender=None, **kwargs) -> None:
    # A lifecycle worker that (re)starts rebuilds routes and finds orphans at once.
    task_consumer = getattr(sender, "task_consumer", None)  # the sender is the worker's Consumer
    queues = {q.name for q in getattr(task_consumer, "queues", [])}
    if "lifecycle" in queues:
        reconcile_task.delay()
    # A node's worker registers its node and heartbeats (NODE_NAME set, its queue consumed).
    heartbeat.agent_start(queues, get_backend)
