"""Celery signal receivers: the request id travels with a task, and tasks are counted.

* A task sent while a request id is bound (a request, or another task) carries it as the
  message header `demohub_request_id`; the worker binds it (with the task's name and id) for
  every log line of the task, and sends it on to the tasks that task sends. A task without one
  (beat's) gets a fresh id.
* Every task that ends counts in demohub_celery_tasks / demohub_celery_task_duration_seconds.
  A build task that ended a build counts it by SDK and outcome with its build time, and a wake
  task that brought a space back counts the wake with its time in the worker (metrics.py).

Connected by spaces.apps.SpacesConfig.ready(), in the web process and in every worker.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import structlog
from celery.signals import before_task_publish, task_postrun, task_prerun

from . import metrics, requestids

log = logging.getLogger(__name__)

BUILD_TASK = "spaces.tasks.build_revision_task"
WAKE_TASKS = {"spaces.tasks.wake_space_task": "unfreeze", "spaces.tasks.wake_start_space_task": "start"}
OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried", "REJECTED": "rejected",
            "IGNORED": "ignored", "REVOKED": "revoked"}

# task id -> (context tokens, monotonic start, wall-clock start); one entry per running task.
_running: dict[str, tuple[dict, float, datetime]] = {}


@before_task_publish.connect(weak=False)
def carry_request_id(headers=None, **_kwargs) -> None:
    rid = requestids.current()
    if rid and headers is not None:
        headers.setdefault(requestids.CELERY_HEADER, rid)


def request_id_of(task) -> str:
    request = task.request
    rid = getattr(request, requestids.CELERY_HEADER, None)
    if not rid:
        rid = (getattr(request, "headers", None) or {}).get(requestids.CELERY_HEADER)
    if not rid and getattr(request, "is_eager", False):
        rid = requestids.current()  # eager: runs inside the sender's context
    return requestids.accept(rid)


@task_prerun.connect(weak=False)
def task_started(task_id=None, task=None, **_kwargs) -> None:
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id_of(task), task=task.name,
                                                    task_id=task_id)
    _running[task_id] = (tokens, time.monotonic(), datetime.now(timezone.utc))


@task_postrun.connect(weak=False)
def task_ended(task_id=None, task=None, args=None, kwargs=None, state=None, **_kwargs) -> None:
    entry = _running.pop(task_id, None)
    if entry is None:
        return
    tokens, started, wall_started = entry
    try:
        took = time.monotonic() - started
        metrics.tasks.labels(task.name, OUTCOMES.get(state or "", "other")).inc()
        metrics.task_duration.labels(task.name).observe(took)
        if task.name == BUILD_TASK:
            _count_build(_first_arg(args, kwargs, "revision_id"), wall_started)
        elif task.name in WAKE_TASKS and state == "SUCCESS":
            _count_wake(_first_arg(args, kwargs, "space_id"), WAKE_TASKS[task.name], took)
    except Exception:  # noqa: BLE001 - counting must never fail a task
        log.exception("could not count task %s", task.name)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _first_arg(args, kwargs, name):
    if kwargs and name in kwargs:
        return kwargs[name]
    return args[0] if args else None


def _count_build(revision_id, since: datetime) -> None:
    """Count the build this task ended; a duplicate that found it done counts nothing."""
    from spaces.records.models import Revision

    rev = (Revision.objects.filter(pk=revision_id, status__in=Revision.FINAL_STATES, finished_at__gte=since)
           .select_related("space").first())
    if rev is None:
        return
    metrics.builds.labels(rev.space.sdk, rev.status).inc()
    if rev.started_at:
        metrics.build_duration.labels(rev.space.sdk).observe((rev.finished_at - rev.started_at).total_seconds())


def _count_wake(space_id, kind: str, took: float) -> None:
    from spaces.records.models import Space
    from spaces.records.status import SERVING

    if Space.objects.filter(pk=space_id, status__in=SERVING).exists():
        metrics.wakes.labels(kind).inc()
        metrics.wake_duration.labels(kind).observe(took)
