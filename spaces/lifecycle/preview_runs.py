"""Branch previews at run time (issue 10 item 8): start, sleep, wake and removal of a preview's
container, route and site link, with the machinery a space's revision uses (the backend's
`start`, `run_until_healthy`'s health wait, the proxy's routes and flags).

A preview never touches what `main` serves: its container (`dh-<instance>-<preview label>`),
address (the top of the spaces subnet, Preview.address), route file and flags are its own,
and nothing here moves the space's status. It has one slot: a new commit's container replaces
the old one on the same address once the new image is built. Idle for PREVIEW_SLEEP_AFTER
seconds (the sleep check, spaces/lifecycle/sleep.py) its container stops and its route sends
each request to the hub's wake call, which starts it again (spaces/lifecycle/wake_gate.py).
Running previews count toward SPACE_MAX_RUNNING like running spaces.

The previews room (spaces/previews) makes the rows, builds the images and calls these.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from runner import proxy
from spaces.lifecycle import housekeeping, logs
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import preview_container_name, preview_publish_route, proxy_config, switch_preview_site
from spaces.lifecycle.run_logs import exit_reason
from spaces.lifecycle.starts import run_env, run_spec, run_until_healthy, space_memory
from spaces.records import jobs
from spaces.records.models import Preview, Revision, Sdk
from spaces.records.previews import setting

log = logging.getLogger(__name__)
P = Preview.Status


def _key(*parts) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:preview:" + ":".join(str(p) for p in parts)


@contextlib.contextmanager
def preview_lock(preview_id: int, *, wait: float = 120):
    """One start, sleep or removal of a preview at a time (across worker processes)."""
    with logs.held_lock(_key("lock", preview_id), timeout=900, wait=wait,
                        busy=f"preview {preview_id} is locked by another start or sleep"):
        yield


def preview_busy(preview_id: int) -> bool:
    """Whether a start, sleep or removal of the preview holds its lock now."""
    return bool(logs.client().exists(_key("lock", preview_id)))


def preview_serve(*, preview_id: int) -> None:
    """Serve the preview's built commit: a static site by its link, else its container on its
    address, healthy first. The preview must be STARTING (its build, or a wake, set that); the
    caller made room under SPACE_MAX_RUNNING (sleep.make_room)."""
    try:
        with preview_lock(preview_id):
            _serve(preview_id)
    finally:
        logs.client().delete(_key("waking", preview_id))


def _serve(preview_id: int) -> None:
    preview = Preview.objects.select_related("space__owner").filter(pk=preview_id, status=P.STARTING).first()
    if preview is None:
        return
    space = preview.space
    if space.sdk == Sdk.STATIC:
        switch_preview_site(preview)
        preview_publish_route(preview_id=preview.pk, status=P.RUNNING, error="", last_active_at=timezone.now())
        return
    name = preview_container_name(preview)
    spec = run_spec(space, name=name, image=preview.image, address=preview.address, metadata=preview.metadata,
                    env=run_env(space, None, metadata=preview.metadata, host=preview.host),
                    labels={"demohub.preview": preview.label, "demohub.slot": "preview", "demohub.revision": "0"})
    commit = preview.commit

    def still_wanted() -> bool:
        return Preview.objects.filter(pk=preview.pk, commit=commit, status=P.STARTING).exists()

    ok, message = run_until_healthy(spec, metadata=preview.metadata, still_wanted=still_wanted)
    if not ok:
        get_backend().stop(name, timeout=0)
        Preview.objects.filter(pk=preview.pk, commit=commit, status=P.STARTING).update(
            status=P.FAILED, error=f"failed to start: {message}"[:4000], updated_at=timezone.now())
        preview_publish_route(preview_id=preview.pk)
        return
    if not Preview.objects.filter(pk=preview.pk, commit=commit, status=P.STARTING).update(
            status=P.RUNNING, error="", last_active_at=timezone.now(), updated_at=timezone.now()):
        return   # a newer commit or the branch's deletion took over; it owns the container now
    preview_publish_route(preview_id=preview.pk)
    log.info("preview %s of %s (%s) serves commit %s", preview.label, space.full_name, preview.branch, commit[:12])


def preview_wake_requested(preview_id: int) -> bool:
    """Ask for the preview's wake, once (a visitor's request waits in the wake call meanwhile)."""
    if not logs.client().set(_key("waking", preview_id), "1", nx=True, ex=120):
        return False
    if not Preview.objects.filter(pk=preview_id, status=P.SLEEPING).update(status=P.STARTING,
                                                                          updated_at=timezone.now()):
        logs.client().delete(_key("waking", preview_id))
        return False
    jobs.send("spaces.tasks.preview_wake", preview_id, priority=0)
    return True


def preview_sleep(*, preview_id: int, idle_since: float | None = None) -> bool:
    """Stop an idle preview's container; its route then wakes it on the next request. With
    `idle_since`, nothing happens if it was active since."""
    with preview_lock(preview_id, wait=5):
        preview = Preview.objects.select_related("space__owner").filter(pk=preview_id, status=P.RUNNING).first()
        if preview is None or preview.space.sdk == Sdk.STATIC:
            return False
        if idle_since is not None and preview.last_active_at and preview.last_active_at.timestamp() > idle_since:
            return False
        # The flag first: from then on a request waits for the wake rather than meeting a stopped app.
        preview_publish_route(preview_id=preview.pk, status=P.SLEEPING)
        get_backend().stop(preview_container_name(preview), timeout=10)
        return True


def previews_idle(now: float, seen: dict[str, float]) -> list[int]:
    """Record the activity the sleep check saw (label -> last seen) and put to sleep the
    running previews idle for PREVIEW_SLEEP_AFTER seconds. Returns their ids."""
    slept = []
    for preview in Preview.objects.filter(status=P.RUNNING).exclude(space__sdk=Sdk.STATIC):
        last = seen.get(preview.label, 0.0)
        if last and (preview.last_active_at is None or last > preview.last_active_at.timestamp()):
            preview.last_active_at = datetime.fromtimestamp(last, tz=UTC)
            Preview.objects.filter(pk=preview.pk).update(last_active_at=preview.last_active_at)
        since = preview.last_active_at.timestamp() if preview.last_active_at else now
        if now - since >= setting("PREVIEW_SLEEP_AFTER"):
            with contextlib.suppress(TimeoutError):
                if preview_sleep(preview_id=preview.pk, idle_since=since):
                    slept.append(preview.pk)
    return slept


def previews_crashed(containers: dict) -> list[int]:
    """The crash check's part for previews (spaces/lifecycle/health.py): a running preview
    whose container exited or is gone is put to sleep with the reason, so its next request
    starts it again (a preview has no back-off or crash limit of its own: an app that cannot
    start ends FAILED at that start). `containers` is the engine's list, name -> state, taken
    before the rows are read. Returns the ids."""
    crashed = []
    for preview in Preview.objects.filter(status=P.RUNNING).exclude(space__sdk=Sdk.STATIC).select_related("space"):
        state = containers.get(preview_container_name(preview))
        if (state is not None and (state.running or state.paused)) or preview_busy(preview.pk):
            continue
        with contextlib.suppress(TimeoutError), preview_lock(preview.pk, wait=1):
            state = get_backend().state(preview_container_name(preview))
            if state is not None and (state.running or state.paused):
                continue
            reason = exit_reason(state, memory=space_memory(preview.space))
            # SLEEPING with the flag set: from now on a request waits for the wake, which
            # starts the same image again (preview_wake_requested).
            if Preview.objects.filter(pk=preview.pk, status=P.RUNNING, commit=preview.commit).update(
                    status=P.SLEEPING, updated_at=timezone.now(),
                    error=f"The app stopped: {reason}. The next request starts it again."[:4000]):
                preview_publish_route(preview_id=preview.pk)
                log.warning("preview %s of space %s: %s", preview.label, preview.space_id, reason)
                crashed.append(preview.pk)
    return crashed


def preview_upstreams() -> dict[str, str]:
    """The app address of every running container preview -> its label (for open connections)."""
    return {f"{p.address}:{int(p.metadata.get('app_port') or 7860)}": p.label
            for p in Preview.objects.filter(status=P.RUNNING).exclude(space__sdk=Sdk.STATIC)}


def preview_discard(preview: Preview) -> None:
    """Remove what serves a preview: its container, image, route, site link and snapshot (if
    no revision or other preview shares it). The caller deletes the row."""
    backend = get_backend()
    backend.stop(preview_container_name(preview), timeout=2)
    if preview.image:
        # Its own layers go too, now or at the next housekeeping round (as a purged space's).
        parents = [i.parent for i in backend.list_images() if preview.image in i.tags]
        if backend.remove_image(preview.image):
            housekeeping.layers_remember(parents)
            housekeeping.layers_prune()
    proxy.remove_route(preview.label, proxy_config())
    (settings.SITES_DIR / preview.label).unlink(missing_ok=True)
    path = preview.snapshot_path
    if path and not Revision.objects.filter(snapshot_path=path).exists() \
            and not Preview.objects.filter(snapshot_path=path).exclude(pk=preview.pk).exists():
        shutil.rmtree(path, ignore_errors=True)

