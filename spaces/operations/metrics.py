"""The hub's Prometheus metrics, shared by the web process and every Celery worker.

Counters and histograms live in prometheus_client's multiprocess mode: each process writes its
values to memory-mapped files under METRICS_MULTIPROC_DIR (on the data volume every hub
container mounts), and a scrape of the web process merges all of them, so a build counted by
the builds worker shows up in `/metrics` served by the web process. Files of processes that
ended keep their totals (counters only go up); a file name carries a random id of the process
tree besides the pid, since containers reuse pids.

Figures that are state rather than events (queue depths, spaces by status) are read at scrape
time from Redis and Postgres by `ScrapeCollector`: nothing to keep in step.

Labels are bounded: route patterns (not paths), a fixed set of methods, status classes, SDKs,
task names registered in the hub, queue names of settings.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

from . import selectors

# One id per process tree, inherited by forks (whose pids differ): unique across containers.
_TREE = secrets.token_hex(4)


def _process_id() -> str:
    return f"{_TREE}-{os.getpid()}"


def multiproc_dir() -> Path | None:
    path = settings.METRICS_MULTIPROC_DIR
    return Path(path) if path else None


def _enable_multiprocess() -> None:
    path = multiproc_dir()
    if path is None:
        return
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)


_enable_multiprocess()

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BUILD_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 2400)
WAKE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

http_requests = Counter("demohub_http_requests", "HTTP requests the hub answered",
                        ["route", "method", "status"])
http_latency = Histogram("demohub_http_request_duration_seconds", "Time the hub took to answer",
                         ["route", "method"], buckets=LATENCY_BUCKETS)
builds = Counter("demohub_builds", "Builds that ended, by SDK and outcome (succeeded, failed, cancelled)",
                 ["sdk", "outcome"])
build_duration = Histogram("demohub_build_duration_seconds", "Build time of builds that ended, by SDK",
                           ["sdk"], buckets=BUILD_BUCKETS)
tasks = Counter("demohub_celery_tasks", "Celery tasks that ended, by task and outcome", ["task", "outcome"])
task_duration = Histogram("demohub_celery_task_duration_seconds", "Run time of Celery tasks", ["task"],
                          buckets=LATENCY_BUCKETS + (60, 300, 1200))
wakes = Counter("demohub_wakes", "Wakes of sleeping spaces: unfreeze (frozen) or start (stopped)", ["kind"])
wake_duration = Histogram("demohub_wake_duration_seconds",
                          "Time a wake took in its worker, from taking the task to the app serving",
                          ["kind"], buckets=WAKE_BUCKETS)


def status_class(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code < 600 else "other"


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


class ScrapeCollector:
    """State read at scrape time. Raises what the database or Redis raise: the view answers 503."""

    def __init__(self, redis_client) -> None:
        self.redis = redis_client

    def collect(self):
        depth = GaugeMetricFamily("demohub_queue_depth", "Tasks waiting in a Celery queue (Redis list length)",
                                  labels=["queue"])
        for name, length in selectors.queue_depths(self.redis).items():
            depth.add_metric([name], length)
        yield depth
        counts, tiers = selectors.spaces_by_status()
        spaces = GaugeMetricFamily("demohub_spaces", "Spaces by status", labels=["status"])
        for name, n in sorted(counts.items()):
            spaces.add_metric([name], n)
        yield spaces
        sleeping = GaugeMetricFamily("demohub_spaces_sleeping", "Sleeping spaces by sleep tier", labels=["tier"])
        for name, n in sorted(tiers.items()):
            sleeping.add_metric([name], n)
        yield sleeping


def render(redis_client) -> bytes:
    """The text exposition of every process's counters plus the figures read now."""
    registry = CollectorRegistry()
    if multiproc_dir() is not None:
        multiprocess.MultiProcessCollector(registry, path=str(multiproc_dir()))
        scraped = list(ScrapeCollector(redis_client).collect())  # may raise: before any output
    else:
        registry = REGISTRY
        scraped = list(ScrapeCollector(redis_client).collect())

    class _Now:
        def collect(self):
            return scraped

    local = CollectorRegistry()
    local.register(_Now())
    return generate_latest(registry) + generate_latest(local)
