"""The webhooks queue: deliveries run on a worker of their own (`-Q webhooks`), so a slow or
dead receiver never delays lifecycle work. Names are explicit (spaces.tasks.<x>, issue 8)."""
from __future__ import annotations

from celery import shared_task

from spaces.webhooks import services

QUEUE = "webhooks"
# An attempt is cut off after WEBHOOK_TIMEOUT (10 s); these only catch a stuck worker.
LIMITS = {"soft_time_limit": 60, "time_limit": 90}


@shared_task(name="spaces.tasks.webhook_deliver", queue=QUEUE, acks_late=True, ignore_result=True, **LIMITS)
def webhook_deliver_task(delivery_id: int) -> None:
    services.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="spaces.tasks.webhook_sweep", queue=QUEUE, expires=60, ignore_result=True, **LIMITS)
def webhook_sweep_task() -> None:
    services.deliveries_sweep()
