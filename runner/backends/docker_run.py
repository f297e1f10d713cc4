"""How a space's container is confined on a Docker engine: the HostConfig of DockerBackend.start.

Apart so that it can be read (and unit-tested) without an engine: the limits come from the
space's hardware tier (memory, CPUs), and a GPU tier adds the engine's device request for
NVIDIA GPUs (`docker run --gpus N`), which the NVIDIA container toolkit on the node honours.
"""
from __future__ import annotations

import docker.types

from .base import RunSpec, parse_bytes


def device_requests(gpus: int) -> list[docker.types.DeviceRequest]:
    """The device request for `gpus` NVIDIA GPUs (none for a CPU tier)."""
    if gpus <= 0:
        return []
    return [docker.types.DeviceRequest(driver="nvidia", count=gpus, capabilities=[["gpu"]])]


def host_config_args(spec: RunSpec, network: str, publish_address: str = "") -> dict:
    """Keyword arguments of APIClient.create_host_config for `spec` on `network`. With
    `publish_address` (a node of several), the app's port is published there only, for the
    proxy: the node's firewall admits only the hub to it (scripts/node.sh)."""
    args = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": parse_bytes(spec.memory),
        "memswap_limit": parse_bytes(spec.memory),
        "nano_cpus": int(spec.cpus * 1e9),
        "pids_limit": spec.pids,
        "read_only": spec.read_only_root,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_size},mode=1777"},
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
        "restart_policy": {"Name": "no"},
        "network_mode": network,
        "init": True,
    }
    if publish_address and spec.publish_port:
        args["port_bindings"] = {spec.port: (publish_address, spec.publish_port)}
    requests = device_requests(spec.gpus)
    if requests:
        args["device_requests"] = requests
    return args
