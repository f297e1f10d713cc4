"""The nodes room's Celery task: the hub's check for lost nodes (beat, every NODE_CHECK_INTERVAL)."""
from __future__ import annotations

from celery import shared_task

from spaces.nodes import services
from spaces.records.jobs import SHORT_LIMITS


@shared_task(name="spaces.tasks.nodes_check_task", queue="lifecycle", expires=10, ignore_result=True, **SHORT_LIMITS)
def nodes_check_task() -> None:
    services.nodes_check()
