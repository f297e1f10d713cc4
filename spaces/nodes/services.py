"""Writes to the node rows: registration and heartbeat, lost nodes, cordon, drain, removal,
and the owner's choice of a tier (README "Nodes and hardware tiers").

Lifecycle work these need (a start elsewhere, a route) is sent by task name
(spaces/records/jobs.py): this room sits below the lifecycle.
"""
from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from spaces.nodes.conf import setting
from spaces.nodes.models import Node, NodeState
from spaces.nodes.placement import WAITING
from spaces.nodes.selectors import LIVE, heartbeat_cutoff
from spaces.nodes.tiers import gpu_quota_allows, tier_named, tiers
from spaces.records import jobs
from spaces.records.errors import ServiceError
from spaces.records.models import Revision, Space
from spaces.records.services import space_transition
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
S = SpaceStatus
R = Revision.Status
START = "spaces.tasks.start_revision_task"


# ----------------------------------------------------------------------------- registration
def node_register(*, name: str, address: str, queue: str, starts_queue: str, cpus: float, memory_bytes: int,
                  gpus: list, labels: dict, can_build: bool, docker_endpoint: str = "",
                  spaces_subnet: str = "", registry: str = "") -> tuple[Node, bool]:
    """Register (or re-register) this node; returns (row, fenced). A node the hub declared lost
    or removed comes back only after `fence` removed its containers: the caller does that when
    `fenced` is True, then calls `node_ready`."""
    now = timezone.now()
    fields = {"address": address, "queue": queue, "starts_queue": starts_queue, "cpus": cpus,
              "memory_bytes": memory_bytes, "gpus": gpus, "labels": labels, "can_build": can_build,
              "docker_endpoint": docker_endpoint, "spaces_subnet": spaces_subnet,
              "registry": registry}
    with transaction.atomic():
        node, created = Node.objects.select_for_update().get_or_create(
            name=name, defaults={**fields, "heartbeat_at": now, "state_changed_at": now})
        if created:
            return node, False
        for key, value in fields.items():
            setattr(node, key, value)
        # Lost or removed: its spaces went elsewhere; it must drop its containers first.
        fenced = node.state in (NodeState.LOST, NodeState.REMOVED)
        node.save(update_fields=list(fields))
    return node, fenced


def node_ready(node: Node) -> Node:
    """A fenced node whose containers are gone takes work again (a new epoch)."""
    Node.objects.filter(pk=node.pk).update(state=NodeState.READY, epoch=F("epoch") + 1, heartbeat_at=timezone.now(),
                                           state_changed_at=timezone.now(), note="")
    node.refresh_from_db()
    space_retry_waiting()
    return node


def node_heartbeat(*, name: str, epoch: int) -> bool:
    """Renew the heartbeat of the node at `epoch`; False when the hub declared it lost or
    removed meanwhile (or an operator bumped it): the worker must fence before going on."""
    return Node.objects.filter(name=name, epoch=epoch, state__in=LIVE).update(heartbeat_at=timezone.now()) == 1


# ----------------------------------------------------------------------------- lost nodes
def nodes_check() -> list[str]:
    """The hub's beat (every NODE_CHECK_INTERVAL): a live node without a heartbeat for
    NODE_LOST_AFTER is lost (its epoch bumped: fenced), and its spaces start elsewhere."""
    lost = []
    for node in Node.objects.filter(state__in=LIVE, heartbeat_at__lt=heartbeat_cutoff()):
        changed = Node.objects.filter(pk=node.pk, state__in=LIVE, heartbeat_at__lt=heartbeat_cutoff()).update(
            state=NodeState.LOST, epoch=F("epoch") + 1, state_changed_at=timezone.now(),
            note=f"no heartbeat since {node.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC")
        if changed:
            log.warning("node %s lost: no heartbeat for %s s", node.name, setting("NODE_LOST_AFTER"))
            lost.append(node.name)
            spaces_move_off(node, why=f"node {node.name} was lost")
    node_rounds_send()
    return lost


def node_rounds_send() -> None:
    """The per-engine checks of the hub's beat, for each other live node on its own queue: crash
    check and run-log copying each round, the containers' half of reconcile every 30 s."""
    for node in Node.objects.filter(state__in=LIVE, heartbeat_at__gte=heartbeat_cutoff()).exclude(queue="lifecycle"):
        jobs.send("spaces.tasks.crash_check_task", queue=node.queue)
        jobs.send("spaces.tasks.copy_run_logs_task", queue=node.queue)
        if cache.add(f"nodes:converge:{node.pk}", 1, timeout=30):
            jobs.send("spaces.tasks.containers_converge_task", queue=node.queue)


