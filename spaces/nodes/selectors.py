"""Reads of the node rows: load per node, the nodes placement may use, this process's node."""
from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from spaces.nodes.conf import setting
from spaces.nodes.models import Node, NodeState
from spaces.nodes.tiers import HOLDING, default_tier, tier_named
from spaces.records.models import Space

LIVE = (NodeState.READY, NodeState.DRAINING)


def local_node_name() -> str:
    """The node this process acts for (NODE_NAME); "" for the hub's implicit local engine."""
    return setting("NODE_NAME")


def here() -> Q:
    """The spaces whose containers this process's engine holds: those placed on its node, and
    the unplaced ones when it consumes the hub's own queues (the implicit local engine)."""
    name = local_node_name()
    scope = Q(node__name=name) if name else Q(pk__in=[])
    if holds_hub_engine():
        scope |= Q(node__isnull=True)
    return scope


def holds_hub_engine() -> bool:
    """Whether this process consumes the hub's own queues, so its engine is the hub's: the one
    unplaced spaces and every branch preview run on."""
    return setting("NODE_QUEUE") == "lifecycle"


def nodes_exist() -> bool:
    """Whether this installation has nodes at all: without one, spaces run as before on the
    hub's own engine and queues (no placement, no capacity check)."""
    return Node.objects.exclude(state=NodeState.REMOVED).exists()


def heartbeat_cutoff():
    return timezone.now() - timedelta(seconds=setting("NODE_LOST_AFTER"))


def is_fresh(node: Node) -> bool:
    return node.heartbeat_at is not None and node.heartbeat_at >= heartbeat_cutoff()


def node_usage(*, exclude_space: int | None = None) -> dict[int, dict]:
    """{node id: {"memory_bytes", "cpus", "gpus", "spaces"}}: the tier limits of the spaces that
    hold each node now (starting, serving, or frozen asleep)."""
    usage: dict[int, dict] = {}
    rows = (Space.objects.filter(node__isnull=False, status__in=HOLDING | {"SLEEPING"})
            .exclude(status="SLEEPING", sleep_mode="stopped").values_list("pk", "node_id", "tier"))
    default = default_tier()
    for pk, node_id, tier_name in rows:
        if pk == exclude_space:
            continue
        tier = tier_named(tier_name) or default
        used = usage.setdefault(node_id, {"memory_bytes": 0, "cpus": 0.0, "gpus": 0, "spaces": 0})
        used["memory_bytes"] += tier.memory_bytes
        used["cpus"] += tier.cpus
        used["gpus"] += tier.gpus
        used["spaces"] += 1
    return usage


def nodes_overview() -> list[dict]:
    """Every node with its capacity, load and spaces (the admin page and the operator API)."""
    usage = node_usage()
    counts = dict(Space.objects.filter(node__isnull=False).values_list("node_id").annotate(n=Count("pk")))
    out = []
    for node in Node.objects.all():
        used = usage.get(node.pk, {"memory_bytes": 0, "cpus": 0.0, "gpus": 0, "spaces": 0})
        out.append({"node": node, "used": used, "placed": counts.get(node.pk, 0), "fresh": is_fresh(node),
                    "free_memory_bytes": node.memory_bytes - used["memory_bytes"],
                    "free_cpus": round(node.cpus - used["cpus"], 3), "free_gpus": node.gpu_count - used["gpus"]})
    return out
