"""Account reads: a user's API tokens.
"""
from __future__ import annotations

from django.db.models import QuerySet

from spaces.accounts.models import ApiToken

SPACE_SORTS = {
    "trending": ("-trending_score", "-like_count", "-updated_at", "-pk"),
    "likes": ("-like_count", "-updated_at", "-pk"),
    # "Recently updated", as on Hugging Face: updated_at moves with uploads, edits and status
    # changes (the (visibility, -updated_at) index serves it).
    "recent": ("-updated_at", "-pk"),
}
SEARCH_MAX_LENGTH = 200


def token_list_for_user(user) -> QuerySet[ApiToken]:
    """`user`'s API tokens, revoked ones included, newest first (only ever the owner's)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")
