"""Reads, and the one access check every surface goes through (design.md §6).

`space_get_for_viewer` is the only way a view, an API call or the proxy's callback gets a
Space. A private space that the caller may not see raises exactly the same Http404 as a space
that does not exist, so nothing tells them apart.
"""
from __future__ import annotations

import enum

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.postgres.search import SearchRank
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from spaces.access.models import Collaborator
from spaces.access.services import share_link_valid_for
from spaces.records.models import Sdk, Space, Visibility
from spaces.records.search import search_query
from spaces.records.status import SpaceStatus


class Role(enum.IntEnum):
    """What the caller is to a space, weakest first, so `role >= Role.EDITOR` reads naturally."""

    NONE = 0
    PUBLIC = 1  # anyone, on a public space
    SHARE_LINK = 2  # holds a valid share link (private space)
    VIEWER = 3
    EDITOR = 4
    OWNER = 5


class Action(enum.Enum):
    """What a caller wants to do, with the weakest role that may (the role table of design.md §6)."""

    VIEW = ("view", Role.PUBLIC)  # page, app
    READ_COMMENTS = ("read_comments", Role.PUBLIC)  # not share-link holders: see can()
    INTERACT = ("interact", Role.VIEWER)  # comment, like (and PUBLIC spaces: any logged-in user)
    READ_LOGS = ("read_logs", Role.EDITOR)  # build/run logs, revisions
    READ_FILES = ("read_files", Role.PUBLIC)  # files, history, clone (not share-link holders: see can())
    EDIT = ("edit", Role.EDITOR)  # upload, restart, variables/secrets
    # A branch preview (issue 10 item 8): its host, its page entry and the API. Editors only,
    # whatever the space's visibility: a branch is work in progress, not a published app.
    OPEN_PREVIEW = ("open_preview", Role.EDITOR)
    ADMIN = ("admin", Role.OWNER)  # visibility, collaborators, share links, pause, delete

    @property
    def least_role(self) -> Role:
        return self.value[1]


def space_role(space: Space, user) -> Role:
    """The caller's role on `space` (share links are added by the caller that checked one)."""
    collab = None
    if user is not None and user.is_authenticated and space.owner_id != user.pk:
        collab = Collaborator.objects.filter(space=space, user=user).values_list("role", flat=True).first()
    return _role_of(space, user, collab)


def space_roles(spaces, user) -> dict[int, Role]:
    """space_role of each of `spaces` (by pk), with one query for all: for lists."""
    collabs = {}
    if user is not None and user.is_authenticated:
        collabs = dict(Collaborator.objects.filter(user=user, space__in=[s.pk for s in spaces])
                       .values_list("space_id", "role"))
    return {s.pk: _role_of(s, user, collabs.get(s.pk)) for s in spaces}


def _role_of(space: Space, user, collab: str | None) -> Role:
    """The rules of space_role, given the caller's Collaborator.role on the space (or None)."""
    if user is not None and user.is_authenticated:
        # The owner.
        if space.owner_id == user.pk:
            return Role.OWNER
        # A collaborator.
        if collab == Collaborator.Role.EDITOR:
            return Role.EDITOR
        if collab == Collaborator.Role.VIEWER:
            return Role.VIEWER
    # Everyone else sees public spaces only.
    if space.visibility == Visibility.PUBLIC:
        return Role.PUBLIC
    return Role.NONE


def can(role: Role, action: Action, *, user=None, space: Space | None = None) -> bool:
    """Whether `role` may do `action`. Liking and commenting on a public space needs a login."""
    if action is Action.INTERACT and space is not None and space.visibility == Visibility.PUBLIC:
        return bool(user is not None and user.is_authenticated)
    if action is Action.READ_COMMENTS and role == Role.SHARE_LINK:
        return False  # a share link opens the page and the app, not the discussion
    if action is Action.READ_FILES and role == Role.SHARE_LINK:
        return False  # nor the files: a link shares the running app, not its code (design.md §6)
    return role >= action.least_role


def space_get_for_viewer(*, owner: str, name: str, user=None, share_link_ids=(),
                         action: Action = Action.VIEW) -> tuple[Space, Role]:
    """The space and the caller's role, or Http404 when it is missing or hidden from them.

    A caller that may see the space but not do `action` gets PermissionDenied from the view,
    not here: seeing is decided here, doing by `can`.
    """
    user = user or AnonymousUser()
    space = (Space.objects.select_related("owner", "running_revision", "latest_revision")
             .filter(owner__username__iexact=owner, name__iexact=name)
             .exclude(status="DELETING").first())
    # Missing.
    if space is None:
        raise Http404("No such space.")
    role = space_role(space, user)
    # A valid share link (redeemed in this browser session) lets an outsider into this one
    # private space.
    if role < Role.PUBLIC and share_link_ids and share_link_valid_for(space.pk, share_link_ids):
        role = Role.SHARE_LINK
    # Private and not theirs: the same answer as missing.
    if role < Role.PUBLIC:
        raise Http404("No such space.")
    return space, role


