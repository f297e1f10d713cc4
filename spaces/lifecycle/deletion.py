"""Deleting a space: the status change at once, then everything it owns, by a worker."""
from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from runner import proxy
from spaces.lifecycle import housekeeping, logs, run_logs
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import proxy_config
from spaces.nodes.selectors import LIVE
from spaces.records import jobs
from spaces.records.models import Preview, Revision, Space
from spaces.records.services import space_transition
from spaces.records.status import SpaceStatus

S = SpaceStatus


def space_delete(*, space: Space) -> None:
    space_transition(space, S.DELETING)
    jobs.send_on_commit("spaces.tasks.delete_space_task", space.pk)


def space_purge(*, space_id: int) -> None:
    """Remove everything of a DELETING space: containers, images, route, site link, files, rows."""
    space = (Space.objects.select_related("owner", "node", "node_a", "node_b")
             .filter(pk=space_id, status=S.DELETING).first())
    if space is None:
        return
    # Its images' own layers go too, now or by the next housekeeping if a build is running.
    housekeeping.layers_remember(get_backend().remove_space(space.full_name))
    # On the other nodes it ran on (spaces/nodes), their workers remove its containers and images.
    for queue in {n.queue for n in (space.node, space.node_a, space.node_b)
                  if n is not None and n.state in LIVE and n.queue != "lifecycle"}:
        jobs.send("spaces.tasks.node_remove_space_task", space.full_name, queue=queue)
    proxy.remove_route(space.label, proxy_config())
    (settings.SITES_DIR / space.label).unlink(missing_ok=True)
    # Its branch previews' routes and links (their containers and images went above).
    for label in space.previews.values_list("label", flat=True):
        proxy.remove_route(label, proxy_config())
        (settings.SITES_DIR / label).unlink(missing_ok=True)
    snapshots = set(space.revisions.values_list("snapshot_path", flat=True))
    snapshots |= set(space.previews.values_list("snapshot_path", flat=True))
    rev_ids = list(space.revisions.values_list("pk", flat=True))
    space.delete()
    for rev_id in rev_ids:
        logs.reset(logs.build_key(rev_id))
    logs.reset(logs.run_key(space_id))
    run_logs.run_log_forget(space_id)
    # Snapshots are content-addressed and may be shared with another space's revision.
    still_used = set(Revision.objects.filter(snapshot_path__in=snapshots).values_list("snapshot_path", flat=True))
    still_used |= set(Preview.objects.filter(snapshot_path__in=snapshots).values_list("snapshot_path", flat=True))
    for path in snapshots - still_used:
        shutil.rmtree(path, ignore_errors=True)
    # Its git repository (spaces/repos/store.repo_path: that room sits above this one).
    shutil.rmtree(Path(settings.REPOS_DIR) / f"{int(space_id)}.git", ignore_errors=True)
    housekeeping.layers_prune()
