"""Every way in is a commit on `main` (design.md §5): uploads, pushes and edits become revisions.

* `snapshot_commit(space, sha)`: the commit's tree exported with `git archive` and run through
  exactly the checks of an upload (`runner.archive.snapshot_archive` and `ArchiveLimits`), plus
  what only a git tree can hold (submodules, Git LFS pointers). The result is the revision's
  snapshot, the files the build and the static server read.
* `revision_from_commit(space, sha, ...)`: a Revision row for a commit already on `main` (its
  snapshot, quotas, README metadata, `refs/demohub/revisions/<n>`, the build queued on commit).
* `commit_upload(space, archive, ...)`: an uploaded archive becomes one commit on `main`
  (author the uploader, message given or "Upload <file name>"), then its revision.
* `commit_changes(space, ...)`: files added/replaced/removed in one commit on `main`, then its
  revision (the edit-in-browser page and the Hugging Face commit API).

A refusal is an ArchiveError, a RepoRefused or a ServiceError raised before the branch moves:
nothing changes and the running revision keeps serving.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from runner.archive import ArchiveLimits, Snapshot, snapshot_archive
from runner.exceptions import ArchiveError
from spaces.lifecycle import logs, quotas
from spaces.records import events, jobs
from spaces.records.errors import ServiceError
from spaces.records.frontmatter import ConfigError, MissingAppFile, read_config
from spaces.records.models import Revision, Sdk, Space
from spaces.records.services import (
    apply_metadata,
    make_latest,
    space_transition,
    status_keeping_running_revision,
    status_while_building,
)
from spaces.records.status import SpaceStatus
from spaces.repos import store
from spaces.repos.store import RepoConflict, RepoRefused

log = logging.getLogger(__name__)
S = SpaceStatus
R = Revision.Status
_TAR_OVERHEAD_PER_FILE = 4096


def archive_limits() -> ArchiveLimits:
    """The limits of an upload (README "Limits"): one set for every way in."""
    return ArchiveLimits(max_archive_bytes=settings.UPLOAD_MAX_BYTES, max_files=settings.ARCHIVE_MAX_FILES,
                         max_total_bytes=settings.ARCHIVE_MAX_TOTAL_BYTES,
                         max_file_bytes=settings.ARCHIVE_MAX_FILE_BYTES, max_ratio=settings.ARCHIVE_MAX_RATIO,
                         max_readme_bytes=settings.README_MAX_BYTES)


def commit_limits() -> ArchiveLimits:
    # The tar of a commit is made here, not sent by the user: its own size is bounded by the
    # files' limits (count, each, total), which stay those of an upload.
    limits = archive_limits()
    bound = limits.max_total_bytes + limits.max_entries * _TAR_OVERHEAD_PER_FILE
    return ArchiveLimits(max_archive_bytes=max(limits.max_archive_bytes, bound), max_files=limits.max_files,
                         max_total_bytes=limits.max_total_bytes, max_file_bytes=limits.max_file_bytes,
                         max_ratio=max(limits.max_ratio, 2.0), max_readme_bytes=limits.max_readme_bytes)


def check_git_only(space, sha: str, entries: list | None = None) -> None:
    """What an archive cannot hold but a git tree can: submodules and Git LFS pointers."""
    for entry in entries if entries is not None else store.ls_tree(space, sha):
        if entry.mode == "160000":
            raise ArchiveError(f"the path {entry.path!r} is a submodule (a link to another repository); "
                               "submodules are not supported: commit the files themselves",
                               code="submodule", http_status=422)
        if entry.path == ".gitattributes" or entry.path.endswith("/.gitattributes"):
            text = store.git(store.repo_path(space), "cat-file", "blob", entry.oid).stdout[:65536]
            if b"filter=lfs" in text:
                raise ArchiveError(f"{entry.path} sends files to Git LFS, which this hub does not support; "
                                   f"commit the files themselves (each at most "
                                   f"{settings.ARCHIVE_MAX_FILE_BYTES // 2**20} MiB)",
                                   code="lfs_unsupported", http_status=422)


def snapshot_commit(space, sha: str) -> Snapshot:
    """Export commit `sha` (`git archive`) and check it exactly like an uploaded archive."""
    check_git_only(space, sha)
    with tempfile.TemporaryFile(prefix="demohub-archive-") as tar:
        store.archive(space, sha, tar)
        tar.seek(0)
        return snapshot_archive(tar, settings.SNAPSHOTS_DIR, commit_limits())


def read_metadata(space: Space, snapshot: Snapshot) -> tuple[dict, str, bool]:
    """(metadata, config error, app file missing) of a snapshot's README front matter."""
    files = set(snapshot.files)
    try:
        cfg = read_config(snapshot.path, files, space_sdk=space.sdk, max_bytes=settings.README_MAX_BYTES)
    except MissingAppFile as exc:
        return {}, str(exc), True
    except ConfigError as exc:
        return {}, str(exc), False
    metadata = cfg.as_metadata()
    metadata["readme"] = cfg.readme_body[:100_000]
    if space.sdk == Sdk.DOCKER and "Dockerfile" not in files:
        return metadata, "sdk: docker needs a Dockerfile at the root of the repo", True
    return metadata, "", False


def snapshot_forget(path: str) -> None:
    """Remove a snapshot no revision refers to (content-addressed: another may share it)."""
    if path and not Revision.objects.filter(snapshot_path=path).exists():
        shutil.rmtree(path, ignore_errors=True)


def check_quotas(space: Space) -> None:
    quotas.check_build_queue(space)
    quotas.check_running(space)


