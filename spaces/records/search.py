"""Discovery: the full-text document of a space, its trending score, and the search query.

Writes here are set-based (one UPDATE for any number of spaces) so the seeding command, the
beat task and the services that change one space share the same code.

* `Space.search_vector` is PostgreSQL full text (config "english": stemmed, stop words
  dropped) over title and name (weight A), tags (B), short description (C) and the start of
  the README (D), so a title hit ranks above a README hit. Services call
  `space_search_vector_refresh` whenever one of those fields changes.
* `Space.trending_score` is the sum over the last 7 days of likes, and a little of comments,
  each weighted by its age (half-life 3 days). Beat refreshes it for every space with recent
  activity; the like services refresh the one space they touch.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import F, Func, QuerySet, Subquery, TextField, Value
from django.db.models.functions import Left

from spaces.records.models import Space

SEARCH_CONFIG = "english"
# The columns the document is made of: a change to any of them calls for a refresh.
SEARCHED_FIELDS = frozenset({"title", "name", "tags", "short_description", "readme"})
TRENDING_WINDOW = timedelta(days=7)
TRENDING_HALF_LIFE = timedelta(days=3)
# A comment says someone used the demo, but a like is the explicit vote: it counts 5 times more.
TRENDING_COMMENT_WEIGHT = 0.2
# Decay lowers every score by the same factor, which changes no order; so the periodic refresh
# rewrites a space only when its score moved by more than this fraction (new likes or comments,
# likes leaving the window), not every space every few minutes: each rewrite of a row also
# re-indexes it, search document included.
TRENDING_REWRITE_TOLERANCE = 0.01
# Only the beginning of a README goes into the document: it says what the demo is, and every
# search that matches many spaces reads the whole document of each to rank it.
README_INDEXED_CHARS = 10_000

# The prefix of the last word is matched only when it is a plain word of at least 3 letters or
# digits: shorter prefixes match half the dictionary, and anything else could be an operator
# of websearch syntax ("-word", a quote) or, passed to to_tsquery, tsquery syntax.
_PLAIN_WORD = re.compile(r"[^\W_]{3,}")


def _array_to_text(field: str) -> Func:
    return Func(F(field), Value(" "), function="array_to_string", output_field=TextField())


def space_document() -> SearchVector:
    """The weighted document of a space, as an expression over its own columns."""
    return (SearchVector("title", "name", weight="A", config=SEARCH_CONFIG)
            + SearchVector(_array_to_text("tags"), weight="B", config=SEARCH_CONFIG)
            + SearchVector("short_description", weight="C", config=SEARCH_CONFIG)
            + SearchVector(Left("readme", README_INDEXED_CHARS), weight="D", config=SEARCH_CONFIG))


def space_search_vector_refresh(spaces: QuerySet[Space] | Iterable[int]) -> int:
    """Recompute `search_vector` of `spaces` (a queryset, or ids) in one UPDATE.

    A queryset UPDATE sends no signals and leaves `updated_at` alone: refreshing the index is
    not a change of the space.
    """
    qs = spaces if isinstance(spaces, QuerySet) else Space.objects.filter(pk__in=list(spaces))
    return qs.order_by().update(search_vector=space_document())


def search_query(text: str) -> SearchQuery | None:
    """The tsquery for what a person typed: websearch syntax ("quoted phrase", -not, or),
    stemmed, plus the last word as a prefix so "classif" finds "classifier" while typing.

    None when there is nothing to search for.
    """
    text = text.strip()
    if not text:
        return None
    query = SearchQuery(text, search_type="websearch", config=SEARCH_CONFIG)
    head, _, last = text.rpartition(" ")
    if _PLAIN_WORD.fullmatch(last) and text.count('"') % 2 == 0:
        prefix = SearchQuery(f"{last}:*", search_type="raw", config=SEARCH_CONFIG)
        head = head.strip()
        if head:
            prefix = SearchQuery(head, search_type="websearch", config=SEARCH_CONFIG) & prefix
        query = query | prefix
    return query


class DeferredJoinList:
    """A sorted space list for paginators whose slices sort narrow rows, not whole ones.

    A page is `qs[offset:offset + size]`. Sorting whole rows (tags, descriptions, the owner's
    row...) to skip thousands of them spills the sort to disk on a deep page; here the slice
    first orders only the sort keys and ids, then loads the page's rows by id ("deferred
    join"), in the same single SQL statement. count() is the queryset's.
    """

    ordered = True  # Django's Paginator warns about unordered lists

    def __init__(self, qs: QuerySet[Space]):
        if not qs.ordered:
            raise ValueError("DeferredJoinList needs an ordered queryset")
        self.qs = qs

    def count(self) -> int:
        return self.qs.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[Space]:
        if not isinstance(index, slice):
            raise TypeError("DeferredJoinList supports slices only")
        page_ids = self.qs.values("pk")[index]
        return list(self.qs.filter(pk__in=Subquery(page_ids)))
