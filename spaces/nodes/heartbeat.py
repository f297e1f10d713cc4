"""A node's worker registers its node and heartbeats (README "Nodes").

`agent_start` runs once the worker is ready (connected from spaces/lifecycle/tasks.py, which
hands in the engine), only in a worker that consumes its node's own queue (NODE_NAME set):
it registers name, address, capacity, GPUs (runner/gpus.py) and labels; if the hub had
declared the node lost or removed, it first removes every container of this installation on
its engine (fencing: a space moved elsewhere never runs twice), then takes work again under a
new epoch. A daemon thread then renews the heartbeat every NODE_HEARTBEAT_INTERVAL while the
engine answers; a heartbeat the hub refuses (the epoch moved on: lost, removed) fences again.
A worker killed (or an engine gone) stops heartbeating, and the hub's check declares the node
lost within NODE_LOST_AFTER + NODE_CHECK_INTERVAL seconds (at most a minute).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

from runner import gpus as gpu_discovery
from spaces.nodes import services
from spaces.nodes.conf import setting
from spaces.nodes.models import Node

log = logging.getLogger(__name__)
_started = threading.Event()


def node_facts() -> dict:
    """What this node registers (also printed by bench/gpu_probe.py through `manage.py node_info`)."""
    return {"name": setting("NODE_NAME"), "address": setting("NODE_ADDRESS"), "queue": setting("NODE_QUEUE"),
            "starts_queue": setting("NODE_STARTS_QUEUE"), "cpus": float(setting("NODE_CPUS")),
            "memory_bytes": int(setting("NODE_MEMORY")), "gpus": gpu_discovery.discover(),
            "labels": dict(setting("NODE_LABELS")), "can_build": bool(setting("NODE_CAN_BUILD")),
            "docker_endpoint": setting("NODE_DOCKER_ENDPOINT"), "spaces_subnet": setting("NODE_SPACES_SUBNET"),
            "registry": setting("NODE_REGISTRY")}


def fence(backend) -> int:
    """Remove every space container of this installation on this node's engine."""
    removed = 0
    for state in backend.list_containers():
        if state.labels.get("demohub.slot"):
            backend.stop(state.name, timeout=2)
            removed += 1
    log.warning("node %s fenced: removed %d containers", setting("NODE_NAME"), removed)
    return removed


def register(backend) -> Node:
    """Register this node, fencing first if the hub declared it lost or removed."""
    node, fenced = services.node_register(**node_facts())
    if fenced:
        fence(backend)
        node = services.node_ready(node)
    return node


def heartbeat_loop(backend, node: Node, *, stop: threading.Event) -> None:
    interval = float(setting("NODE_HEARTBEAT_INTERVAL"))
    epoch = node.epoch
    while not stop.wait(interval):
        try:
            backend.list_containers()  # the engine answers: the node can run spaces
            if not services.node_heartbeat(name=node.name, epoch=epoch):
                log.warning("node %s: the hub refused the heartbeat (declared lost or removed); fencing", node.name)
                epoch = register(backend).epoch
        except Exception as exc:  # noqa: BLE001 - the engine or the database is away: no heartbeat this time
            log.warning("node %s: no heartbeat: %s", node.name, exc)
            close_old_connections()


def agent_start(queues: set[str], backend_factory: Callable) -> threading.Event | None:
    """From the worker's `worker_ready`: register and heartbeat when this worker serves its node."""
    if not setting("NODE_NAME") or setting("NODE_QUEUE") not in queues or _started.is_set():
        return None
    _started.set()
    backend = backend_factory()
    for attempt in range(30):
        try:
            node = register(backend)
            break
        except Exception as exc:  # noqa: BLE001 - the hub's database not up yet
            log.warning("node %s: cannot register yet (%s)", setting("NODE_NAME"), exc)
            close_old_connections()
            time.sleep(min(2 ** attempt, 10))
    else:
        return None
    stop = threading.Event()
    threading.Thread(target=heartbeat_loop, args=(backend, node), kwargs={"stop": stop}, daemon=True,
                     name="node-heartbeat").start()
    log.info("node %s registered (epoch %s): %s", node.name, node.epoch, node_facts())
    return stop
