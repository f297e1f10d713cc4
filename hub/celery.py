"""The Celery app: the standard Django recipe plus Demohub's queues and beat schedule."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

# HubTask: a send during a request while the broker is down is deferred, not a 500 (hub/dependencies.py).
app = Celery("hub", task_cls="hub.dependencies:HubTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Nothing reads a task's result. Subscribing to results made every send depend on the result
# store's subscriber, which gives up for good after a Redis restart: the web process could then
# send no task until it was restarted (issue 9).
app.conf.task_ignore_result = True


@app.on_after_configure.connect
def _nodes_beat(sender, **kwargs) -> None:
    # The hub's check for lost nodes (spaces/nodes; hub/settings.py is at its size).
    from spaces.nodes.conf import setting

    sender.conf.beat_schedule.setdefault("nodes-check", {"task": "spaces.tasks.nodes_check_task",
                                                         "schedule": setting("NODE_CHECK_INTERVAL")})


# Tasks live in the rooms' tasks.py; spaces.apps.SpacesConfig.ready imports them in every process.
app.autodiscover_tasks()
