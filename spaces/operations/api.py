"""GET /healthz, /readyz and /metrics: the probes and the scrape endpoint.

DRF views without authentication classes: a probe must never read a session or a token from
the database, and the OpenAPI schema (/api/schema) lists them. Errors are the API's
{"detail", "code"}; a database or broker that does not answer gives 503 with Retry-After.
"""
from __future__ import annotations

import hmac

import redis
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import serializers
from rest_framework.views import APIView

from spaces.lifecycle import readiness

from . import metrics

RETRY_AFTER = readiness.RETRY_AFTER
PARTS = {"database": "the database (Postgres)", "broker": "the broker (Redis)",
         "engine": "the container engine (as a lifecycle worker last saw it)"}


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response


def unavailable(part: str) -> JsonResponse:
    response = JsonResponse({"detail": f"{PARTS[part]} does not answer; try again shortly",
                             "code": f"{part}_unavailable"}, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    return _no_store(response)


class ProbeView(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()


class HealthzView(ProbeView):
    """The process is up: answers without touching the database, Redis or the engine."""

    @extend_schema(operation_id="healthz", tags=["operations"], auth=[],
                   responses={200: inline_serializer("Health", {"status": serializers.CharField()})})
    def get(self, request):
        return _no_store(JsonResponse({"status": "up"}))


class ReadyzView(ProbeView):
    """Whether this hub can serve and run spaces now: 200, or 503 naming what does not answer
    (database, broker, engine). Also whether spaces run behind the host firewall."""

    @extend_schema(operation_id="readyz", tags=["operations"], auth=[], responses={
        200: inline_serializer("Ready", {"status": serializers.CharField(), "checks": serializers.DictField(),
                                         "failing": serializers.ListField(), "isolation": serializers.CharField(),
                                         "message": serializers.CharField()}),
        503: OpenApiResponse(description="not ready: `failing` names the parts that do not answer")})
    def get(self, request):
        found = readiness.checks()
        failing = [name for name, value in found.items() if value == "failing"]
        ready = all(value == "ok" for value in found.values())
        message = "ready" if ready else "not ready: " + "; ".join(
            f"{PARTS[name]} does not answer" for name in failing) if failing else "not ready"
        body = {"status": "ready" if ready else "unavailable", "checks": found, "failing": failing,
                "isolation": readiness.isolation(), "message": message}
        response = _no_store(JsonResponse(body, status=200 if ready else 503))
        if not ready:
            response["Retry-After"] = str(RETRY_AFTER)
        return response


def broker_client() -> redis.Redis:
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis+socket://"):  # kombu's spelling of a unix socket (hub/settings.py)
        url = "unix://" + url[len("redis+socket://"):]
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def token_matches(request) -> bool:
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              settings.METRICS_TOKEN.encode())


class MetricsView(ProbeView):
    """Prometheus metrics of the hub, its workers, its queues and its spaces. Only with
    `Authorization: Bearer <METRICS_TOKEN>`; 404 while METRICS_TOKEN is empty."""

    @extend_schema(operation_id="metrics", tags=["operations"], auth=[], responses={
        (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="the Prometheus text exposition format"),
        401: OpenApiResponse(description="no or a wrong bearer token"),
        404: OpenApiResponse(description="metrics are off (METRICS_TOKEN is empty)"),
        503: OpenApiResponse(description="the database or the broker does not answer (Retry-After)")})
    def get(self, request):
        if not settings.METRICS_TOKEN:
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        if not token_matches(request):
            response = JsonResponse({"detail": "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>",
                                     "code": "not_authenticated"}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        try:
            body = metrics.render(broker_client())
        except DatabaseError:
            return unavailable("database")
        except redis.RedisError:
            return unavailable("broker")
        return _no_store(HttpResponse(body, content_type=CONTENT_TYPE_LATEST))
