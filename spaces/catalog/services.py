"""Catalog writes: creating a space, changing its settings, uploading a revision.

Functions are named <entity>_<action> and take keyword-only arguments. Status changes go
through `space_transition` only; work for the workers is sent after the transaction commits,
with ids only (spaces/records/jobs.py), and tasks claim it with conditional UPDATEs so a
duplicate delivery does nothing.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from spaces.access.services import space_access_changed
from spaces.lifecycle import quotas
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import HostLabel, Revision, Sdk, Space, Visibility
from spaces.records.search import SEARCHED_FIELDS, space_search_vector_refresh
from spaces.records.status import SpaceStatus
from spaces.records.tags import TagError, normalize_tags
from spaces.repos.services import commit_upload

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


# ----------------------------------------------------------------------------- spaces
def _label_for(owner: str, name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", f"{owner}-{name}".lower()).strip("-")[:50].strip("-") or "space"
    candidate = base
    digest = hashlib.sha256(f"{owner}/{name}".encode()).hexdigest()
    for attempt in range(20):
        if not HostLabel.objects.filter(label=candidate).exists():
            return candidate
        # Two spaces would share a label (or it was used before): add a short hash suffix.
        candidate = f"{base[:50]}-{digest[attempt:attempt + 6]}"
    return f"{base[:40]}-{secrets.token_hex(6)}"


def space_create(*, owner: User, name: str, sdk: str, visibility: str = Visibility.PUBLIC,
                 title: str = "", short_description: str = "") -> Space:
    if sdk not in Sdk.values:
        raise ValidationError({"sdk": f"Use one of: {', '.join(Sdk.values)}."})
    if visibility not in Visibility.values:
        raise ValidationError({"visibility": "Use public or private."})
    if name.lower().endswith(".git") or "--" in name or ".." in name:
        # Hugging Face's clients refuse these, `--` separates a preview's branch in its host
        # name, and `.git` would be read as the repository suffix (design.md §5). Existing
        # spaces with such names keep working.
        raise ValidationError({"name": "A name may not end in .git or contain -- or .."})
    if Space.objects.filter(owner=owner, name__iexact=name).exists():
        raise ServiceError(f"You already have a space named {name}.", code="exists")
    quotas.check_space_create(owner)
    for _ in range(8):
        try:
            with transaction.atomic():
                label = _label_for(owner.username, name)
                HostLabel.objects.create(label=label)
                index = _free_address_index()
                space = Space(owner=owner, name=name, sdk=sdk, visibility=visibility, title=title or name,
                              short_description=short_description, label=label, address_index=index,
                              status=S.NO_APP_FILE, sleep_after=settings.SPACE_SLEEP_AFTER_DEFAULT)
                space.full_clean()
                space.save()
                break
        except IntegrityError:
            # Another space took the label or address index meanwhile (the unique constraint
            # on address_index decides between concurrent creates): pick again.
            continue
    else:
        raise ServiceError("Could not allocate an address for the space; try again.", code="busy")
    space_search_vector_refresh([space.pk])
    jobs.send_on_commit("spaces.tasks.publish_route_task", space.pk)
    return space


def _free_address_index() -> int:
    """The lowest address index no space holds: a deleted space's addresses are reused, so
    the subnet fills only with spaces that exist (design.md §3). Refused when it is full."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM {Space._meta.db_table} WHERE address_index = 1) THEN 1 "
            f"ELSE (SELECT MIN(s.address_index) + 1 FROM {Space._meta.db_table} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {Space._meta.db_table} t WHERE t.address_index = s.address_index + 1)) END")
        index = cursor.fetchone()[0]
    try:
        Space(address_index=index).slot_address("b")
    except ValueError:
        raise ServiceError("This hub has no free address for another space (SPACES_SUBNET is full); "
                           "ask the operator to widen it.", code="no_address", http_status=503) from None
    return index


def space_update(*, space: Space, **fields) -> Space:
    allowed = {"visibility", "title", "short_description", "tags", "sleep_after", "emoji", "allow_force_push"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({k: "This field cannot be changed." for k in unknown})
    if "visibility" in fields and fields["visibility"] not in Visibility.values:
        raise ValidationError({"visibility": "Use public or private."})
    if "sleep_after" in fields:
        value, least = fields["sleep_after"], settings.SPACE_SLEEP_AFTER_MIN
        if isinstance(value, bool) or not isinstance(value, int) or not (value == -1 or least <= value <= 10**9):
            raise ValidationError({"sleep_after": f"Use -1 (never) or a whole number of seconds, at least {least}."})
    if "tags" in fields:
        try:
            fields["tags"] = normalize_tags(fields["tags"])
        except TagError as exc:
            raise ValidationError({"tags": str(exc)}) from None
    for key, value in fields.items():
        setattr(space, key, value)
    space.full_clean()
    # Only the changed columns: counters (likes, comments, trending), status and the access
    # epoch are written concurrently by others and must not be overwritten with stale values.
    space.save(update_fields=[*fields, "updated_at"])
    if SEARCHED_FIELDS & set(fields):
        space_search_vector_refresh([space.pk])
    if "visibility" in fields:
        # The route gains or loses its access gate, and cached answers stop counting.
        space_access_changed(space.pk)
    return space


def revision_create(*, space: Space, archive, created_by: User, message: str | None = None) -> Revision:
    """Check and store an upload as one commit on main, then queue its build
    (spaces/repos/services.commit_upload: the archive is validated before any row or ref
    changes; a README config error still records the revision, as failed)."""
    return commit_upload(space, archive, created_by=created_by, message=message)
