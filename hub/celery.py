"""The Celery app: the standard Django recipe plus Demohub's queues and beat schedule."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The rooms' own task modules (issue 8: spaces/<room>/tasks.py).
app.autodiscover_tasks(["spaces.webhooks"])
