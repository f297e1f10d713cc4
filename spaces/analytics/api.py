"""GET /api/spaces/<owner>/<name>/analytics?period=hour|day|7d|30d (editors and the owner)."""
from __future__ import annotations

import redis
from django.db import DatabaseError
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi

from . import selectors

RETRY_AFTER = "5"


class Figures(serializers.Serializer):
    requests = serializers.IntegerField()
    page_views = serializers.IntegerField()
    api_calls = serializers.IntegerField()
    client_errors = serializers.IntegerField(help_text="4xx answers")
    server_errors = serializers.IntegerField(help_text="5xx answers")
    bytes_sent = serializers.IntegerField()
    latency_median_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)


class Point(Figures):
    start = serializers.DateTimeField()


class AnalyticsOut(serializers.Serializer):
    period = serializers.ChoiceField(choices=list(selectors.PERIODS))
    bucket = serializers.ChoiceField(choices=["minute", "hour", "day"])
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    rolled_up_at = serializers.DateTimeField(allow_null=True, help_text="when the proxy's log was last read")
    totals = Figures()
    unique_visitors = inline_serializer("UniqueVisitors", {
        "count": serializers.IntegerField(),
        "counting": serializers.ChoiceField(choices=["distinct", "sum_of_daily_uniques"]),
        "label": serializers.CharField()})
    daily_unique_visitors = inline_serializer("DailyUniques", {
        "day": serializers.DateField(), "count": serializers.IntegerField()}, many=True)
    lifecycle = inline_serializer("LifecycleCounts", {
        "wakes": serializers.IntegerField(), "wake_median_ms": serializers.FloatField(allow_null=True),
        "wake_p95_ms": serializers.FloatField(allow_null=True), "sleeps": serializers.IntegerField(),
        "restarts": serializers.IntegerField(), "crashes": serializers.IntegerField()})
    series = Point(many=True)


class SpaceAnalyticsApi(BaseApi):
    def handle_exception(self, exc):
        # The database or Redis is away (authentication reads them too): 503, never 500.
        if isinstance(exc, (DatabaseError, redis.RedisError)):
            return Response({"detail": "Analytics are unavailable right now; try again shortly.",
                             "code": "unavailable"}, status=503, headers={"Retry-After": RETRY_AFTER})
        return super().handle_exception(exc)

    @extend_schema(parameters=[OpenApiParameter("period", str, enum=list(selectors.PERIODS),
                                                description="hour, day (default), 7d or 30d")],
                   responses=AnalyticsOut)
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.READ_LOGS)
        try:
            period = selectors.period_get(request.query_params.get("period"))
        except selectors.BadPeriod as exc:
            raise serializers.ValidationError({"period": str(exc)}, code="invalid_period") from None
        return Response(AnalyticsOut(selectors.space_analytics(space=space, period=period)).data)
