"""Settings of the data plane between nodes (docs/scale.md, README "Nodes"); hub/settings.py
imports them.

* RUNNER_REGISTRY: host:port of the image registry as THIS process's Docker engine reaches it
  (127.0.0.1:5000 on the hub of the compose stack with the registry service, the hub's address
  on a node). Empty (one machine): images stay on the one engine, nothing is pushed or pulled.
* RUNNER_PUBLISH_ADDRESS: the address this node's engine publishes space ports on: NODE_ADDRESS
  when the process is a node's worker (NODE_NAME set), else empty (the hub's own engine: the
  proxy reaches containers by their bridge address, as on one machine).
* NODE_PORT_BASE: a slot's published port is NODE_PORT_BASE + 2 * address_index + (slot b),
  fixed per space, so a route never needs the engine's answer.
"""
from __future__ import annotations

import environ

__all__ = ["NODE_PORT_BASE", "RUNNER_PUBLISH_ADDRESS", "RUNNER_REGISTRY"]

_env = environ.Env()
RUNNER_REGISTRY = _env.str("RUNNER_REGISTRY", default="").strip()
RUNNER_PUBLISH_ADDRESS = _env.str("NODE_ADDRESS", default="").strip() if _env.str("NODE_NAME", default="") else ""
if RUNNER_PUBLISH_ADDRESS in ("127.0.0.1", "localhost", "::1"):  # a node on the hub's own machine
    RUNNER_PUBLISH_ADDRESS = ""  # the proxy reaches it by bridge address (spaces/lifecycle/node_routes.py)
NODE_PORT_BASE = _env.int("NODE_PORT_BASE", default=20000)
