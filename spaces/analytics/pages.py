"""The Analytics tab of a space (editors and the owner), charts rendered server-side."""
from __future__ import annotations

import redis
from django.conf import settings
from django.db import DatabaseError
from django.shortcuts import render

from spaces.access.selectors import Action, Role
from spaces.access.viewer import space_for_page

from . import charts, selectors

RETRY_AFTER = "5"


def space_analytics_page(request, owner, name):
    try:
        space, role = space_for_page(request, owner, name, Action.READ_LOGS)
        try:
            period = selectors.period_get(request.GET.get("period"))
        except selectors.BadPeriod as exc:
            return render(request, "spaces/analytics.html",
                          {"space": space, "bad_period": str(exc), **_tabs(role),
                           "periods": list(selectors.PERIODS)}, status=400)
        data = selectors.space_analytics(space=space, period=period)
        context = {"space": space, "data": data, "periods": list(selectors.PERIODS), **_tabs(role),
                   "interval": f"{settings.ANALYTICS_INTERVAL:g}",
                   "traffic_chart": charts.traffic_chart(data), "errors_chart": charts.errors_chart(data),
                   "latency_chart": charts.latency_chart(data), "visitors_chart": charts.visitors_chart(data)}
        return render(request, "spaces/analytics.html", context)
    except (DatabaseError, redis.RedisError):
        response = render(request, "spaces/analytics_unavailable.html", status=503)
        response["Retry-After"] = RETRY_AFTER
        return response


def _tabs(role: Role) -> dict:
    return {"role": role, "can_edit": True, "can_logs": True, "can_admin": role >= Role.OWNER}
