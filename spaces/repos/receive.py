"""git's receive hooks for a push over HTTP, run in the hub process serving the push: the thin
hook scripts of spaces/repos/git_hooks/ (installed with core.hooksPath by git_http.py) hand the
ref updates over a unix socket to `handle`, so no hook starts Django.

pre-receive runs after git received and fsck-checked the objects (still in quarantine) and
before any ref moves. It refuses the whole push (exit 1; its lines reach the client as
`remote:`), so a refused push changes nothing and the running revision keeps serving, when:

* a ref is not a branch or a tag, or main would be deleted;
* any new commit's tree fails the checks of an upload (paths, links leaving the repo, file count,
  each file's and the total size: `runner.archive.check_archive`, the same code), holds a
  submodule or sends files to Git LFS; every new commit, not only the tip;
* main's new head has an invalid README front matter, or the owner's quotas are spent;
* main does not fast-forward, unless the owner allowed force pushes (pushers are editors);
* a new branch would be a branch preview past PREVIEW_MAX_PER_SPACE, or the pushed branches'
  files would take the owner past the storage quota;
* the job queue (Redis) does not answer: the commit would land with nothing to build it.

post-receive makes the revision of main's new head (its build starts), tells the pusher its
number and where to watch the build, and hands other branches to the previews room by task name.
"""
from __future__ import annotations

import logging
import tempfile

log = logging.getLogger(__name__)

ZERO = "0" * 40
MAIN_REF = "refs/heads/main"
MAX_MESSAGES = 20


class Refused(Exception):
    pass


class Report:
    """What a hook tells the pusher (the `remote:` lines)."""

    def __init__(self):
        self.lines: list[str] = []

    def say(self, *lines: str) -> None:
        self.lines.extend(lines)


def _updates(text: str) -> list[tuple[str, str, str]]:
    return [tuple(line.split(" ", 2)) for line in text.splitlines() if line.strip()]


def _why(exc: Exception) -> str:
    if getattr(exc, "code", "") in ("file_too_large", "too_large"):
        return f"{exc} (large files are not supported: this hub has no Git LFS)"
    return str(exc)


def _check_tree(space, sha: str) -> None:
    """The checks of an upload on commit `sha`'s tree, writing nothing."""
    from runner.archive import check_archive
    from spaces.repos import services, store

    services.check_git_only(space, sha)
    with tempfile.TemporaryFile(prefix="demohub-push-") as tar:
        store.archive(space, sha, tar)
        tar.seek(0)
        check_archive(tar, services.commit_limits())


def _check_update(space, old: str, new: str, ref: str, checked: set[str]) -> None:
    from spaces.repos import store

    if not (ref.startswith("refs/heads/") or ref.startswith("refs/tags/")):
        raise Refused(f"{ref}: only branches and tags can be pushed.")
    if new == ZERO:
        if ref == MAIN_REF:
            raise Refused("main cannot be deleted: it is what the space runs.")
        return
    path = store.repo_path(space)
    commits = store.git(path, "rev-list", "--topo-order", new, "--not", "--all").stdout.decode().split()
    for sha in commits:
        tree = store.tree_of(space, sha)
        if tree in checked:
            continue
        if not (ref == MAIN_REF and sha == new):        # main's tip is checked in full below
            try:
                _check_tree(space, sha)
            except Exception as exc:
                raise Refused(f"commit {sha[:12]} ({ref.removeprefix('refs/heads/')}): {_why(exc)}") from exc
        checked.add(tree)
    if ref == MAIN_REF and old != ZERO and not store.is_ancestor(space, old, new):
        if not space.allow_force_push:
            raise Refused("main: not a fast-forward (the remote has commits you do not have). Pull and "
                          "merge first; force pushes to main are off for this space (its owner can allow them).")


