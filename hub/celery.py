"""The Celery app: the standard Django recipe plus Demohub's queues and beat schedule."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Tasks live in the rooms' tasks.py; spaces.apps.SpacesConfig.ready imports them in every process.
app.autodiscover_tasks()
# The webhooks room's sweep: attempts whose task was lost (broker down) are queued again.
app.add_periodic_task(60.0, app.signature("spaces.tasks.webhook_sweep"), name="webhook-sweep")
