"""The nodes room's settings (README "Nodes and hardware tiers", .env.example): read from the
environment (and the env file hub/settings.py loads), each overridable by a Django setting of
the same name (the tests do). A malformed value stops the process with its name.

* this process's node: NODE_NAME (empty: no node row, the hub's implicit local engine),
  NODE_ADDRESS, NODE_CPUS, NODE_MEMORY, NODE_LABELS, NODE_CAN_BUILD, NODE_QUEUE,
  NODE_STARTS_QUEUE, NODE_SPACES_SUBNET, NODE_DOCKER_ENDPOINT;
* heartbeats: NODE_HEARTBEAT_INTERVAL, NODE_LOST_AFTER (the hub declares a node lost after
  that long without one), NODE_CHECK_INTERVAL (how often the hub looks);
* HARDWARE_TIERS (JSON), HARDWARE_DEFAULT, QUOTA_GPU_SPACES_PER_USER.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def parse_size(name: str, value: str) -> int:
    """512m, 4g, 4GiB or a number of bytes -> bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower())
    if not match:
        raise ImproperlyConfigured(f"{name}={value!r}: use a number of bytes or a size like 512m or 4g")
    return int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _labels(raw: str) -> dict[str, str]:
    """NODE_LABELS: "zone=a,disk=ssd"."""
    labels = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"NODE_LABELS: {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def default_tiers(memory: str, cpus: float) -> dict[str, dict]:
    """The tiers when HARDWARE_TIERS is unset. cpu-basic is what every space got before tiers
    (SPACE_MEMORY_LIMIT, SPACE_CPUS), so a hub that never chooses a tier runs as it did."""
    return {
        "cpu-basic": {"cpus": cpus, "memory": memory, "gpus": 0, "description": "the default"},
        "cpu-upgrade": {"cpus": 8.0, "memory": "32g", "gpus": 0, "description": "more CPU and memory"},
        "gpu-small": {"cpus": 4.0, "memory": "15g", "gpus": 1, "description": "one NVIDIA GPU"},
    }


def parse_tiers(raw: str, *, memory: str, cpus: float) -> dict[str, dict]:
    """HARDWARE_TIERS: a JSON object {"name": {"cpus": 2, "memory": "4g", "gpus": 0,
    "labels": {"zone": "a"}, "description": "..."}}. Each tier is checked; memory becomes bytes."""
    try:
        tiers = json.loads(raw) if raw.strip() else default_tiers(memory, cpus)
    except ValueError as exc:
        raise ImproperlyConfigured(f"HARDWARE_TIERS is not JSON: {exc}") from None
    if not isinstance(tiers, dict) or not tiers:
        raise ImproperlyConfigured("HARDWARE_TIERS must be a JSON object of at least one tier")
    parsed = {}
    for name, tier in tiers.items():
        if not NAME_RE.match(str(name)) or not isinstance(tier, dict):
            raise ImproperlyConfigured(f"HARDWARE_TIERS: {name!r} is not a tier name (a-z, 0-9, '-') with an object")
        unknown = set(tier) - {"cpus", "memory", "gpus", "labels", "description"}
        if unknown:
            raise ImproperlyConfigured(f"HARDWARE_TIERS[{name}]: unknown keys {sorted(unknown)}")
        try:
            tier_cpus, gpus = float(tier.get("cpus", cpus)), int(tier.get("gpus", 0))
        except (TypeError, ValueError):
            raise ImproperlyConfigured(f"HARDWARE_TIERS[{name}]: cpus and gpus must be numbers") from None
        mem = parse_size(f"HARDWARE_TIERS[{name}].memory", tier.get("memory", memory))
        labels = tier.get("labels", {})
        if tier_cpus <= 0 or gpus < 0 or mem < 6 * 2**20 or not isinstance(labels, dict):
            raise ImproperlyConfigured(f"HARDWARE_TIERS[{name}]: need cpus > 0, gpus >= 0, memory >= 6m "
                                       "and labels as an object")
        parsed[name] = {"name": name, "cpus": tier_cpus, "memory_bytes": mem, "gpus": gpus,
                        "labels": {str(k): str(v) for k, v in labels.items()},
                        "description": str(tier.get("description", ""))}
    return parsed


