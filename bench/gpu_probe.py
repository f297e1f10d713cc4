"""What this machine would register as a Demohub node: CPUs, memory, GPUs (NVML), and the
device request a GPU tier's container gets (README "Nodes and hardware tiers").

A probe, not a benchmark of a stack: it imports only runner/ (no Django, no database, no Docker
engine), so it runs as it is on a GPU machine that has the NVIDIA driver and `nvidia-ml-py`
(requirements.txt) and nothing else of the project's stack:

    .venv/bin/python bench/gpu_probe.py [--gpus-per-space 1]

Prints human-readable lines and, last, one JSON line. Exit 0 whatever it finds (no driver:
"gpus": [] and the reason); 1 only if the probe itself failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner import gpus  # noqa: E402
from runner.backends.base import RunSpec  # noqa: E402
from runner.backends.docker_run import host_config_args  # noqa: E402


def host_memory() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus-per-space", type=int, default=1, help="GPUs of the tier whose request is shown")
    args = parser.parse_args()
    started = time.monotonic()
    found = gpus.discover()
    probe_seconds = time.monotonic() - started
    driver = gpus.driver_version()
    try:
        import pynvml  # noqa: F401
        nvml = "installed"
    except ImportError:
        nvml = "missing (pip install nvidia-ml-py)"
    facts = {"cpus": float(os.cpu_count() or 1), "memory_bytes": host_memory(), "gpus": found,
             "driver": driver, "nvidia_ml_py": nvml, "probe_seconds": round(probe_seconds, 4)}
    request = host_config_args(RunSpec(name="probe", image="probe", address="10.0.0.2", port=7860, env={},
                                       labels={}, gpus=args.gpus_per_space), "demohub-spaces")["device_requests"]
    print(f"CPUs: {facts['cpus']:g}   memory: {facts['memory_bytes'] / 2**30:.1f} GiB")
    print(f"NVML: {nvml}; driver: {driver or 'none'}; probe took {probe_seconds * 1000:.1f} ms")
    if found:
        for g in found:
            print(f"GPU {g['index']}: {g['name']} ({g['memory_bytes'] / 2**30:.1f} GiB) {g['uuid']}")
    else:
        print("no GPU found: this node registers gpus=[] and takes no GPU tier")
    print(f"device request of a {args.gpus_per_space}-GPU tier: {json.dumps(request)}")
    print(json.dumps({"node": facts, "device_requests": request}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
