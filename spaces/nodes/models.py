"""A node: one Docker engine and the Celery worker that consumes its queues (design.md §7).

The worker registers the row and renews `heartbeat_at` (heartbeat.py); the hub's beat declares
a node whose heartbeat stopped `lost` (services.nodes_check), which bumps `epoch`: a worker that
comes back with an older epoch is fenced (removes its containers) before it takes work again.
"""
from __future__ import annotations

from django.db import models


class NodeState(models.TextChoices):
    READY = "ready"          # heartbeating, takes new spaces unless cordoned
    DRAINING = "draining"    # its spaces are being moved away; takes nothing new
    LOST = "lost"            # stopped heartbeating: its spaces were placed elsewhere
    REMOVED = "removed"      # taken out by an operator; kept for the history of its spaces


class Node(models.Model):
    name = models.CharField(max_length=63, unique=True)
    # Where the proxy and the registry reach this node (an IP or a host name).
    address = models.CharField(max_length=255)
    # How the node's own worker reaches its engine (informative: the hub never calls it).
    docker_endpoint = models.CharField(max_length=255, blank=True)
    # host:port of the image registry as this node's engine reaches it ("": images stay local).
    registry = models.CharField(max_length=255, blank=True)
    # The subnet of the node's spaces bridge when it is not the hub's SPACES_SUBNET (routed over
    # the node's link); blank: SPACES_SUBNET.
    spaces_subnet = models.CharField(max_length=64, blank=True)
    # The two queues the node's worker consumes: lifecycle work (stop, delete, wake) and starts.
    queue = models.CharField(max_length=120)
    starts_queue = models.CharField(max_length=120)
    # Declared allocatable capacity (NODE_CPUS, NODE_MEMORY): placement sums tier limits against it.
    cpus = models.FloatField(default=1.0)
    memory_bytes = models.BigIntegerField(default=0)
    # What discovery found (runner/gpus.py): [{"index", "name", "uuid", "memory_bytes"}, ...].
    gpus = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    can_build = models.BooleanField(default=True)
    cordoned = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.READY)
    # Bumped each time the hub declares the node lost or removes it: the worker's registration
    # carries the epoch it saw, and a heartbeat with an older one is refused (fencing).
    epoch = models.PositiveIntegerField(default=1)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def gpu_count(self) -> int:
        return len(self.gpus or [])

    @property
    def is_hub(self) -> bool:
        """The hub's own engine registered as a node: it consumes the hub's default queues and
        its spaces are reached on their bridge addresses, as without nodes."""
        return self.queue == "lifecycle"

    @property
    def schedulable(self) -> bool:
        return self.state == NodeState.READY and not self.cordoned
