"""Benchmark headers: each response says how long the hub took and how many SQL queries it ran.

Only with BENCH_HEADERS=true (bench/browse_search.py starts its hub so); never in production,
where timings would help an attacker tell what exists. Outermost in the middleware chain, so
the time covers every middleware, the view and the rendering, as a user's request pays them:

    Server-Timing: app;dur=12.34      milliseconds inside the hub (not the server or the network)
    X-Demohub-Queries: 4              SQL statements run for this request

Queries are counted by an execute wrapper on every database connection (those opened before
this middleware and after), into a counter the request's context carries; a sync view run in a
thread sees the same context (asgiref copies it), so the count is the request's own even when
several run at once.
"""
from __future__ import annotations

import time
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import connections
from django.db.backends.signals import connection_created

QUERY_COUNT: ContextVar[list[int] | None] = ContextVar("demohub_bench_queries", default=None)


def count_query(execute, sql, params, many, context):
    box = QUERY_COUNT.get()
    if box is not None:
        box[0] += 1
    return execute(sql, params, many, context)


def watch_connection(sender, connection, **kwargs) -> None:
    if count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(count_query)


class BenchHeadersMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        connection_created.connect(watch_connection, dispatch_uid="demohub-bench-headers")
        for connection in connections.all(initialized_only=True):  # opened before this middleware
            watch_connection(None, connection)

    def __call__(self, request):
        if self.is_async:
            return self.acall(request)
        box, started = self.begin()
        return self.finish(self.get_response(request), box, started)

    async def acall(self, request):
        box, started = self.begin()
        return self.finish(await self.get_response(request), box, started)

    @staticmethod
    def begin() -> tuple[list[int], float]:
        box = [0]
        QUERY_COUNT.set(box)
        return box, time.perf_counter()

    @staticmethod
    def finish(response, box: list[int], started: float):
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        response["X-Demohub-Queries"] = str(box[0])
        return response
