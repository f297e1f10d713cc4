"""{% owner_sparklines spaces as sparks %}: visit sparklines (SVG) of the spaces in a list that
the viewer owns, from one query; other people's spaces get none (analytics are private)."""
from __future__ import annotations

from django import template

from spaces.analytics import charts, selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def owner_sparklines(context, spaces) -> dict:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {}
    mine = [s.pk for s in spaces if s.owner_id == user.pk]
    return {pk: (charts.sparkline(values), sum(values)) for pk, values in selectors.visits_by_day(mine).items()}


@register.filter
def spark_for(sparks: dict, pk: int):
    return sparks.get(pk) if sparks else None
