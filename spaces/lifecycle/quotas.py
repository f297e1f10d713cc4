"""Per-user quotas (issue 15, finding 7): one user must not exhaust what every user shares.

Each quota is a setting (hub/settings.py, README "Quotas"); 0 turns it off. A refusal is a
ServiceError with HTTP 403 and a code naming the quota, so the API answers
{"detail", "code"} and the page forms show the same sentence. The creation rate limit is a
429 (spaces/accounts/ratelimits.py). Counts are of the space's owner: an editor's upload or restart
spends the owner's quota, since the owner's spaces are what it fills.

* spaces owned        QUOTA_SPACES_PER_USER           checked by space_create
* running spaces      QUOTA_RUNNING_SPACES_PER_USER   checked by an upload or a restart of a
                                                      space that is not running yet
* builds queued       QUOTA_QUEUED_BUILDS_PER_USER    queued or building revisions, at upload
* GPU spaces          QUOTA_GPU_SPACES_PER_USER       the same checks, for a GPU tier the owner chose
                                                      (spaces/nodes; a README's suggestion past it
                                                      falls back to the default tier instead)
* storage             QUOTA_STORAGE_PER_USER          bytes of the owner's snapshots (the
                                                      uploaded repos, uncompressed, and the
                                                      branch previews' commits), at upload
                                                      and at a push

The checks read counts without a lock, so two requests at the same instant may both pass by
one; the quota bounds what a user can take, it is not an exact ledger.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models import Sum

from spaces.nodes.conf import setting as node_setting
from spaces.nodes.tiers import gpu_quota_allows, space_tier
from spaces.records.errors import ServiceError
from spaces.records.models import Preview, Revision, Space
from spaces.records.status import SERVING, SpaceStatus

S = SpaceStatus
R = Revision.Status
# A space counts as running from its first build (it starts once built) until it stops or sleeps.
RUNNING_STATUSES = frozenset(SERVING) | {S.BUILDING, S.APP_STARTING, S.RUNNING_APP_STARTING}


def _refuse(message: str, code: str):
    return ServiceError(message, code=code, http_status=403)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def check_space_create(owner) -> None:
    limit = settings.QUOTA_SPACES_PER_USER
    if limit and Space.objects.filter(owner=owner).count() >= limit:
        raise _refuse(f"You have {limit} spaces, the most one user may have on this hub; delete one "
                      "first.", "quota_spaces")


def check_build_queue(space: Space) -> None:
    limit = settings.QUOTA_QUEUED_BUILDS_PER_USER
    if limit and Revision.objects.filter(space__owner_id=space.owner_id,
                                         status__in=[R.QUEUED, R.BUILDING]).count() >= limit:
        raise _refuse(f"The spaces of {space.owner.username} already have {limit} builds queued or "
                      "running, the most one user may have; wait for one to finish.", "quota_builds_queued")


def check_running(space: Space) -> None:
    """Before a change that would make a space run that does not run now."""
    limit = settings.QUOTA_RUNNING_SPACES_PER_USER
    if space.status in RUNNING_STATUSES or space.status == S.SLEEPING:
        return  # runs already, or sleeps: a visitor's wake is not the owner's doing (SPACE_MAX_RUNNING caps it)
    check_gpu(space)
    if not limit:
        return
    running = (Space.objects.filter(owner_id=space.owner_id, status__in=RUNNING_STATUSES)
               .exclude(pk=space.pk).count())
    if running >= limit:
        raise _refuse(f"{space.owner.username} already has {limit} spaces running, the most one user "
                      "may have; pause or delete one first.", "quota_running_spaces")


def check_gpu(space: Space) -> None:
    """A tier with GPUs the owner chose, past QUOTA_GPU_SPACES_PER_USER (spaces/nodes). A README's
    suggestion past it is not refused: the space runs with the default tier instead."""
    tier, source = space_tier(space)
    if tier.gpus and source == "owner" and not gpu_quota_allows(space):
        raise _refuse(f"{space.owner.username} already runs as many GPU spaces as one user may "
                      f"({node_setting('QUOTA_GPU_SPACES_PER_USER')}); stop one first.", "quota_gpu_spaces")


def storage_used(owner_id: int) -> int:
    """Bytes of the owner's stored snapshots, its revisions' and its branch previews' (a
    snapshot shared by rows counts once per row: rare, and it errs on the owner's side of nothing)."""
    revisions = Revision.objects.filter(space__owner_id=owner_id).aggregate(n=Sum("snapshot_bytes"))["n"] or 0
    previews = Preview.objects.filter(space__owner_id=owner_id).aggregate(n=Sum("snapshot_bytes"))["n"] or 0
    return revisions + previews


def check_storage(space: Space, new_bytes: int) -> None:
    limit = settings.QUOTA_STORAGE_PER_USER
    if not limit:
        return
    used = storage_used(space.owner_id)
    if used + new_bytes > limit:
        raise _refuse(f"This upload ({_size(new_bytes)}) would take the spaces of {space.owner.username} to "
                      f"{_size(used + new_bytes)}, over the {_size(limit)} one user may store; delete old "
                      "spaces first (old revisions' files are pruned on their own).", "quota_storage")