def space_get_for_git(*, owner: str, name: str, user=None) -> tuple[Space, Role]:
    """space_get_for_viewer for a git URL, where the name may end in `.git` (never with share
    links: they open the app, not the repository)."""
    try:
        return space_get_for_viewer(owner=owner, name=name, user=user)
    except Http404:
        if not name.lower().endswith(".git") or len(name) <= 4:
            raise
    return space_get_for_viewer(owner=owner, name=name[:-4], user=user)


def space_list_visible_to(user) -> QuerySet[Space]:
    """Spaces `user` may see in lists: public ones, and private ones they own or collaborate on.

    Rows come with what a card or SpaceOut shows (owner, both revisions) and without the
    large columns no list shows (README, search document, revisions' logs).
    """
    qs = (Space.objects.exclude(status=SpaceStatus.DELETING)
          .select_related("owner", "latest_revision", "running_revision")
          .defer("readme", "search_vector", "latest_revision__build_log", "latest_revision__metadata",
                 "running_revision__build_log", "running_revision__metadata"))
    if user is None or not user.is_authenticated:
        return qs.filter(visibility=Visibility.PUBLIC)
    # EXISTS rather than a join on collaborators: a join repeats a space per collaborator and
    # needs DISTINCT over the whole list, which keeps the planner from walking a sort index.
    collaborates = Collaborator.objects.filter(space=OuterRef("pk"), user=user)
    return qs.filter(Q(visibility=Visibility.PUBLIC) | Q(owner=user) | Exists(collaborates))


SPACE_SORTS = {
    "trending": ("-trending_score", "-like_count", "-updated_at", "-pk"),
    "likes": ("-like_count", "-updated_at", "-pk"),
    # "Recently updated", as on Hugging Face: updated_at moves with uploads, edits and status
    # changes (the (visibility, -updated_at) index serves it).
    "recent": ("-updated_at", "-pk"),
}
SEARCH_MAX_LENGTH = 200


def space_filter(qs: QuerySet[Space], *, search: str = "", sdk: str = "", tag: str = "", author: str = "",
                 status: str = "", sort: str = "") -> QuerySet[Space]:
    """Narrow and order a space list by the browse page's and the API's query parameters.

    `search` is full text (spaces.records.search.search_query) or exactly the owner's username. Without
    `sort`, a search is ordered by relevance, anything else by trending. Every order ends with
    -pk, so equal keys never swap places between two pages. An unknown sdk, status or sort
    raises ValidationError keyed by the parameter.
    """
    search = search.strip()
    errors = {}
    if len(search) > SEARCH_MAX_LENGTH:
        errors["search"] = f"Use at most {SEARCH_MAX_LENGTH} characters."
    if sdk and sdk not in Sdk.values:
        errors["sdk"] = f"Use one of: {', '.join(Sdk.values)}."
    if status and status.upper() not in SpaceStatus.values:
        errors["status"] = f"Use one of: {', '.join(SpaceStatus.values)}."
    if sort and sort not in SPACE_SORTS:
        errors["sort"] = f"Use one of: {', '.join(SPACE_SORTS)}."
    if errors:
        raise ValidationError(errors)
    query = search_query(search)
    if query is not None:
        matches = Q(search_vector=query)
        if len(search.split()) == 1:
            # The owner as a scalar subquery, run once per query: `owner_id = $1` can then use
            # the owner index next to the text index, instead of a join on every row.
            owner = get_user_model().objects.filter(username__iexact=search).values("pk")[:1]
            matches |= Q(owner_id=Subquery(owner))
        qs = qs.filter(matches)
    if sdk:
        qs = qs.filter(sdk=sdk)
    if tag:
        qs = qs.filter(tags__contains=[tag.lower()])
    if author:
        qs = qs.filter(owner__username__iexact=author)
    if status:
        qs = qs.filter(status=status.upper())
    if not sort and query is not None:
        return qs.annotate(rank=SearchRank(F("search_vector"), query)).order_by(
            "-rank", *SPACE_SORTS["trending"])
    return qs.order_by(*SPACE_SORTS[sort or "trending"])
