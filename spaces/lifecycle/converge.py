"""Reconcile: converge the proxy and the engine on the database (the source of truth).
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.utils import timezone

from runner import proxy
from runner.exceptions import BackendUnavailable
from spaces.lifecycle import preview_runs, redeploy
from spaces.lifecycle import reconcile as reconciliation
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.routes import (
    container_name,
    preview_container_name,
    preview_publish_route,
    preview_route,
    proxy_config,
    space_publish_route,
    space_route,
    switch_preview_site,
    switch_static_site,
)
from spaces.nodes.selectors import here, nodes_exist
from spaces.records import jobs
from spaces.records.models import Preview, Revision, Sdk, Space
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


# ----------------------------------------------------------------------------- reconciliation
def reconcile() -> None:
    """Converge the proxy and the engine on the database (the source of truth).

    Routes: one per live space, rendered from its row; stale ones removed. Containers: any
    container of this installation that belongs to no live slot is an orphan and goes.
    Builds: a BUILDING revision whose lease expired is retried or failed, never left building,
    and queued revisions whose task the broker lost are sent again (spaces/builds/leases.py).
    """
    # Routes written after this read belong to spaces made since (their route is published
    # at creation): the removal at the end keeps them (CI saw a new space's route removed
    # while it started, so it was RUNNING with no route).
    listed_at = time.time()
    spaces = list(Space.objects.select_related("owner", "running_revision", "latest_revision")
                  .exclude(status=S.DELETING))
    # Rows read here without a lock may be older than a route a concurrent writer (a sleep,
    # a visibility change) just wrote: a route that differs is republished from its locked,
    # fresh row, never from this read. Routes of spaces that are gone are removed.
    config = proxy_config()
    # One broken space (a row whose route cannot be rendered, an address past the subnet, a
    # site link that cannot be made) is logged and skipped: the others still converge. Its
    # route file, if any, is left as it is.
    healthy = []
    for s in spaces:
        try:
            if proxy.routes_out_of_date([space_route(s)], config):
                space_publish_route(space_id=s.pk, wait=False)
            if (s.sdk == Sdk.STATIC and s.running_revision is not None
                    and not (settings.SITES_DIR / s.label).exists()):
                switch_static_site(s, s.running_revision)
            healthy.append(s)
        except (BackendUnavailable, DatabaseError):
            raise  # not this space's fault: the whole round stops, as before
        except Exception:
            log.exception("reconcile: space %s (%s) cannot be converged; skipped", s.pk, s.full_name)
    previews = previews_converge(config)
    proxy.remove_routes_except([s.label for s in spaces] + [p.label for p in previews], config,
                               listed_at=listed_at)
    redeploy.slot_flags_repair(healthy, config)

    # Builds whose lease expired (spaces/builds/leases.py): the builds room's own sweep.
    jobs.send("spaces.tasks.build_leases_sweep_task")
    reconciliation.sweep()  # starts and purges a restart lost, run logs Redis lost

    containers_converge(spaces)


def containers_converge(spaces: list[Space] | None = None) -> None:
    """The engine's half of reconcile, for this process's engine (a node's worker runs it for
    its own, spaces/nodes): containers of no live slot here are orphans and go."""
    try:
        backend = get_backend()
        containers = backend.list_containers()
    except BackendUnavailable:
        log.warning("reconcile: the engine does not answer; routes were synced, containers were not")
        return
    here_ids = set(Space.objects.filter(here()).values_list("pk", flat=True)) if nodes_exist() else None
    wanted = set()
    # Rows read after the listing (issue 9): a space whose start began after the read at the
    # top (BUILDING then, APP_STARTING now) has a container that is no orphan. Only the spaces
    # placed on this engine count, but a starting space's slots count everywhere: while it
    # moves to another node, its old container serves here until the route switched.
    for s in Space.objects.exclude(status=S.DELETING).only("label", "status", "active_slot", "node"):
        local = here_ids is None or s.pk in here_ids
        # A sleeping space's container (if the engine keeps it frozen) is its running revision.
        if local and (s.status in SERVING or s.status == S.SLEEPING):
            wanted.add(container_name(s, s.active_slot))
        if s.status in (S.APP_STARTING, S.RUNNING_APP_STARTING):
            wanted.update({container_name(s, "a"), container_name(s, "b")})
    # A branch preview's container (one slot) is wanted while its row is there.
    wanted.update(preview_container_name(p) for p in Preview.objects.exclude(space__status=S.DELETING)
                  .select_related("space"))
    for c in containers:
        # A draining container is the old one of a switch, still finishing its requests.
        if c.labels.get("demohub.slot") and c.name not in wanted and not redeploy.is_draining(c.name):
            log.info("reconcile: removing orphan container %s", c.name)
            backend.stop(c.name, timeout=5)
    # After an engine restart: frozen spaces whose container is gone sleep stopped.
    if spaces is None:
        spaces = list(Space.objects.filter(here()).select_related("owner").exclude(status=S.DELETING))
    reconciliation.frozen_containers_lost([s for s in spaces if here_ids is None or s.pk in here_ids],
                                          {c.name: c for c in containers})


def previews_converge(config: proxy.ProxyConfig) -> list[Preview]:
    """Branch previews' routes and site links, republished where they drifted (as spaces'
    above), and their work a restart lost sent again. Returns the previews of live spaces."""
    previews = list(Preview.objects.select_related("space__owner").exclude(space__status=S.DELETING))
    now = timezone.now()
    for p in previews:
        try:
            # A start or build whose task was lost (a worker died with it): sent again. A start
            # that runs holds the preview's lock; a build ends within BUILD_TIMEOUT.
            if (p.status == Preview.Status.STARTING and not preview_runs.preview_busy(p.pk)
                    and now - p.updated_at > timedelta(seconds=settings.START_LEASE_SECONDS * 2)):
                jobs.send("spaces.tasks.preview_start", p.pk)
            elif (p.status == Preview.Status.BUILDING
                  and now - p.updated_at > timedelta(seconds=settings.BUILD_TIMEOUT + 300)):
                jobs.send("spaces.tasks.preview_build", p.pk, p.commit)
            if proxy.routes_out_of_date([preview_route(p)], config):
                preview_publish_route(preview_id=p.pk, wait=False)
            if (p.space.sdk == Sdk.STATIC and p.status == Preview.Status.RUNNING
                    and not (settings.SITES_DIR / p.label).exists()):
                switch_preview_site(p)
        except (BackendUnavailable, DatabaseError):
            raise
        except Exception:
            log.exception("reconcile: preview %s (%s) cannot be converged; skipped", p.pk, p.label)
    return previews
