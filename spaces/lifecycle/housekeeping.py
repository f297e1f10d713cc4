"""Housekeeping: old images and stopped containers of this installation, pruned by policy.

Runs on the beat every HOUSEKEEPING_INTERVAL seconds (README "Redeploys and housekeeping"),
one round at a time. Only what carries this installation's `demohub.instance` label is ever
looked at (the backend lists by it), so a test stack and a running hub can share an engine.

* **Images.** Of each space it keeps the running revision and the previous one that ran (a
  quick rollback), every revision queued or building, and the latest one if it built (it is
  about to start, or is starting). Older revisions go, with `noprune`: their parent layers
  may be shared or reused from the cache by a build. An image a container still uses is
  refused by the engine and stays. Images of spaces that no longer exist go too (a deleted
  space is purged by space_purge; this catches what a crash left).
* **Layers.** The parent layers of removed images are remembered (Redis) and removed once no
  build of this installation is queued or running: only untagged layers nothing else is
  built on and no container uses (Backend.prune_layers), never a base or SDK image.
* **Snapshots.** The uploaded files of a revision (DATA_DIR/snapshots/<hash>) are kept for
  the revisions whose images stay (above) and for the latest revision (a factory rebuild
  starts from it); the others are pruned: the row keeps its history with `snapshot_path` ""
  and `snapshot_bytes` 0 (so the owner's storage quota frees up), and the directory goes once
  no revision of any space refers to it (snapshots are content-addressed and may be shared).
* **Containers.** A stopped (exited, created, dead) container goes once it has been stopped
  for HOUSEKEEPING_CONTAINER_GRACE seconds, which leaves crash handling (spaces/lifecycle/health.py) the
  time to read why it stopped; one of a space that no longer exists goes at once. Running and
  frozen containers are never touched here (reconcile removes orphans of those).
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections import defaultdict

from django.conf import settings

from runner.backends import ContainerState, ImageInfo
from runner.exceptions import BackendUnavailable
from spaces.lifecycle import logs
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.redeploy import is_draining
from spaces.records.models import Preview, Revision, Space
from spaces.records.status import SpaceStatus

log = logging.getLogger(__name__)
R = Revision.Status
S = SpaceStatus


def _key(what: str) -> str:
    return f"demohub:{settings.DEMOHUB_INSTANCE}:housekeeping:{what}"


def housekeeping_run() -> dict[str, list[str]]:
    """One round: images, then stopped containers, then unused layers. Returns what went."""
    lock = logs.client().lock(_key("lock"), timeout=600, blocking=False)
    if not lock.acquire():
        log.info("housekeeping: another round is running")
        return {}
    try:
        done = {"images": images_prune(), "snapshots": snapshots_prune(), "containers": containers_prune(),
                "layers": layers_prune()}
    except BackendUnavailable:
        log.warning("housekeeping: the engine does not answer; next round in %s s", settings.HOUSEKEEPING_INTERVAL)
        return {}
    finally:
        with contextlib.suppress(Exception):
            lock.release()
    if any(done.values()):
        log.info("housekeeping: removed %s", {k: len(v) for k, v in done.items()})
    return done


# ----------------------------------------------------------------------------- images
def revisions_to_keep(space: Space, revisions: list[Revision]) -> set[int]:
    """The revision numbers of `space` whose images stay (`revisions`: all of its rows)."""
    keep = {r.number for r in revisions if r.status in (R.QUEUED, R.BUILDING)}
    latest = next((r for r in revisions if r.pk == space.latest_revision_id), None)
    if latest is not None and latest.status == R.SUCCEEDED:
        keep.add(latest.number)  # about to start, or starting: never pull its image away
    running = next((r for r in revisions if r.pk == space.running_revision_id), None)
    anchor = running or (latest if latest is not None and latest.status == R.SUCCEEDED else None)
    if anchor is None:
        return keep
    keep.add(anchor.number)
    # The previous revision that ran: built, and not failed to start (its `error` says so).
    previous = max((r.number for r in revisions
                    if r.number < anchor.number and r.status == R.SUCCEEDED and not r.error), default=None)
    if previous is not None:
        keep.add(previous)
    return keep


def images_to_remove(images: list[ImageInfo], containers: list[ContainerState]) -> list[ImageInfo]:
    """The images the policy removes (see the module docstring), from the database now."""
    by_space: dict[str, list[ImageInfo]] = defaultdict(list)
    for image in images:
        by_space[image.labels.get("demohub.space", "")].append(image)
    # A revision some container runs (or ran) is in use, whatever the rows say.
    used = {(c.labels.get("demohub.space"), c.labels.get("demohub.revision")) for c in containers}
    spaces = {s.full_name: s for s in Space.objects.select_related("owner").filter(
        owner__username__in={name.partition("/")[0] for name in by_space},
        name__in={name.partition("/")[2] for name in by_space})}
    revisions: dict[int, list[Revision]] = defaultdict(list)
    for rev in Revision.objects.filter(space__in=list(spaces.values())).only(
            "pk", "space_id", "number", "status", "error", "image"):
        revisions[rev.space_id].append(rev)
    doomed = []
    # A branch preview's image stays while its row names it (spaces/lifecycle/preview_runs.py).
    preview_images = set(Preview.objects.exclude(image="").values_list("image", flat=True))
    for name, space_images in by_space.items():
        space = spaces.get(name)
        if space is not None and space.status == S.DELETING:
            continue  # space_purge is removing everything of it
        keep = set() if space is None else revisions_to_keep(space, revisions[space.pk])
        # A rollback's revision runs an earlier revision's image (catalog/history.py): kept by tag.
        kept_tags = {r.image for r in revisions[space.pk] if r.number in keep and r.image} if space else set()
        for image in space_images:
            if image.labels.get("demohub.preview"):
                if not preview_images.intersection(image.tags):
                    doomed.append(image)
                continue
            if kept_tags.intersection(image.tags):
                continue
            number = image.labels.get("demohub.revision", "")
            if not number.isdigit() or not name:
                continue  # not a revision image: never guessed at
            if int(number) in keep or (name, number) in used:
                continue
            doomed.append(image)
    return doomed


def images_prune() -> list[str]:
    backend = get_backend()
    containers = backend.list_containers()
    removed, parents = [], []
    for image in images_to_remove(backend.list_images(), containers):
        # By tag: an image with one tag is deleted with it, and "in use" is refused (409).
        if all(backend.remove_image(tag) for tag in image.tags or (image.id,)):
            removed.append(image.tags[0] if image.tags else image.id)
            parents.append(image.parent)
    layers_remember(parents)
    return removed


# ----------------------------------------------------------------------------- snapshots
def snapshots_to_prune() -> list[Revision]:
    """Revisions whose snapshot the policy lets go (see the module docstring)."""
    by_space: dict[int, list[Revision]] = defaultdict(list)
    for rev in Revision.objects.exclude(space__status=S.DELETING).only(
            "pk", "space_id", "number", "status", "error", "snapshot_path"):
        by_space[rev.space_id].append(rev)
    doomed = []
    for space in Space.objects.filter(pk__in=list(by_space)).exclude(status=S.DELETING):
        revisions = by_space[space.pk]
        keep = revisions_to_keep(space, revisions)
        doomed += [r for r in revisions
                   if r.snapshot_path and r.number not in keep and r.pk != space.latest_revision_id]
    return doomed


def snapshots_prune() -> list[str]:
    removed = []
    for rev in snapshots_to_prune():
        # Conditional: a revision that started building meanwhile keeps its files.
        if not Revision.objects.filter(pk=rev.pk, status__in=[R.SUCCEEDED, R.FAILED, R.CANCELLED],
                                       snapshot_path=rev.snapshot_path).update(snapshot_path="", snapshot_bytes=0):
            continue
        if _snapshot_remove_if_unused(rev.snapshot_path):
            removed.append(rev.snapshot_path)
    return removed


def _snapshot_remove_if_unused(path: str) -> bool:
    """Remove a snapshot directory no revision refers to. It is first moved aside and checked
    again, so an upload of the same content at that moment (snapshots are content-addressed)
    either sees it referenced and it is moved back, or makes a fresh copy of its own."""
    if _snapshot_used(path) or not os.path.isdir(path):
        return False
    aside = f"{path}.prune-{secrets.token_hex(4)}"
    try:
        os.rename(path, aside)
    except OSError:
        return False
    if _snapshot_used(path):
        with contextlib.suppress(OSError):
            os.rename(aside, path)
            return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _snapshot_used(path: str) -> bool:
    """Whether a revision or a branch preview refers to the snapshot at `path`."""
    return Revision.objects.filter(snapshot_path=path).exists() or Preview.objects.filter(snapshot_path=path).exists()


# ----------------------------------------------------------------------------- layers
def layers_remember(layer_ids: list[str]) -> None:
    """Keep parent layers of removed images for layers_prune (they may be in use right now)."""
    layer_ids = [i for i in layer_ids if i]
    if layer_ids:
        logs.client().sadd(_key("layers"), *layer_ids)


def builds_active() -> bool:
    return Revision.objects.filter(status__in=[R.QUEUED, R.BUILDING]).exists()


def layers_prune() -> list[str]:
    """Remove the remembered layers that nothing uses any more, unless a build is queued or
    running (it may be about to reuse one of them from its cache)."""
    client = logs.client()
    candidates = [m.decode() for m in client.smembers(_key("layers"))]
    if not candidates or builds_active():
        return []
    removed = get_backend().prune_layers(candidates)
    # Whatever is left is shared or in use: forget it (a later removal remembers it again).
    client.srem(_key("layers"), *candidates)
    return removed


# ----------------------------------------------------------------------------- containers
def containers_to_remove(containers: list[ContainerState], *, now: float) -> list[ContainerState]:
    live = set()
    names = {c.labels.get("demohub.space", "") for c in containers}
    for space in Space.objects.select_related("owner").exclude(status=S.DELETING).filter(
            owner__username__in={n.partition("/")[0] for n in names}, name__in={n.partition("/")[2] for n in names}):
        live.add(space.full_name)
    doomed = []
    for c in containers:
        if c.running or c.paused or is_draining(c.name):
            continue
        stopped_since = c.finished_at or c.created_at
        recent = stopped_since is None or now - stopped_since < settings.HOUSEKEEPING_CONTAINER_GRACE
        if c.labels.get("demohub.space") in live and recent:
            continue
        doomed.append(c)
    return doomed


def containers_prune() -> list[str]:
    backend = get_backend()
    removed = []
    for c in containers_to_remove(backend.list_containers(), now=time.time()):
        # By id, and refused if it runs again: a start may have replaced it under the same name.
        if backend.remove_container(c.id or c.name):
            removed.append(c.name)
    return removed