def _check_main(space, new: str, snapshots: dict) -> None:
    from runner.exceptions import ArchiveError
    from spaces.lifecycle import quotas
    from spaces.records.errors import ServiceError
    from spaces.records.status import SpaceStatus
    from spaces.repos import services

    if space.status == SpaceStatus.DELETING:
        raise Refused("this space is being deleted.")
    try:
        snapshot = services.snapshot_commit(space, new)
    except ArchiveError as exc:
        raise Refused(f"commit {new[:12]} (main): {_why(exc)}") from exc
    try:
        _metadata, config_error, missing_app = services.read_metadata(space, snapshot)
        if config_error and not missing_app:
            raise Refused(f"commit {new[:12]} (main): README.md: {config_error}")
        try:
            services.check_quotas(space)
            quotas.check_storage(space, snapshot.total_bytes)
        except ServiceError as exc:
            raise Refused(str(exc)) from exc
    except Refused:
        services.snapshot_forget(str(snapshot.path))
        raise
    snapshots[new] = snapshot          # post-receive's revision uses it: no second export


def _check_previews(space, updates) -> None:
    """A branch other than main becomes a branch preview (spaces/previews): no more of them than
    PREVIEW_MAX_PER_SPACE, counting the new branches of this push too, and their files within
    the owner's storage quota as an upload's are (a preview's commit is stored as a snapshot)."""
    from spaces.lifecycle import quotas
    from spaces.records.errors import ServiceError
    from spaces.records.models import Preview
    from spaces.records.previews import MAIN, preview_refusal
    from spaces.repos import store

    added: list[str] = []
    new_bytes = 0
    for _old, new, ref in updates:
        branch = ref.removeprefix("refs/heads/")
        if not ref.startswith("refs/heads/") or branch == MAIN or new == ZERO:
            continue
        reason = preview_refusal(space, branch, also=added)
        if reason:
            raise Refused(reason)
        added.append(branch)
        size = sum(entry.size for entry in store.ls_tree(space, new) if entry.type == "blob")
        replaced = Preview.objects.filter(space=space, branch=branch).values_list("snapshot_bytes", flat=True).first()
        new_bytes += max(0, size - (replaced or 0))
    if new_bytes:
        try:
            quotas.check_storage(space, new_bytes)
        except ServiceError as exc:
            raise Refused(f"{', '.join(added)}: {exc}") from exc


def pre_receive(space, pusher, updates, report: Report, snapshots: dict) -> int:
    from spaces.lifecycle import readiness
    from spaces.web.unavailable import RETRY_AFTER

    checked: set[str] = set()
    try:
        # A ref that moves queues work (a build, a preview); with the queue down the commit
        # would land with nothing to run it, so the push waits for it instead.
        if not readiness.queue_answers():
            raise Refused(f"the hub's job queue (Redis) does not answer right now; push again in {RETRY_AFTER} "
                          "seconds or so.")
        for old, new, ref in updates:
            _check_update(space, old, new, ref, checked)
        for _old, new, ref in updates:
            if ref == MAIN_REF and new != ZERO:
                _check_main(space, new, snapshots)
        _check_previews(space, updates)
    except Refused as exc:
        report.say(f"Demohub refused this push: {exc}", "Nothing was changed; the running revision keeps serving.")
        return 1
    return 0


def _send_if_registered(task: str, *args) -> bool:
    # The previews room registers these (helper C's branch); until it is there, branches are
    # only stored.
    from celery import current_app

    from spaces.records import jobs

    if task not in current_app.tasks:
        return False
    jobs.send(task, *args)
    return True


PREVIEW_UPDATE = "spaces.tasks.preview_update"
PREVIEW_DELETE = "spaces.tasks.preview_delete"


