"""The Celery app: the standard Django recipe plus Demohub's queues and beat schedule."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

# HubTask: a send during a request while the broker is down is deferred, not a 500 (hub/dependencies.py).
app = Celery("hub", task_cls="hub.dependencies:HubTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
