"""Analytics reads: the figures of one space over a period, and owners' visit sparklines.

Periods and their buckets: ``hour`` (60 minutes), ``day`` (24 hours), ``7d`` (168 hours),
``30d`` (30 days), each ending with the bucket that holds now. Latency median and p95 are
estimated from the histogram (linear within a bucket). Unique visitors are counted per UTC
day (the salt that hashes addresses changes daily): over a day or longer the figure is the
sum of daily uniques, and says so; over the last hour it is the visitors seen in it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db.models import Count, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from .models import (LATENCY_BOUNDS_MS, AnalyticsCursor, AnalyticsEvent, AnalyticsHour, AnalyticsMinute,
                     AnalyticsVisitor, empty_histogram)


@dataclass(frozen=True)
class Period:
    name: str
    bucket: str          # minute | hour | day
    count: int           # buckets
    step: timedelta


PERIODS = {
    "hour": Period("hour", "minute", 60, timedelta(minutes=1)),
    "day": Period("day", "hour", 24, timedelta(hours=1)),
    "7d": Period("7d", "hour", 168, timedelta(hours=1)),
    "30d": Period("30d", "day", 30, timedelta(days=1)),
}
COUNTERS = ("requests", "page_views", "api_calls", "client_errors", "server_errors", "bytes_sent")
SPARKLINE_DAYS = 14


class BadPeriod(ValueError):
    pass


def period_get(name: str | None) -> Period:
    if name is None or name == "":
        return PERIODS["day"]
    if name not in PERIODS:
        raise BadPeriod(f"period must be one of {', '.join(PERIODS)}, not {name[:40]!r}.")
    return PERIODS[name]


def _floor(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(dt_timezone.utc).replace(second=0, microsecond=0)
    if bucket in ("hour", "day"):
        moment = moment.replace(minute=0)
    if bucket == "day":
        moment = moment.replace(hour=0)
    return moment


def quantile(histogram: list[int], q: float) -> float | None:
    """The q-quantile (ms) of a latency histogram, linear within its bucket; the open last
    bucket answers its lower bound."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(histogram):
        if count and seen + count >= rank:
            low = LATENCY_BOUNDS_MS[i - 1] if i else 0
            if i >= len(LATENCY_BOUNDS_MS):
                return float(low)
            return round(low + (LATENCY_BOUNDS_MS[i] - low) * (rank - seen) / count, 1)
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


def _exact_quantile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return float(values[min(len(values) - 1, int(q * len(values)))])


def _empty_point(start: datetime) -> dict:
    return {"start": start, **{c: 0 for c in COUNTERS}, "latency": empty_histogram()}


def _add(point: dict, row: dict) -> None:
    for c in COUNTERS:
        point[c] += row[c]
    point["latency"] = [a + b for a, b in zip(point["latency"], row["latency"], strict=True)]


def space_analytics(*, space, period: Period, now: datetime | None = None) -> dict:
    """Every figure of the Analytics tab and API for `space` over `period`."""
    now = now or timezone.now()
    last = _floor(now, period.bucket)
    starts = [last - period.step * i for i in range(period.count - 1, -1, -1)]
    since, until = starts[0], last + period.step
    points = {s: _empty_point(s) for s in starts}
    model = AnalyticsMinute if period.bucket == "minute" else AnalyticsHour
    rows = model.objects.filter(space=space, start__gte=since).values("start", *COUNTERS, "latency")
    for row in rows:
        point = points.get(_floor(row["start"], period.bucket))
        if point is not None:
            _add(point, row)
    totals = _empty_point(since)
    for point in points.values():
        _add(totals, point)

    visitors = AnalyticsVisitor.objects.filter(space=space, day__gte=since.date(), last_seen__gte=since)
    daily = list(visitors.values("day").annotate(n=Count("visitor")).order_by("day"))
    events = list(AnalyticsEvent.objects.filter(space=space, at__gte=since).values_list("kind", "duration_ms"))
    wakes = [d for k, d in events if k == AnalyticsEvent.Kind.WAKE and d is not None]
    cursor = AnalyticsCursor.objects.filter(name="proxy").values_list("updated_at", flat=True).first()

    def figures(point: dict) -> dict:
        return {**{c: point[c] for c in COUNTERS},
                "latency_median_ms": quantile(point["latency"], 0.5),
                "latency_p95_ms": quantile(point["latency"], 0.95)}

    return {
        "period": period.name,
        "bucket": period.bucket,
        "since": since,
        "until": until,
        "rolled_up_at": cursor,
        "totals": figures(totals),
        "unique_visitors": {
            "count": sum(d["n"] for d in daily),
            "counting": "distinct" if period.name == "hour" else "sum_of_daily_uniques",
            "label": "unique visitors" if period.name == "hour" else "unique visitors (sum of daily uniques)",
        },
        "daily_unique_visitors": [{"day": d["day"], "count": d["n"]} for d in daily],
        "lifecycle": {
            "wakes": sum(1 for k, _ in events if k == AnalyticsEvent.Kind.WAKE),
            "wake_median_ms": _exact_quantile(wakes, 0.5),
            "wake_p95_ms": _exact_quantile(wakes, 0.95),
            "sleeps": sum(1 for k, _ in events if k == AnalyticsEvent.Kind.SLEEP),
            "restarts": sum(1 for k, _ in events if k == AnalyticsEvent.Kind.RESTART),
            "crashes": sum(1 for k, _ in events if k == AnalyticsEvent.Kind.CRASH),
        },
        "series": [{"start": p["start"], **figures(p)} for p in points.values()],
    }


def visits_by_day(space_ids: list[int], *, now: datetime | None = None) -> dict[int, list[int]]:
    """Space id -> requests per UTC day over the last SPARKLINE_DAYS days (oldest first), in
    one query for a whole list."""
    if not space_ids:
        return {}
    today = _floor(now or timezone.now(), "day")
    days = [today - timedelta(days=i) for i in range(SPARKLINE_DAYS - 1, -1, -1)]
    result = {pk: [0] * SPARKLINE_DAYS for pk in space_ids}
    index = {d: i for i, d in enumerate(days)}
    rows = (AnalyticsHour.objects.filter(space_id__in=space_ids, start__gte=days[0])
            .annotate(day=TruncDay("start", tzinfo=dt_timezone.utc)).values("space_id", "day")
            .annotate(n=Sum("requests")))
    for row in rows:
        i = index.get(row["day"])
        if i is not None:
            result[row["space_id"]][i] = row["n"]
    return result
