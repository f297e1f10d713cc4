"""Reads of branch previews, for the space page and the API."""
from __future__ import annotations

from django.db.models import QuerySet

from spaces.records.models import Preview, Space


def preview_list(*, space: Space) -> QuerySet[Preview]:
    """The space's previews by branch name (the caller checked Action.OPEN_PREVIEW)."""
    return Preview.objects.filter(space=space).select_related("pushed_by").defer("build_log").order_by("branch")
