"""The periodic rollup (beat, every ANALYTICS_INTERVAL s, lifecycle queue; short)."""
from __future__ import annotations

import logging

from celery import shared_task

from . import services

log = logging.getLogger(__name__)


@shared_task(name="spaces.tasks.analytics_rollup_task", ignore_result=True, acks_late=False,
             soft_time_limit=240, time_limit=280)
def analytics_rollup_task() -> dict:
    result = services.rollup()
    if result.lines:
        log.info("analytics: %d lines read, %d counted, %d skipped", result.lines, result.counted, result.skipped)
    return {"lines": result.lines, "counted": result.counted, "skipped": result.skipped}