def revision_from_commit(space: Space, sha: str, *, created_by, message: str = "",
                         snapshot: Snapshot | None = None, extra_metadata: dict | None = None,
                         log_lines: list[str] | None = None) -> Revision:
    """The revision of commit `sha` (already on main): checked and snapshotted like an upload,
    recorded, kept reachable as refs/demohub/revisions/<n>, its build queued on commit.

    A README config error still records the revision, as failed, so the user sees why; the
    revision that is serving keeps serving either way."""
    if snapshot is None:
        snapshot = snapshot_commit(space, sha)
    try:
        quotas.check_storage(space, snapshot.total_bytes)
    except ServiceError:
        snapshot_forget(str(snapshot.path))
        raise
    metadata, config_error, missing_app = read_metadata(space, snapshot)
    metadata.update(extra_metadata or {})
    title = (message or "").strip().splitlines()[0][:200] if (message or "").strip() else ""
    first_line = f"==> commit {sha}" + (f": {title}" if title else "") + "\n"
    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        if space.status == S.DELETING:
            raise ServiceError("The space is being deleted.", code="deleting")
        number = (space.revisions.aggregate(m=Max("number"))["m"] or 0) + 1
        rev = Revision.objects.create(
            space=space, number=number, content_hash=snapshot.content_hash, commit=sha, message=message or "",
            snapshot_path=str(snapshot.path), snapshot_bytes=snapshot.total_bytes, metadata=metadata,
            created_by=created_by, status=R.FAILED if config_error else R.QUEUED, error=config_error,
            finished_at=timezone.now() if config_error else None)
        make_latest(space, rev)
        transaction.on_commit(lambda: store.set_revision_ref(space, number, sha))
        head = first_line + "".join(f"==> {line}\n" for line in log_lines or [])
        if config_error:
            fallback = status_keeping_running_revision(space.status)
            if fallback:
                space_transition(space, fallback, error=f"revision {number}: {config_error}")
            else:
                space_transition(space, S.NO_APP_FILE if missing_app else S.CONFIG_ERROR, error=config_error)
            logs.reset(logs.build_key(rev.pk))
            Revision.objects.filter(pk=rev.pk).update(build_log=head + config_error + "\n")
            events.revision_finished.send(sender=Revision, revision_id=rev.pk, status=R.FAILED)
            rev.refresh_from_db()
            return rev
        apply_metadata(space, metadata)       # README values win over the API's (design.md §4)
        space_transition(space, status_while_building(space.status), error="")
        if space.sdk == Sdk.STATIC:
            # Nothing to build: the proxy serves the files themselves.
            Revision.objects.filter(pk=rev.pk).update(
                status=R.SUCCEEDED, started_at=timezone.now(), finished_at=timezone.now(),
                build_log=head + "static files, nothing to build\n")
            events.revision_finished.send(sender=Revision, revision_id=rev.pk, status=R.SUCCEEDED)
            jobs.send_on_commit("spaces.tasks.start_revision_task", rev.pk)
        else:
            jobs.send_on_commit("spaces.tasks.build_revision_task", rev.pk)
    rev.refresh_from_db()
    return rev


def _commit_checked(space: Space, make_commit, *, attempts: int = 3) -> tuple[str, Snapshot]:
    """Run `make_commit(check)` (a store.commit_* call) with the upload checks as its `check`,
    retrying when main moved meanwhile; returns (sha, snapshot)."""
    checked: dict[str, Snapshot] = {}

    def check(sha: str) -> None:
        snap = snapshot_commit(space, sha)
        try:
            quotas.check_storage(space, snap.total_bytes)
        except ServiceError:
            snapshot_forget(str(snap.path))
            raise
        checked[sha] = snap

    for attempt in range(attempts):
        try:
            sha = make_commit(check)
            return sha, checked[sha]
        except RepoConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError  # pragma: no cover


def commit_upload(space: Space, archive, *, created_by, message: str | None = None) -> Revision:
    """An uploaded .zip/.tar.gz becomes one commit on main whose tree is the archive's, then a
    revision. The archive is checked before anything is written (ArchiveError leaves no trace)."""
    if space.status == S.DELETING:
        raise ServiceError("The space is being deleted.", code="deleting")
    check_quotas(space)
    upload = snapshot_archive(archive, settings.SNAPSHOTS_DIR, archive_limits())
    name = Path(getattr(archive, "name", "") or "archive").name
    text = (message or "").strip() or f"Upload {name}"
    store.ensure_repo(space)
    try:
        sha, snapshot = _commit_checked(space, lambda check: store.commit_directory(
            space, upload.path, author=created_by, message=text, check=check))
    except BaseException:
        snapshot_forget(str(upload.path))
        raise
    if snapshot.path != upload.path:
        # The tree stored in git is what serves (a `.git` folder of an upload is left out).
        snapshot_forget(str(upload.path))
    return revision_from_commit(space, sha, created_by=created_by, message=text, snapshot=snapshot)


def commit_changes(space: Space, *, additions: dict[str, bytes], deletions: list[str] = (), author,
                   message: str, parent: str | None = None) -> Revision:
    """Files added, replaced or removed in one commit on main (checked like an upload before
    main moves), then its revision. `parent`: the commit the change was made from (RepoConflict
    when main moved since); None: main's head."""
    if space.status == S.DELETING:
        raise ServiceError("The space is being deleted.", code="deleting")
    if not additions and not deletions:
        raise RepoRefused("Nothing to commit: no file added, changed or removed.", code="empty_commit",
                          http_status=400)
    check_quotas(space)
    store.ensure_repo(space)
    text = (message or "").strip() or "Update files"
    sha, snapshot = _commit_checked(space, lambda check: store.commit_changes(
        space, additions=additions, deletions=list(deletions), author=author, message=text, parent=parent,
        check=check), attempts=1 if parent else 3)
    return revision_from_commit(space, sha, created_by=author, message=text, snapshot=snapshot)
