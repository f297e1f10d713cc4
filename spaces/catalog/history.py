"""Running an earlier revision again (a rollback) and duplicating a space (issue 10, items 6, 7).

A rollback is a new commit on main whose tree is the earlier revision's, recorded as a new
revision: history stays linear and honest (design.md §5). When that revision's image is still
kept (housekeeping keeps the previous one that ran), the new revision is recorded as built with
that image and only started: it serves within seconds; when the image is gone it is built again.

A duplicate copies the repository with its history (main only), the variables, and the names of
the secrets with empty values (values are never copied: the duplicate's pages ask for them), to
a new space of the caller's; the copy builds on its own.
"""
from __future__ import annotations

import logging
import shutil

from django.db import transaction
from django.utils import timezone

from runner.exceptions import BackendUnavailable
from spaces.catalog.services import space_create
from spaces.lifecycle import variables
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.models import SpaceVariable
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import Revision, Space
from spaces.repos import reading, services, store

log = logging.getLogger(__name__)
R = Revision.Status


# ----------------------------------------------------------------------------- rollback
def image_kept(image: str) -> bool:
    """Whether the engine still has the image (housekeeping may have removed it)."""
    if not image:
        return False
    try:
        return any(image in found.tags for found in get_backend().list_images())
    except BackendUnavailable:
        return False  # then it is built again, which waits for the engine like any build


def space_rollback(*, space: Space, revision: Revision, by) -> Revision:
    """A new revision running `revision`'s files again (see the module docstring)."""
    if revision.space_id != space.pk:
        raise ServiceError("That revision belongs to another space.", code="not_found", http_status=404)
    if revision.status != R.SUCCEEDED or revision.error:
        raise ServiceError(f"Revision {revision.number} did not build and run; only a revision that did can run "
                           "again.", code="not_runnable")
    if not revision.commit:
        raise ServiceError(f"Revision {revision.number} has no commit to restore.", code="no_commit")
    tree = reading.stat(space, revision.commit, "").oid
    message = f"Run revision {revision.number} again\n\nRestores the files of {revision.commit[:12]}."
    reuse = revision.image if space.sdk != "static" and image_kept(revision.image) else ""
    head = store.head(space)
    try:
        sha = store.commit_tree(space, tree, [head] if head else [], author=by, message=message)
        snapshot = services.snapshot_commit(space, sha)  # the upload checks, before main moves
        store.update_ref(space, "refs/heads/main", sha, head, reason=f"run revision {revision.number} again")
    except store.RepoError as exc:  # main moved meanwhile, or the tree is refused now: nothing moved
        raise ServiceError(str(exc), code=exc.code, http_status=exc.http_status) from exc
    with transaction.atomic():
        new = services.revision_from_commit(space, sha, created_by=by, message=message, snapshot=snapshot)
        if reuse and Revision.objects.filter(pk=new.pk, status=R.QUEUED).update(
                status=R.SUCCEEDED, image=reuse, started_at=timezone.now(), finished_at=timezone.now(),
                build_log=f"==> revision {new.number}: the image of revision {revision.number} ({reuse}) is "
                          "still kept: started without a build\n"):
            # The build task sent on commit finds the revision final and does nothing.
            jobs.send_on_commit("spaces.tasks.start_revision_task", new.pk)
    new.refresh_from_db()
    log.info("%s: revision %s runs revision %s again (%s)", space.full_name, new.number, revision.number,
             "kept image" if reuse else "rebuilding")
    return new


# ----------------------------------------------------------------------------- duplicate
def space_duplicate(*, source: Space, owner, name: str, visibility: str, title: str = "") -> Space:
    """A copy of `source` under `owner` (see the module docstring). Its first revision is the
    source's main, queued to build; a source without a repository yet copies without one."""
    try:
        head = reading.resolve(source, "main")
    except reading.RevisionMissing:
        head = None
    copied = None
    try:
        with transaction.atomic():
            space = space_create(owner=owner, name=name, sdk=source.sdk, visibility=visibility,
                                 title=title or source.title, short_description=source.short_description)
            target = store.ensure_repo(space)
            copied = target
            if head:
                # All of main's history, nothing else (no previews, no revision refs).
                store.git(target, "fetch", "--quiet", "--no-tags", str(store.repo_path(source)),
                          "+refs/heads/main:refs/heads/main")
            for row in SpaceVariable.objects.filter(space=source).order_by("key"):
                SpaceVariable.objects.create(space=space, key=row.key, secret=row.secret,
                                             value=variables.stored_value(row) if not row.secret else "")
            if head:
                services.revision_from_commit(space, head, created_by=owner,
                                              message=f"Duplicate of {source.full_name}")
    except BaseException:
        if copied is not None:
            shutil.rmtree(copied, ignore_errors=True)  # the row is gone with the transaction
        raise
    space.refresh_from_db()
    return space


def secrets_without_value(space: Space) -> list[str]:
    """Keys of the space's secrets that hold no value (a duplicate's, until entered again)."""
    return [row.key for row in SpaceVariable.objects.filter(space=space, secret=True).order_by("key")
            if not variables.stored_value(row)]
