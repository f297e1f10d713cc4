"""Placement: which node a space starts on (README "Nodes and hardware tiers").

A space goes to a node that is ready, not cordoned, heartbeating, has the labels and GPUs its
tier asks for, and has the tier's memory and CPUs free: the node's declared allocatable
capacity (NODE_MEMORY, NODE_CPUS) minus the tier limits of the spaces placed there. Among
those, the one with the most free memory (then the fewest spaces, then the name): spreading
keeps a node's loss small and leaves room for a space's next revision beside the current one.
A space already on a node that still fits stays there (no move for a restart or a new revision).

When no node fits, the space waits: Hugging Face's APP_STARTING stage with the reason in
`error` ("waiting for hardware: ..."); the lost-work sweep (spaces/lifecycle/reconcile.py)
tries again every few seconds, so it starts once a node registers or a space stops.

The choice is made under a row lock on every node (SELECT ... FOR UPDATE), so two starts never
both take a node's last free gigabytes. With no Node row at all nothing is placed: the space runs
on the hub's own engine as before.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from spaces.nodes.models import Node, NodeState
from spaces.nodes.selectors import is_fresh, local_node_name, node_usage
from spaces.nodes.tiers import Tier, gpu_quota_allows, space_tier
from spaces.records.models import Space

WAITING = "waiting for hardware"


@dataclass(frozen=True)
class Decision:
    node: Node | None          # None: the implicit local engine (no nodes), or waiting
    tier: Tier
    waiting: str = ""          # the reason, when no node fits

    @property
    def here(self) -> bool:
        """Whether the start runs in this process (its node, or no nodes at all)."""
        return not self.waiting and (self.node is None or self.node.name == local_node_name())


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _why_none(tier: Tier, candidates: list[Node], quota_ok: bool) -> str:
    if not quota_ok:
        return f"{WAITING}: the owner already runs as many GPU spaces as the quota allows"
    if not candidates:
        return f"{WAITING}: no node is ready"
    if tier.gpus and not any(n.gpu_count for n in candidates):
        return f"{WAITING}: no node has a GPU"
    if tier.gpus and not any(n.gpu_count >= tier.gpus for n in candidates):
        return f"{WAITING}: no node has {tier.gpus} GPUs"
    if tier.labels and not any(_labels_match(n, tier) for n in candidates):
        labels = ", ".join(f"{k}={v}" for k, v in sorted(tier.labels.items()))
        return f"{WAITING}: no node has the labels {labels}"
    return (f"{WAITING}: no node has {_gib(tier.memory_bytes)} of memory, {tier.cpus:g} CPUs"
            + (f" and {tier.gpus} GPUs" if tier.gpus else "") + f" free for tier {tier.name}")


def _labels_match(node: Node, tier: Tier) -> bool:
    return all(str((node.labels or {}).get(k)) == v for k, v in tier.labels.items())


def fits(node: Node, tier: Tier, used: dict) -> bool:
    return (node.gpu_count - used.get("gpus", 0) >= tier.gpus
            and node.memory_bytes - used.get("memory_bytes", 0) >= tier.memory_bytes
            and node.cpus - used.get("cpus", 0.0) >= tier.cpus - 1e-9
            and _labels_match(node, tier))


def choose(space: Space, tier: Tier, nodes: list[Node], usage: dict) -> tuple[Node | None, str]:
    """The node for `space` among `nodes` (usage excludes the space itself), or why none."""
    candidates = [n for n in nodes if n.schedulable and is_fresh(n)]
    quota_ok = not tier.gpus or gpu_quota_allows(space)
    fitting = [n for n in candidates if fits(n, tier, usage.get(n.pk, {}))] if quota_ok else []
    if not fitting:
        return None, _why_none(tier, candidates, quota_ok)
    current = next((n for n in fitting if n.pk == space.node_id), None)
    if current is not None:
        return current, ""

    def free(n: Node):
        used = usage.get(n.pk, {})
        return (-(n.memory_bytes - used.get("memory_bytes", 0)), used.get("spaces", 0), n.name)
    return min(fitting, key=free), ""


def space_place(space_id: int) -> Decision:
    """Choose the space's node and record it (Space.node, tier, placement), under the nodes' lock."""
    with transaction.atomic():
        nodes = list(Node.objects.select_for_update().exclude(state=NodeState.REMOVED).order_by("pk"))
        space = Space.objects.select_related("latest_revision", "running_revision", "node").get(pk=space_id)
        tier, source = space_tier(space)
        if not nodes:
            Space.objects.filter(pk=space_id).update(tier=tier.name, placement="")
            return Decision(node=None, tier=tier)
        node, why = choose(space, tier, nodes, node_usage(exclude_space=space_id))
        if node is None:  # the tier it waits for is the one it shows
            Space.objects.filter(pk=space_id).update(tier=tier.name, placement=why[:300])
            return Decision(node=None, tier=tier, waiting=why)
        reason = f"tier {tier.name} ({source}) on {node.name}"
        Space.objects.filter(pk=space_id).update(node=node, tier=tier.name, placement=reason[:300])
        return Decision(node=node, tier=tier)


def release_queues(node_ids: set[int]) -> list[str]:
    """The queues of the live nodes among `node_ids` (the nodes a space's slots ran on before a
    start on another node): each stops there what it still runs of the space."""
    return list(Node.objects.filter(pk__in=node_ids, state__in=(NodeState.READY, NodeState.DRAINING))
                .values_list("queue", flat=True))


def can_place(space: Space) -> bool:
    """Whether a waiting space would be placed now (read only: the sweep then sends its start)."""
    nodes = list(Node.objects.exclude(state=NodeState.REMOVED))
    if not nodes:
        return True
    tier, _ = space_tier(space)
    return choose(space, tier, nodes, node_usage(exclude_space=space.pk))[0] is not None
