"""Branch previews: a pushed branch's commit made into a preview row, built, started; a deleted
branch's preview removed (see the room's docstring).

Each step claims its work with a conditional UPDATE on the row's commit and status, so a
newer push of the branch (a new commit) or its deletion supersedes whatever of the older one
is still running: that build is abandoned, that start stops its container.
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from runner.archive import Snapshot
from runner.exceptions import ArchiveError, BuildCancelled, BuildError
from spaces.builds.services import build_spec
from spaces.lifecycle import preview_runs, sleep, variables
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import preview_publish_route
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import HostLabel, Preview, Sdk, Space
from spaces.records.previews import MAIN, preview_label_for, preview_refusal
from spaces.records.status import SpaceStatus
from spaces.repos.services import read_metadata, snapshot_commit
from spaces.repos.store import RepoError

log = logging.getLogger(__name__)
P = Preview.Status
BUILD_LOG_MAX = 200_000


def preview_update(*, space_id: int, branch: str, sha: str, pusher_id: int | None) -> Preview | None:
    """The push hook's task: export the commit like an upload (spaces/repos), then deploy it."""
    space = Space.objects.select_related("owner").filter(pk=space_id).exclude(status=SpaceStatus.DELETING).first()
    if space is None or branch == MAIN:
        return None
    try:
        snapshot = snapshot_commit(space, sha)
    except (ArchiveError, RepoError) as exc:   # the hook checked it already: only a limit lowered since
        return preview_deploy(space=space, branch=branch, sha=sha, snapshot=None, files=set(),
                              pushed_by_id=pusher_id, error=f"the commit cannot be deployed: {exc}")
    return preview_deploy(space=space, branch=branch, sha=sha, snapshot=Path(snapshot.path),
                          files=set(snapshot.files), pushed_by_id=pusher_id, snapshot_bytes=snapshot.total_bytes)


def preview_deploy(*, space: Space, branch: str, sha: str, snapshot: Path | None, files: set[str],
                   pushed_by_id: int | None, error: str = "", snapshot_bytes: int = 0) -> Preview | None:
    """Make or update the preview of `branch` at commit `sha` (files checked and exported to
    `snapshot` already), then build it (a static site: serve it). Returns the row, or None
    when the space may not have another preview (the push hook refuses that push first)."""
    metadata = {}
    if snapshot is not None:
        error, metadata = _config(space, snapshot, files)
        metadata.pop("readme", None)   # the space page shows main's README, never a branch's
    fields = {"commit": sha, "snapshot_path": str(snapshot or ""), "snapshot_bytes": snapshot_bytes if snapshot else 0,
              "metadata": metadata, "pushed_by_id": pushed_by_id,
              "error": error, "status": P.FAILED if error else (P.STARTING if space.sdk == Sdk.STATIC else P.BUILDING)}
    for _ in range(8):
        try:
            with transaction.atomic():
                Space.objects.select_for_update().filter(pk=space.pk).first()   # one push of a space at a time
                preview = Preview.objects.select_for_update().filter(space=space, branch=branch).first()
                if preview is None:
                    refusal = preview_refusal(space, branch)
                    if refusal:
                        log.warning("space %s: no preview of %s: %s", space.pk, branch, refusal)
                        return None
                    label = preview_label_for(space, branch)
                    HostLabel.objects.create(label=label)
                    preview = Preview.objects.create(space=space, branch=branch, label=label,
                                                     address_index=_free_address_index(), **fields)
                else:
                    Preview.objects.filter(pk=preview.pk).update(**fields, updated_at=timezone.now())
                if not error:
                    task = "spaces.tasks.preview_start" if space.sdk == Sdk.STATIC else "spaces.tasks.preview_build"
                    jobs.send_on_commit(task, preview.pk, sha)
            break
        except IntegrityError:
            continue   # another space's preview took that address or label meanwhile: pick again
    else:
        raise ServiceError("Could not allocate an address for the preview; push again.", code="busy")
    # Its host exists from now on (answering "building" to editors), whatever the build does.
    return preview_publish_route(preview_id=preview.pk)


