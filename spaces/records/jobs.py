"""Work for the workers, sent to a Celery task by its registered name.

Each room's tasks.py imports the room's services; a service that must start work (a build after
an upload, a start after a build, a route after a visibility change) would import tasks back,
and a low room (access) would import a higher one's tasks (lifecycle). Sending by name keeps
imports one way: tasks -> services -> models, and rooms downward only. The names never change
(`name="spaces.tasks...."`, also used by CELERY_TASK_ROUTES and the beat schedule);
tests/unit/test_task_names.py checks that every name sent here is a registered task.
"""
from __future__ import annotations

from celery import current_app
from django.conf import settings
from django.db import transaction

# Every task has a soft and a hard time limit (seconds), so a stuck engine call cannot hold a
# worker for good. (soft, hard) time limits in seconds. A start: its health wait (at most the cap), plus the
# container start, the route switch and the old slot's drain.
START_LIMITS = {"soft_time_limit": settings.SPACE_STARTUP_TIMEOUT_MAX + settings.REDEPLOY_DRAIN_TIMEOUT + 240,
                "time_limit": settings.SPACE_STARTUP_TIMEOUT_MAX + settings.REDEPLOY_DRAIN_TIMEOUT + 300}
SHORT_LIMITS = {"soft_time_limit": 120, "time_limit": 150}        # a few engine or proxy calls
ROUND_LIMITS = {"soft_time_limit": 600, "time_limit": 660}        # a round over every space


# Where a space's work goes when the caller names no queue: functions (task name, args,
# kwargs) -> a queue name or None, added by a higher room at start (spaces/nodes/routing.py: the
# queue of the node a space is placed on). None from all: the task's own queue.
queue_resolvers: list = []


def send(task: str, *args, kwargs: dict | None = None, **options) -> None:
    """Queue `task` now; `options` (countdown, priority, queue) go to apply_async."""
    registered = current_app.tasks[task]
    if "queue" not in options:
        for resolve in queue_resolvers:
            queue = resolve(task, args, kwargs or {})
            if queue:
                options["queue"] = queue
                break
    if options:
        registered.apply_async(args, kwargs or {}, **options)
    else:
        registered.delay(*args, **(kwargs or {}))


def send_on_commit(task: str, *args, kwargs: dict | None = None, **options) -> None:
    """Queue `task` once the current transaction commits, so the worker reads what it wrote."""
    transaction.on_commit(lambda: send(task, *args, kwargs=kwargs, **options))