def post_receive(space, pusher, updates, report: Report, snapshots: dict) -> int:
    from django.conf import settings

    from hub.dependencies import dependency_down
    from spaces.records.models import Revision
    from spaces.repos import services, store

    base = f"{str(settings.HUB_URL).rstrip('/')}/spaces/{space.owner.username}/{space.name}"
    for old, new, ref in updates:
        if ref == MAIN_REF and new != ZERO:
            forced = old != ZERO and not store.is_ancestor(space, old, new)
            message = store.git(store.repo_path(space), "log", "-1", "--format=%B", new).stdout.decode().strip()
            extra = {"push": {"by": pusher.username, "forced": forced, "replaced": old if forced else ""}}
            lines = [f"force push by {pusher.username} replaced {old}"] if forced else []
            if forced:
                log.warning("force push to main of space %s by %s replaced %s with %s", space.pk,
                            pusher.username, old, new)
            try:
                rev = services.revision_from_commit(space, new, created_by=pusher, message=message,
                                                    snapshot=snapshots.pop(new, None), extra_metadata=extra,
                                                    log_lines=lines)
            except Exception as exc:
                # Only a lost queue can fail after the revision's row was committed (its build
                # is sent on commit); any other failure made none, whatever earlier revisions
                # of the same commit exist.
                made = (Revision.objects.filter(space=space, commit=new).order_by("-number").first()
                        if dependency_down(exc) == "broker" else None)
                if made is None:
                    log.exception("push to space %s: no revision for %s", space.pk, new)
                    report.say(f"Demohub: the commit is on main but no revision was made: {exc}",
                               "Push again or upload to retry.")
                    continue
                # Recorded, but its build was not queued (the queue went away after the
                # pre-receive check): the hub sends a queued revision's build again by itself
                # (spaces/builds/leases.py resend_queued).
                log.warning("push to space %s: revision %s recorded, its build not queued: %s", space.pk,
                            made.number, exc)
                report.say(f"Demohub: revision {made.number} of {space.owner.username}/{space.name} is commit "
                           f"{new[:12]}; the job queue did not answer, so its build starts once it does.",
                           f"Watch the build: {base}/logs")
                continue
            report.say(f"Demohub: revision {rev.number} of {space.owner.username}/{space.name} is commit "
                       f"{new[:12]}.")
            if rev.status == rev.Status.FAILED:
                report.say(f"It cannot run: {rev.error}")
            else:
                report.say(f"Watch the build: {base}/logs", f"The space: {base}")
        elif ref.startswith("refs/heads/"):
            branch = ref.removeprefix("refs/heads/")
            if new == ZERO:
                _send_if_registered(PREVIEW_DELETE, space.pk, branch)
            elif _send_if_registered(PREVIEW_UPDATE, space.pk, branch, new, pusher.pk):
                report.say(f"Demohub: branch {branch} builds as a preview (editors only); see {base}")
    return 0


def handle(request: dict, *, space_id: int, pusher_id: int, snapshots: dict | None = None) -> dict:
    """One hook call from git_hooks/client.py: {"hook", "updates", "env"} -> {"code", "lines"}.
    `snapshots` lives as long as the push: what pre-receive checked, post-receive reuses."""
    snapshots = {} if snapshots is None else snapshots
    from django.contrib.auth import get_user_model

    from spaces.records.models import Space
    from spaces.repos import store

    report = Report()
    hook = request.get("hook")
    try:
        space = Space.objects.select_related("owner").get(pk=space_id)
        pusher = get_user_model().objects.get(pk=pusher_id)
        updates = _updates(request.get("updates") or "")
        if hook == "pre-receive":
            with store.quarantine(request.get("env") or {}):
                code = pre_receive(space, pusher, updates, report, snapshots)
        elif hook == "post-receive":
            code = post_receive(space, pusher, updates, report, snapshots)
        else:
            code = 1
            report.say(f"unknown hook {hook!r}")
    except Exception as exc:
        log.exception("receive hook %s of space %s failed", hook, space_id)
        report.say(f"Demohub could not {'check' if hook == 'pre-receive' else 'deploy'} this push "
                   f"({type(exc).__name__}); try again shortly.")
        code = 1
    return {"code": code, "lines": report.lines}
