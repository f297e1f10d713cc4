"""Analytics rollups (issue 13): bounded tables, pruned by `services.prune`.

* AnalyticsMinute / AnalyticsHour: per space and minute (hour), the request counts and a
  latency histogram (counts per LATENCY_BOUNDS_MS bucket, the last one open-ended), from
  which the median and p95 are estimated.
* AnalyticsVisitor: one row per space, UTC day and visitor, where the visitor is a keyed hash
  of the client address with that day's salt (AnalyticsSalt, deleted after the day is over):
  a day's hashes cannot be linked to an address or to another day's.
* AnalyticsEvent: wakes (with their latency), sleeps, restarts and crashes.
* AnalyticsCursor: how far the proxy's access log has been read (inode and byte offset),
  written in the same transaction as the rollups it produced, so a line counts once.
"""
from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

# Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
LATENCY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def empty_histogram() -> list[int]:
    return [0] * LATENCY_BUCKETS


class RollupFields(models.Model):
    # Indexed by the (space, start) unique constraint of each table, not on its own.
    space = models.ForeignKey("spaces.Space", on_delete=models.CASCADE, related_name="+", db_index=False)
    start = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    page_views = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField(default=0)
    client_errors = models.PositiveIntegerField(default=0)   # 4xx
    server_errors = models.PositiveIntegerField(default=0)   # 5xx
    bytes_sent = models.BigIntegerField(default=0)
    latency = ArrayField(models.PositiveIntegerField(), size=LATENCY_BUCKETS, default=empty_histogram)

    class Meta:
        abstract = True


class AnalyticsMinute(RollupFields):
    class Meta:
        app_label = "spaces"
        constraints = [models.UniqueConstraint(fields=["space", "start"], name="analytics_minute_unique")]
        indexes = [models.Index(fields=["start"], name="analytics_minute_start")]


class AnalyticsHour(RollupFields):
    class Meta:
        app_label = "spaces"
        constraints = [models.UniqueConstraint(fields=["space", "start"], name="analytics_hour_unique")]
        indexes = [models.Index(fields=["start"], name="analytics_hour_start")]


class AnalyticsVisitor(models.Model):
    # No foreign-key trigger in the database (the rollup upserts hundreds of thousands of rows
    # at a time); Django still deletes a space's rows with it, through the unique index below.
    space = models.ForeignKey("spaces.Space", on_delete=models.CASCADE, related_name="+", db_constraint=False,
                              db_index=False)
    day = models.DateField()
    visitor = models.BigIntegerField()        # 8 bytes of HMAC-SHA256(day's salt, address)
    last_seen = models.DateTimeField()

    class Meta:
        app_label = "spaces"
        # The only index besides the key: old days are pruned by a scan, at most hourly.
        constraints = [models.UniqueConstraint(fields=["space", "day", "visitor"], name="analytics_visitor_unique")]


class AnalyticsSalt(models.Model):
    day = models.DateField(primary_key=True)
    salt = models.BinaryField()

    class Meta:
        app_label = "spaces"


class AnalyticsEvent(models.Model):
    class Kind(models.TextChoices):
        WAKE = "wake"
        SLEEP = "sleep"
        RESTART = "restart"
        CRASH = "crash"

    space = models.ForeignKey("spaces.Space", on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)  # wakes: request to awake

    class Meta:
        app_label = "spaces"
        indexes = [models.Index(fields=["space", "at"], name="analytics_event_space_at"),
                   models.Index(fields=["at"], name="analytics_event_at")]


class AnalyticsCursor(models.Model):
    name = models.CharField(max_length=32, primary_key=True)
    inode = models.BigIntegerField(default=0)
    offset = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "spaces"
