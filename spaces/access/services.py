"""Who may enter a space: collaborators, share links, and the proxy's access epoch.

Every change here that can take access away (a collaborator removed or demoted, a share link
revoked or expired, the space made private) bumps `Space.access_epoch` and republishes the
space's route: the epoch is part of the proxy's access-cache key, so cached "allowed" answers
stop counting at once, and the reload it causes ends long-lived connections opened before
(nginx `worker_shutdown_timeout`, well inside design.md §6's 60 s).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from spaces.access.models import Collaborator, ShareLink
from spaces.records import jobs
from spaces.records.errors import AccessError
from spaces.records.models import Space

logger = logging.getLogger(__name__)

SHARE_TOKEN_PREFIX = "dhs_"
SHARE_MAX_DAYS = 365
SHARE_MAX_USES = 1_000_000


def space_access_changed(space_id: int) -> None:
    """Invalidate what the proxy remembers about who may enter `space_id` (after commit)."""
    Space.objects.filter(pk=space_id).update(access_epoch=F("access_epoch") + 1)

    # Access may have narrowed: connections already open to the app end too (lifecycle/routes.py).
    jobs.send_on_commit("spaces.tasks.publish_route_task", space_id, kwargs={"end_open_connections": True})


def user_access_ended(user_id: int) -> int:
    """`user_id` lost access everywhere at once (deactivated, an API token revoked, a browser
    session logged out): bump the epoch of every private space they could enter by a role, so
    the proxy forgets its cached "allowed" answers for them now, not AUTH_CACHE_SECONDS later,
    and the reload ends their open connections. Public spaces need nothing: anyone may enter.
    Returns how many spaces were bumped."""
    space_ids = set(Space.objects.filter(visibility="private")
                    .filter(Q(owner_id=user_id) | Q(collaborators__user_id=user_id))
                    .exclude(status="DELETING").values_list("pk", flat=True))
    for space_id in space_ids:
        space_access_changed_quietly(space_id)
    return len(space_ids)


def space_access_changed_quietly(space_id: int) -> None:
    """space_access_changed for a caller whose own work is done (a logout, a revoked token):
    if the broker cannot take the route republication now, the epoch is bumped all the same and
    reconciliation republishes the route (RECONCILE_INTERVAL); the caller does not fail."""
    try:
        with transaction.atomic():
            space_access_changed(space_id)
    except Exception:
        logger.warning("space %s: access changed, route republication left to reconciliation",
                       space_id, exc_info=True)


# ----------------------------------------------------------------------------- collaborators
def collaborator_set(*, space: Space, username: str, role: str) -> tuple[Collaborator, bool]:
    """Add `username` with `role`, or change their role. Returns (collaborator, created)."""
    if role not in Collaborator.Role.values:
        raise AccessError("role: use viewer or editor.", code="invalid_role")
    user = User.objects.filter(username__iexact=(username or "").strip(), is_active=True).first()
    if user is None:
        raise AccessError(f"username: no user called {username!r}.", code="unknown_user")
    if user.pk == space.owner_id:
        raise AccessError("username: the owner already has every right on the space.", code="is_owner")
    with transaction.atomic():
        collab, created = Collaborator.objects.select_for_update().get_or_create(
            space=space, user=user, defaults={"role": role})
        # Both roles may open the app, so a role change leaves the proxy's answers valid.
        if not created and collab.role != role:
            collab.role = role
            collab.save(update_fields=["role"])
    return collab, created


def collaborator_remove(*, space: Space, username: str) -> bool:
    with transaction.atomic():
        deleted, _ = Collaborator.objects.filter(space=space, user__username__iexact=username).delete()
        if deleted:
            space_access_changed(space.pk)
    return bool(deleted)


# ----------------------------------------------------------------------------- share links
def _share_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def share_link_url(raw: str) -> str:
    return f"{settings.HUB_URL}/s/{raw}"


def share_link_create(*, space: Space, by: User, expires_in_days=None, max_uses=None,
                      note: str = "") -> tuple[ShareLink, str]:
    """A new link; the plain token is returned once, only its hash is stored."""
    errors = {}
    expires_at = None
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, (int, float)) \
                or not 0 < expires_in_days <= SHARE_MAX_DAYS:
            errors["expires_in_days"] = f"Use a number of days above 0 and at most {SHARE_MAX_DAYS}."
        else:
            expires_at = timezone.now() + timedelta(days=expires_in_days)
    if max_uses is not None and (isinstance(max_uses, bool) or not isinstance(max_uses, int)
                                 or not 1 <= max_uses <= SHARE_MAX_USES):
        errors["max_uses"] = f"Use a whole number from 1 to {SHARE_MAX_USES}."
    if not isinstance(note, str) or len(note) > 200:
        errors["note"] = "Use text of at most 200 characters."
    if errors:
        raise ValidationError(errors)
    raw = SHARE_TOKEN_PREFIX + secrets.token_urlsafe(24)
    link = ShareLink.objects.create(space=space, token_hash=_share_hash(raw), note=note.strip(),
                                    created_by=by, expires_at=expires_at, max_uses=max_uses)
    return link, raw


def share_link_revoke(*, link: ShareLink) -> None:
    with transaction.atomic():
        if ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            space_access_changed(link.space_id)
    link.refresh_from_db()


def _valid_links(now=None):
    now = now or timezone.now()
    return ShareLink.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)


def share_link_redeem(raw: str) -> ShareLink | None:
    """One use of `/s/<token>`: the link if it is valid (its use counted), else None.

    The use is counted by one conditional UPDATE, so `max_uses` holds under concurrency.
    """
    if not isinstance(raw, str) or not raw.startswith(SHARE_TOKEN_PREFIX) or len(raw) > 100:
        return None
    digest = _share_hash(raw)
    link = ShareLink.objects.select_related("space", "space__owner").filter(token_hash=digest).first()
    # The lookup is by an index on the hash; the compare below is what decides, in constant time.
    if link is None or not constant_time_compare(link.token_hash, digest):
        return None
    now = timezone.now()
    counted = (_valid_links(now).filter(pk=link.pk)
               .filter(Q(max_uses__isnull=True) | Q(use_count__lt=F("max_uses")))
               .update(use_count=F("use_count") + 1, last_used_at=now))
    if not counted or link.space.status == "DELETING":
        return None
    link.refresh_from_db()
    return link


def share_link_valid_for(space_id: int, link_ids) -> ShareLink | None:
    """The first of `link_ids` that still admits its holder to `space_id` (one query)."""
    ids = [i for i in link_ids if isinstance(i, int)]
    if not ids:
        return None
    return _valid_links().filter(space_id=space_id, pk__in=ids).first()


def share_links_expired_sweep() -> int:
    """Bump the epoch of spaces whose links expired since the last sweep (beat, every 30 s):
    the cached answers for their holders end now, and the reload ends open connections."""
    now = timezone.now()
    since = cache.get("demohub:share-sweep") or (now - timedelta(minutes=5))
    space_ids = set(ShareLink.objects.filter(expires_at__gt=since, expires_at__lte=now, revoked_at__isnull=True)
                    .values_list("space_id", flat=True))
    for space_id in space_ids:
        with transaction.atomic():
            space_access_changed(space_id)
    cache.set("demohub:share-sweep", now, None)
    return len(space_ids)


# ----------------------------------------------------------------------------- browser sessions
SESSION_SHARE_LINKS = "demohub_share_links"


def share_links_in_session(request) -> list[int]:
    """The share links this browser redeemed (`/s/<token>`), newest last."""
    session = getattr(request, "session", None)
    ids = session.get(SESSION_SHARE_LINKS, []) if session is not None else []
    return [i for i in ids if isinstance(i, int)]


def share_link_remember(request, link: ShareLink) -> None:
    ids = [i for i in share_links_in_session(request) if i != link.pk] + [link.pk]
    request.session[SESSION_SHARE_LINKS] = ids[-50:]
