"""HTML pages for finding spaces: the browse list and owners' profile pages.

Both show the same cards, filters, sorts and pagination through `space_list_context`, over
`space_list_visible_to` (the list form of the one access check): a private space appears
only to its owner and collaborators, on every page.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, render

from spaces.access.selectors import space_filter, space_list_visible_to
from spaces.records.models import Sdk, Space
from spaces.records.search import DeferredJoinList

PAGE_SIZE = settings.BROWSE_PAGE_SIZE  # 24 unless set
LIST_PARAMS = ("search", "sdk", "tag", "sort")
SORT_CHOICES = [("trending", "Trending"), ("likes", "Most liked"), ("recent", "Recently updated")]


def space_list_context(request, spaces: QuerySet[Space]) -> dict:
    """Filter, sort and paginate `spaces` by the query string, for the _space_list template.

    An invalid parameter (an unknown sdk or sort) is shown as a message and left out, so a
    mistyped link still lists spaces.
    """
    params = {key: request.GET.get(key, "").strip() for key in LIST_PARAMS}
    filter_errors = []
    try:
        found = space_filter(spaces, **params)
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            filter_errors.append(f"{field}: {' '.join(errors)}")
            params[field] = ""
        found = space_filter(spaces, **params)
    page = Paginator(DeferredJoinList(found), PAGE_SIZE).get_page(request.GET.get("page"))
    # Without a sort, a search is ordered by relevance and a plain list by trending.
    shown_sort = params["sort"] or ("" if params["search"] else "trending")
    return {"page": page, **params, "sort": shown_sort, "filter_errors": filter_errors,
            "query": urlencode({key: value for key, value in params.items() if value}),
            "sdks": Sdk.choices, "sorts": SORT_CHOICES}


def user_profile(request, username: str):
    """A user's page: who they are and their spaces the viewer may see (users are public)."""
    owner = get_object_or_404(get_user_model(), username__iexact=username)
    context = space_list_context(request, space_list_visible_to(request.user).filter(owner=owner))
    return render(request, "spaces/profile.html", {**context, "profile": owner})
