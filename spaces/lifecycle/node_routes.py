"""Where the proxy reaches a space's slot when spaces run on several nodes (docs/scale.md).

On the hub's own engine (no node, or a node whose address is loopback) a slot is reached as on
one machine: its fixed address on the spaces bridge. On another node the container publishes
its port on the node's address (runner/backends/docker.py publish_address), at a port fixed
per space and slot, so the route is rendered from the rows alone.
"""
from __future__ import annotations

from django.conf import settings

from spaces.records.models import Space

LOCAL_ADDRESSES = {"", "127.0.0.1", "localhost", "::1"}


def slot_port(space: Space, slot: str) -> int:
    """The port a slot publishes on its node: NODE_PORT_BASE + 2 * address_index + (slot b)."""
    port = settings.NODE_PORT_BASE + 2 * space.address_index + (1 if slot == "b" else 0)
    if port > 65535:
        raise ValueError("NODE_PORT_BASE + 2 * the number of spaces passes 65535; lower NODE_PORT_BASE")
    return port


def slot_node_address(space: Space, slot: str) -> str:
    """The address of the node slot `slot` runs on; "" for the hub's own engine (no node, or
    the hub registered as a node)."""
    node = space.node_a if slot == "a" else space.node_b  # set by starts.py before the slot starts
    if node is None or node.is_hub:
        return ""
    return node.address or ""


def slot_upstream(space: Space, slot: str, app_port: int) -> str:
    """"ip:port" of slot `slot` for the proxy."""
    address = slot_node_address(space, slot)
    if address in LOCAL_ADDRESSES:
        return f"{space.slot_address(slot)}:{app_port}"
    return f"{address}:{slot_port(space, slot)}"