def spaces_move_off(node: Node, *, why: str) -> list[int]:
    """Start the spaces of a lost or removed node elsewhere; none stays routed to it."""
    moved = []
    # Nothing stays routed to it: a slot whose container ran there has none now.
    Space.objects.filter(node_a=node).update(node_a=None)
    Space.objects.filter(node_b=node).update(node_b=None)
    for space in Space.objects.filter(node=node).exclude(status__in=(S.DELETING, S.PAUSED)).select_related(
            "running_revision", "latest_revision"):
        moved.append(space.pk)
        if space.status == S.SLEEPING:
            # Asleep: its container (frozen or not) is gone with the node; it starts on waking.
            Space.objects.filter(pk=space.pk).update(node=None, sleep_mode="stopped")
            continue
        target = space.running_revision or (space.latest_revision if space.latest_revision
                                            and space.latest_revision.status == R.SUCCEEDED else None)
        Space.objects.filter(pk=space.pk).update(node=None)
        if space.status == S.RUNNING:
            space_transition(space, S.APP_STARTING, error=f"{why}: starting again on another node",
                             expected={S.RUNNING})
        jobs.send("spaces.tasks.publish_route_task", space.pk)
        if target is not None and (space.status in SERVING or space.status == S.APP_STARTING):
            jobs.send(START, target.pk, kwargs={"restart": target.pk == space.running_revision_id})
    return moved


# ----------------------------------------------------------------------------- operators
def node_cordon(node: Node, *, cordoned: bool = True) -> Node:
    """A cordoned node keeps its spaces and takes no new one."""
    Node.objects.filter(pk=node.pk).update(cordoned=cordoned)
    node.refresh_from_db()
    if not cordoned:
        space_retry_waiting()
    return node


def node_drain(node: Node) -> list[int]:
    """Cordon the node and move each of its serving spaces to another node with the redeploy's
    switch (the new container starts first, the route switches, then the old one stops), so no
    request fails. Spaces no other node can take wait with the reason, still serving here."""
    Node.objects.filter(pk=node.pk).update(cordoned=True, state=NodeState.DRAINING, state_changed_at=timezone.now())
    node.refresh_from_db()
    moved = []
    for space in Space.objects.filter(node=node).select_related("running_revision"):
        if space.status == S.SLEEPING and space.sleep_mode != "frozen":
            Space.objects.filter(pk=space.pk, sleep_mode="stopped").update(node=None)
            continue
        if space.status in SERVING and space.running_revision is not None:
            jobs.send(START, space.running_revision_id, kwargs={"restart": True, "move": True})
            moved.append(space.pk)
    return moved


def node_remove(node: Node) -> list[int]:
    """Take a node out: its spaces start elsewhere (as for a lost node) and its epoch is bumped,
    so its worker, if still running, removes its containers; the row stays, REMOVED."""
    Node.objects.filter(pk=node.pk).update(state=NodeState.REMOVED, cordoned=True, epoch=F("epoch") + 1,
                                           state_changed_at=timezone.now())
    node.refresh_from_db()
    jobs.send("spaces.tasks.node_fence_task", node.name, queue=node.queue)
    return spaces_move_off(node, why=f"node {node.name} was removed")


def space_retry_waiting() -> None:
    """Capacity appeared (a node registered or was uncordoned): the lost-work sweep tries the
    waiting spaces again at once instead of at its next round."""
    if Space.objects.filter(error__startswith=WAITING).exists():
        jobs.send("spaces.tasks.lost_work_sweep_task")


# ----------------------------------------------------------------------------- the owner's tier
def space_set_hardware(*, space: Space, hardware: str) -> Space:
    """The owner's choice of tier ("" = the README's suggestion or the default). It applies at
    the space's next start (a restart applies it now)."""
    hardware = (hardware or "").strip()
    if hardware:
        tier = tier_named(hardware)
        if tier is None:
            raise ServiceError(f"{hardware!r} is not a hardware tier of this hub; choose one of "
                               f"{', '.join(tiers())}.", code="unknown_hardware", http_status=400)
        if tier.gpus and not gpu_quota_allows(space):
            raise ServiceError(f"{space.owner.username} already has as many GPU spaces as the quota allows "
                               f"({setting('QUOTA_GPU_SPACES_PER_USER')}); stop one first.",
                               code="quota_gpu_spaces", http_status=403)
    Space.objects.filter(pk=space.pk).update(hardware=hardware, updated_at=timezone.now())
    space.hardware = hardware
    return space
