"""The access room's Celery task: share links that just expired end their holders' access.
"""
from __future__ import annotations

from celery import shared_task

from spaces.access import services as access
from spaces.records.jobs import SHORT_LIMITS


# Spaces whose share links just expired: end their holders' cached access and open connections.
@shared_task(name="spaces.tasks.share_links_expired_task", queue="lifecycle", expires=25, ignore_result=True, **SHORT_LIMITS)
def share_links_expired_task() -> None:
    access.share_links_expired_sweep()
