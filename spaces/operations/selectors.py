"""Reads of the operations room: the state /metrics reports as it is at scrape time."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Count

from spaces.records.models import Space
from spaces.records.status import SpaceStatus

SLEEP_TIERS = ("frozen", "stopped")


def queue_names() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE, "builds", "lifecycle", "starts", "routes"}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route)
    return sorted(names)


def queue_key(queue: str) -> str:
    """The Redis list Celery's Redis transport keeps a queue in (global_keyprefix + name)."""
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + queue


def queue_depths(redis_client) -> dict[str, int]:
    """Tasks waiting in each queue: one round trip (raises what Redis raises)."""
    names = queue_names()
    pipe = redis_client.pipeline()
    for name in names:
        pipe.llen(queue_key(name))
    return dict(zip(names, pipe.execute()))


def spaces_by_status() -> tuple[dict[str, int], dict[str, int]]:
    """(spaces by status, every status present; sleeping spaces by tier): one GROUP BY."""
    counts = {s: 0 for s in SpaceStatus.values}
    tiers = {tier: 0 for tier in SLEEP_TIERS}
    for row in Space.objects.values("status", "sleep_mode").annotate(n=Count("id")):
        counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
        if row["status"] == SpaceStatus.SLEEPING:
            tiers[row["sleep_mode"] if row["sleep_mode"] in tiers else "stopped"] += row["n"]
    return counts, tiers