def _config(space: Space, snapshot: Path, files: set[str]) -> tuple[str, dict]:
    """(error, metadata) of the commit's README, read as an upload's is (spaces/repos)."""
    metadata, error, _ = read_metadata(space, Snapshot(content_hash="", path=snapshot, files=tuple(files),
                                                       total_bytes=0))
    return error, metadata


def _free_address_index() -> int:
    """The lowest preview address index no preview holds (Preview.address)."""
    used = set(Preview.objects.values_list("address_index", flat=True))
    index = next(i for i in itertools.count() if i not in used)
    try:
        Preview(address_index=index).address  # noqa: B018 - raises when the range is full
    except ValueError:
        raise ServiceError("This hub has no free address for another branch preview (SPACES_SUBNET is full).",
                           code="no_address", http_status=503) from None
    return index


def preview_image(preview: Preview, sha: str) -> str:
    return f"demohub-{settings.DEMOHUB_INSTANCE}/{preview.label}:{sha[:12]}"


def preview_build(*, preview_id: int, sha: str) -> None:
    """Build the preview's commit `sha` with the space's SDK (builds queue), then start it."""
    claimed = Preview.objects.filter(pk=preview_id, commit=sha, status=P.BUILDING)
    preview = claimed.select_related("space__owner").first()
    if preview is None:
        return   # superseded by a newer commit, or the branch is gone
    space = preview.space
    mask = variables.secret_masker(space.pk)
    lines: list[str] = [f"==> preview of branch {preview.branch} of {space.full_name}, commit {sha}\n"]

    def sink(text: str) -> None:
        if sum(map(len, lines)) < BUILD_LOG_MAX:
            lines.append(mask(text))

    spec = build_spec(space, number=0, metadata=preview.metadata, snapshot=preview.snapshot_path,
                      image=preview_image(preview, sha), labels={"demohub.preview": preview.label})
    try:
        get_backend().build(spec, log=sink, should_continue=claimed.exists)
    except BuildCancelled:
        return
    except BuildError as exc:
        sink(f"==> build failed: {exc}\n")
        if claimed.update(status=P.FAILED, error=f"failed to build: {exc}"[:4000], build_log="".join(lines),
                          updated_at=timezone.now()):
            preview_publish_route(preview_id=preview_id)
        return
    sink("==> build succeeded\n")
    if claimed.update(status=P.STARTING, image=spec.image, build_log="".join(lines), error="",
                      updated_at=timezone.now()):
        jobs.send("spaces.tasks.preview_start", preview_id, sha)


def preview_start(*, preview_id: int) -> None:
    """Serve the preview's built commit, or wake it (starts queue); counted in SPACE_MAX_RUNNING."""
    preview = Preview.objects.select_related("space").filter(pk=preview_id, status=P.STARTING).first()
    if preview is None:
        return
    if preview.space.sdk != Sdk.STATIC:
        try:
            sleep.make_room(0)
        except sleep.NoRoom:
            Preview.objects.filter(pk=preview_id, status=P.STARTING).update(status=P.SLEEPING,
                                                                            updated_at=timezone.now())
            preview_publish_route(preview_id=preview_id)
            return
    preview_runs.preview_serve(preview_id=preview_id)


def preview_delete(*, space_id: int, branch: str) -> bool:
    """The branch is gone: its preview goes (row first, so whatever of it still runs stops;
    then container, image, route, site link, snapshot). Returns whether there was one."""
    preview = Preview.objects.select_related("space__owner").filter(space_id=space_id, branch=branch).first()
    if preview is None:
        return False
    Preview.objects.filter(pk=preview.pk).delete()
    preview_runs.preview_discard(preview)
    log.info("preview %s of space %s (branch %s) removed", preview.label, space_id, branch)
    return True
