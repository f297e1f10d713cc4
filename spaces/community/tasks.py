"""The community room's Celery task: the periodic trending refresh.
"""
from __future__ import annotations

from celery import shared_task

from spaces.community import trending
from spaces.records.jobs import SHORT_LIMITS


# Expires well within its beat interval: a backlog of refreshes would all compute the same.
@shared_task(name="spaces.tasks.refresh_trending_task", queue="lifecycle", expires=60, ignore_result=True, **SHORT_LIMITS)
def refresh_trending_task() -> None:
    trending.space_trending_refresh()
