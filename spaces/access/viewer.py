"""The one access check as the HTTP faces use it: the space a request may see, and may act on.

`get_space` for the API (401/403 as DRF answers), `space_for_page` for HTML pages (403 page);
both 404 a space the caller may not see, exactly as a missing one.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied as PagePermissionDenied
from rest_framework.exceptions import NotAuthenticated, PermissionDenied

from spaces.access.selectors import (
    Action,
    Role,
    can,
    space_get_for_viewer,
)
from spaces.access.services import share_links_in_session
from spaces.records.models import Space


def get_space(request, owner: str, name: str, action: Action = Action.VIEW) -> tuple[Space, Role]:
    """The space if the caller may see it (else 404), and may do `action` (else 403/401)."""
    space, role = space_get_for_viewer(owner=owner, name=name, user=request.user,
                                       share_link_ids=share_links_in_session(request))
    if not can(role, action, user=request.user, space=space):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Log in or send an API token to do this.")
        raise PermissionDenied("You may see this space but not do this.")
    return space, role


def space_for_page(request, owner: str, name: str, action: Action = Action.VIEW) -> tuple[Space, Role]:
    """The space for an HTML page: 404 if the caller may not see it (share links redeemed in
    this browser count), 403 if they may see it but not do `action`."""
    space, role = space_get_for_viewer(owner=owner, name=name, user=request.user,
                                       share_link_ids=share_links_in_session(request))
    if not can(role, action, user=request.user, space=space):
        raise PagePermissionDenied
    return space, role