@lru_cache(maxsize=1)
def _defaults() -> dict:
    name = _env.str("NODE_NAME", default="").strip().lower()
    if name and not NAME_RE.match(name):
        raise ImproperlyConfigured(f"NODE_NAME={name!r}: use a-z, 0-9 and '-' (at most 63)")
    parse_tiers(_env.str("HARDWARE_TIERS", default=""), memory="2g", cpus=1.0)  # refused at start if malformed
    values = {
        "NODE_NAME": name,
        "NODE_ADDRESS": _env.str("NODE_ADDRESS", default="127.0.0.1"),
        "NODE_CPUS": _env.float("NODE_CPUS", default=float(os.cpu_count() or 1)),
        "NODE_MEMORY": parse_size("NODE_MEMORY", _env.str("NODE_MEMORY", default=str(_host_memory()))),
        "NODE_LABELS": _labels(_env.str("NODE_LABELS", default="")),
        "NODE_CAN_BUILD": _env.bool("NODE_CAN_BUILD", default=True),
        "NODE_QUEUE": _env.str("NODE_QUEUE", default=f"node.{name}" if name else "lifecycle"),
        "NODE_STARTS_QUEUE": _env.str("NODE_STARTS_QUEUE", default=f"node.{name}.starts" if name else "starts"),
        "NODE_SPACES_SUBNET": _env.str("NODE_SPACES_SUBNET", default=""),
        "NODE_REGISTRY": _env.str("NODE_REGISTRY", default=_env.str("RUNNER_REGISTRY", default="")),
        "NODE_DOCKER_ENDPOINT": _env.str("NODE_DOCKER_ENDPOINT", default=os.environ.get("DOCKER_HOST", "")),
        "NODE_HEARTBEAT_INTERVAL": _env.float("NODE_HEARTBEAT_INTERVAL", default=5.0),
        "NODE_LOST_AFTER": _env.float("NODE_LOST_AFTER", default=30.0),
        "NODE_CHECK_INTERVAL": _env.float("NODE_CHECK_INTERVAL", default=5.0),
        "HARDWARE_TIERS": _env.str("HARDWARE_TIERS", default=""),
        "HARDWARE_DEFAULT": _env.str("HARDWARE_DEFAULT", default="cpu-basic"),
        "QUOTA_GPU_SPACES_PER_USER": _env.int("QUOTA_GPU_SPACES_PER_USER", default=1),
    }
    if not 0 < 2 * values["NODE_HEARTBEAT_INTERVAL"] <= values["NODE_LOST_AFTER"] <= 50:
        raise ImproperlyConfigured("need 0 < 2 * NODE_HEARTBEAT_INTERVAL <= NODE_LOST_AFTER <= 50 (seconds): a node "
                                   "must be declared lost within a minute, never for one late heartbeat")
    return values


def setting(name: str):
    """The value of `name`: Django's setting when one is set, else the environment's."""
    return getattr(settings, name) if hasattr(settings, name) else _defaults()[name]


@lru_cache(maxsize=8)
def _tiers(raw: str, memory: str, cpus: float) -> dict[str, dict]:
    return parse_tiers(raw, memory=memory, cpus=cpus)


def hardware_tiers() -> dict[str, dict]:
    """The operator's tiers by name, memory in bytes. Unset: default_tiers, whose cpu-basic
    follows SPACE_MEMORY_LIMIT and SPACE_CPUS as they are now."""
    raw = setting("HARDWARE_TIERS")
    if not isinstance(raw, str):
        raw = json.dumps(raw)
    return _tiers(raw, settings.SPACE_MEMORY_LIMIT, float(settings.SPACE_CPUS))
