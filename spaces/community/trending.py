"""Trending: a score per space from its recent likes and comments, decayed by age.

The browse page sorts by it; a periodic task and each like or comment keep it fresh.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import timezone as dt_timezone

from django.db.models import Exists, F, FloatField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Abs, Cast, Coalesce, Extract, Power
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from spaces.community.models import Comment, Like
from spaces.records.models import Space
from spaces.records.search import (
    TRENDING_COMMENT_WEIGHT,
    TRENDING_HALF_LIFE,
    TRENDING_REWRITE_TOLERANCE,
    TRENDING_WINDOW,
)


def _recent_likes(since) -> QuerySet[Like]:
    return Like.objects.filter(space=OuterRef("pk"), created_at__gte=since)


def _recent_comments(since) -> QuerySet[Comment]:
    # What everyone sees (as Space.comment_count counts): not hidden, not in a hidden thread.
    return (Comment.objects.filter(space=OuterRef("pk"), created_at__gte=since, hidden=False)
            .exclude(reply_to__hidden=True))


def _decayed_sum(rows: QuerySet, *, now) -> Coalesce:
    """Σ 0.5^(age / half-life) over `rows` (likes or comments of the outer space)."""
    # In double precision: EXTRACT gives numeric, and numeric power() is many times slower.
    epoch = Cast(Extract("created_at", "epoch", tzinfo=dt_timezone.utc), FloatField())
    age_seconds = Value(now.timestamp()) - epoch
    weight = Power(Value(0.5), age_seconds / Value(TRENDING_HALF_LIFE.total_seconds()),
                   output_field=FloatField())
    total = rows.order_by().values("space").annotate(total=Sum(weight)).values("total")
    return Coalesce(Subquery(total, output_field=FloatField()), Value(0.0))


def space_trending_refresh(space_ids: Iterable[int] | None = None) -> int:
    """Recompute `trending_score` in one UPDATE: of `space_ids`, or (None) of every space
    whose score may have changed (a score above zero, or likes or comments in the window).
    Returns the number of spaces written."""
    now = timezone.now()
    since = now - TRENDING_WINDOW
    score = (_decayed_sum(_recent_likes(since), now=now)
             + Value(TRENDING_COMMENT_WEIGHT) * _decayed_sum(_recent_comments(since), now=now))
    if space_ids is not None:
        qs = Space.objects.filter(pk__in=list(space_ids))
    else:
        # Spaces with no score and no recent activity keep their 0 without being looked at.
        qs = (Space.objects.filter(Q(trending_score__gt=0) | Exists(_recent_likes(since))
                                   | Exists(_recent_comments(since)))
              .alias(new_score=score)
              .filter(GreaterThan(Abs(F("new_score") - F("trending_score")),
                                  Value(TRENDING_REWRITE_TOLERANCE) * F("trending_score"))))
    return qs.update(trending_score=score)
