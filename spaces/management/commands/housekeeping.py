"""manage.py housekeeping: one housekeeping round now, in this process.

The round beat starts every HOUSEKEEPING_INTERVAL seconds (old images, stopped containers,
unused layers: README "Redeploys and housekeeping"), for an operator who wants it at once and
for tests. Found by its registered Celery task name, which never changes, and run here rather
than on a worker so the command returns when the round is over. A round already running
elsewhere (a lock) makes this one a no-op, as for beat.
"""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand

TASK = "spaces.tasks.housekeeping_task"


class Command(BaseCommand):
    help = "Run one housekeeping round now (prune old images, stopped containers and unused layers)."

    def handle(self, *args, **options):
        from hub.celery import app

        app.loader.import_default_modules()  # the tasks modules, as a worker imports them
        started = time.monotonic()
        app.tasks[TASK]()
        self.stdout.write(f"housekeeping: one round in {time.monotonic() - started:.1f} s")
