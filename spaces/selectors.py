"""Reads, and the one access check every surface goes through (design.md §6).

`space_get_for_viewer` is the only way a view, an API call or the proxy's callback gets a
Space. A private space that the caller may not see raises exactly the same Http404 as a space
that does not exist, so nothing tells them apart.
"""
from __future__ import annotations

import enum

from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from .models import Collaborator, Space, Visibility


class Role(enum.IntEnum):
    """What the caller is to a space, weakest first, so `role >= Role.EDITOR` reads naturally."""

    NONE = 0
    PUBLIC = 1  # anyone, on a public space
    SHARE_LINK = 2  # holds a valid share link (private space)
    VIEWER = 3
    EDITOR = 4
    OWNER = 5


class Action(enum.Enum):
    VIEW = Role.PUBLIC  # page, app, comments (read)
    INTERACT = Role.VIEWER  # comment, like (and PUBLIC spaces: any logged-in user)
    READ_LOGS = Role.EDITOR  # build/run logs, revisions, files
    EDIT = Role.EDITOR  # upload, restart, variables/secrets
    ADMIN = Role.OWNER  # visibility, collaborators, share links, pause, delete


def space_role(space: Space, user) -> Role:
    """The caller's role on `space` (share links are added by the caller that checked one)."""
    if user is not None and user.is_authenticated:
        # The owner.
        if space.owner_id == user.pk:
            return Role.OWNER
        # A collaborator.
        collab = Collaborator.objects.filter(space=space, user=user).values_list("role", flat=True).first()
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
    return role >= action.value


def space_get_for_viewer(*, owner: str, name: str, user=None, share_role: Role | None = None,
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
    # A share link lifts an outsider to SHARE_LINK on this one space.
    if share_role is not None and role < share_role:
        role = share_role
    # Private and not theirs: the same answer as missing.
    if role < Role.PUBLIC:
        raise Http404("No such space.")
    return space, role


def space_list_visible_to(user) -> QuerySet[Space]:
    """Spaces `user` may see in lists: public ones, and private ones they own or collaborate on."""
    qs = Space.objects.exclude(status="DELETING").select_related("owner", "latest_revision")
    if user is None or not user.is_authenticated:
        return qs.filter(visibility=Visibility.PUBLIC)
    return qs.filter(Q(visibility=Visibility.PUBLIC) | Q(owner=user) | Q(collaborators__user=user)).distinct()


def space_list_annotated(user) -> QuerySet[Space]:
    return space_list_visible_to(user).annotate(like_count=Count("likes", distinct=True))


def space_filter(qs: QuerySet[Space], *, search: str = "", sdk: str = "", tag: str = "", author: str = "",
                 status: str = "") -> QuerySet[Space]:
    """Narrow a space list by the browse page's and the API's query parameters."""
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(title__icontains=search)
                       | Q(short_description__icontains=search) | Q(tags__contains=[search.lower()])
                       | Q(owner__username__iexact=search))
    if sdk:
        qs = qs.filter(sdk=sdk)
    if tag:
        qs = qs.filter(tags__contains=[tag.lower()])
    if author:
        qs = qs.filter(owner__username__iexact=author)
    if status:
        qs = qs.filter(status=status.upper())
    return qs
