"""A second node on this one machine for end-to-end tests, and the registry between nodes.

`Registry` runs the CNCF Distribution registry (Debian's `docker-registry`) for the tests, one
per machine, kept between runs (see the class): the hub's engine pushes to it as
127.0.0.1:<port> (loopback is an insecure registry to every engine), a node pulls from the
hub's end of its link. A host rule refuses it to every interface but loopback and the node
links (10.209.0.0/16).

`NetnsNode` is scripts/node.sh with NODE_NETNS=1: a Docker engine of its own (data root, exec
root, pid file, socket under /tmp/demohub-nodes/<name>), inside a network namespace of its own
joined to the host by a veth pair on a /30 of 10.209.0.0/16 (host .1, node .2), with the node's
firewall (scripts/isolate.sh inside the namespace, published ports only from the host's end),
plus a Celery worker for the node's queues. Every name is unique per run; a node whose owning
process died (a test run killed with -9) is removed by the next run's `sweep` before it starts.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .stack import ROOT, Stack

STATE_ROOT = Path("/tmp/demohub-nodes")
LINKS = "10.209.0.0/16"  # node links: not docker's pools (172.30/15), not the e2e spaces (10.216/13)


def _sh(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts/node.sh"), *args], env={**os.environ, **(env or {})},
                          check=check, capture_output=True, text=True, timeout=120)


def sweep() -> None:
    """Remove the nodes of test runs that are gone (killed before their teardown)."""
    _sh("sweep", env={"NODE_STATE_ROOT": str(STATE_ROOT)}, check=False)


class Registry:
    """The test registry: one docker-registry process per machine, kept between test runs like
    the base images (its storage under /var/tmp), on a fixed port (E2E_REGISTRY_PORT, 5099).

    Kept, because a push costs what the engine must compress: the base image (~200 MB) takes
    25-120 s on a busy 2-core machine to a new registry, and a few HEAD requests to the same
    registry that already holds its layers (the engine remembers what it pushed where). A run
    finding it answering reuses it; each run's images are under its own instance's names.
    """

    def __init__(self) -> None:
        self.port = int(os.environ.get("E2E_REGISTRY_PORT", "5099"))
        self.dir = Path(os.environ.get("E2E_REGISTRY_DIR", "/var/tmp/demohub-e2e-registry"))
        self.rule = ["-p", "tcp", "--dport", str(self.port), "!", "-i", "lo", "!", "-s", LINKS,
                     "-m", "comment", "--comment", "demohub-registry", "-j", "REJECT"]

    def _answers(self) -> bool:
        import requests

        try:
            r = requests.get(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
        except requests.RequestException:
            return False
        if "Docker-Distribution-Api-Version" not in r.headers:
            raise RuntimeError(f"port {self.port} is not a registry: set E2E_REGISTRY_PORT to a free port")
        return True

    def start(self) -> Registry:
        # Only loopback and the node links reach it (before anything can).
        if subprocess.run(["iptables", "-w", "-C", "INPUT", *self.rule], capture_output=True).returncode != 0:
            subprocess.run(["iptables", "-w", "-I", "INPUT", "1", *self.rule], check=True)
        if self._answers():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.dir / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: \"0.0.0.0:{self.port}\"}}\n")
        out = open(self.dir / "registry.log", "ab")
        subprocess.Popen(["docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True, cwd="/")
        deadline = time.monotonic() + 20
        while not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not answer on {self.port}; see {self.dir}/registry.log")
            time.sleep(0.1)
        return self

    @property
    def local(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Nothing: the registry and its firewall rule serve the next run (see the class)."""


def _free_link() -> str:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for _ in range(100):
        k = int(uuid.uuid4().hex[:4], 16) % 16384  # a /30 out of 10.209.0.0/16
        base = f"10.209.{k // 64}.{(k % 64) * 4}"
        if f"{base}/30" not in routes:
            return f"{base}/30"
    raise RuntimeError("no free /30 for a node link in 10.209.0.0/16")


@dataclass
class NetnsNode:
    name: str = field(default_factory=lambda: "n" + uuid.uuid4().hex[:7])
    link: str = field(default_factory=_free_link)
    worker: subprocess.Popen | None = None

    @property
    def state(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def hub_address(self) -> str:
        base = self.link.split("/")[0].rsplit(".", 1)
        return f"{base[0]}.{int(base[1]) + 1}"

    @property
    def address(self) -> str:
        base = self.link.split("/")[0].rsplit(".", 1)
        return f"{base[0]}.{int(base[1]) + 2}"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.state}/docker.sock"

    @property
    def env(self) -> dict[str, str]:
        return {"NODE_NAME": self.name, "NODE_STATE_DIR": str(self.state)}

    def up(self, registry: Registry, subnets: str) -> NetnsNode:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        _sh("engine-up", env={**self.env, "NODE_NETNS": "1", "NODE_LINK": self.link,
                              "REGISTRY": f"{self.hub_address}:{registry.port}", "NODE_SUBNETS": subnets,
                              "NODE_OWNER_PID": str(os.getpid())})
        return self

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def worker_env(self, registry: Registry, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"NODE_NAME": self.name, "NODE_ADDRESS": self.address, "DOCKER_HOST": self.docker_host,
                "RUNNER_REGISTRY": f"{self.hub_address}:{registry.port}",
                "ISOLATION_STATE_FILE": str(self.state / "isolation.json"), **(extra or {})}

    def start_worker(self, stack: Stack, registry: Registry, extra: dict[str, str] | None = None) -> None:
        """The node's Celery worker (on this host's network, its engine by the node's socket)."""
        stack.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(stack.log_dir / f"node-{self.name}.log", "ab")
        queues = f"node.{self.name},node.{self.name}.starts"
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "hub", "worker", "-Q", queues, "-c", "4",
             "-n", f"node-{self.name}-{stack.instance}@%h", "--loglevel", "INFO"],
            cwd=ROOT, env={**stack.env, **self.worker_env(registry, extra)}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        (self.state / "worker.pid").write_text(str(self.worker.pid))

    def pids(self) -> list[int]:
        """The node's engine, its containerd and every process in its namespace (the containers)."""
        found = set()
        pidfile = self.state / "dockerd.pid"
        if pidfile.exists():
            found.add(int(pidfile.read_text().strip() or 0))
        ns = subprocess.run(["ip", "netns", "pids", f"dh{self.name}"], capture_output=True, text=True).stdout
        found.update(int(p) for p in ns.split())
        by_path = subprocess.run(["pgrep", "-f", "--", f"{self.state}/exec/"], capture_output=True, text=True).stdout
        found.update(int(p) for p in by_path.split())
        found.discard(0)
        return sorted(found)

    def kill(self) -> None:
        """The machine is gone: kill -9 its worker, engine, containerd and containers at once."""
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def down(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
        _sh("down", env=self.env, check=False)


# ----------------------------------------------------------------------------- two nodes
TIERS = {"cpu-basic": {"cpus": 1, "memory": "2g"}, "gpu-small": {"cpus": 1, "memory": "1g", "gpus": 1}}
NODE_SETTINGS = {"NODE_MEMORY": "4g", "NODE_CPUS": "4", "HARDWARE_TIERS": json.dumps(TIERS),
                 "HARDWARE_DEFAULT": "cpu-basic", "NODE_HEARTBEAT_INTERVAL": "2", "NODE_LOST_AFTER": "8",
                 "NODE_CHECK_INTERVAL": "2"}


def sql(stack: Stack, query: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", stack.db_name, "-tA", "-c", query],
                          check=True, capture_output=True, text=True).stdout.strip()


def node_of(stack: Stack, space_name: str) -> str:
    """The name of the node the space `space_name` is placed on ("" for none)."""
    return sql(stack, "SELECT coalesce(n.name, '') FROM spaces_space s LEFT JOIN spaces_node n ON n.id = s.node_id "
                      f"WHERE s.name = '{space_name}'")


def wait_until(check, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


@contextlib.contextmanager
def two_nodes(stack: Stack):
    """The stack (node 1: the hub's engine, registered as `node1`), a registry, and a netns
    node 2 with its worker; both nodes 4 GiB / 4 CPUs, tier cpu-basic 2 GiB. Yields
    (registry, node); tears everything down after."""
    sweep()
    registry = Registry().start()
    stack.settings.update({**NODE_SETTINGS, "NODE_NAME": "node1", "NODE_QUEUE": "lifecycle",
                           "NODE_STARTS_QUEUE": "starts", "NODE_ADDRESS": "127.0.0.1",
                           "RUNNER_REGISTRY": registry.local})
    node = NetnsNode()
    try:
        stack.up()
        node.up(registry, "10.216.0.0/13")  # every e2e subnet (stack.py)
        node.start_worker(stack, registry, {
            **NODE_SETTINGS, "NODE_QUEUE": f"node.{node.name}", "NODE_STARTS_QUEUE": f"node.{node.name}.starts",
            "NODE_CAN_BUILD": "false"})
        wait_until(lambda: sql(stack, "SELECT count(*) FROM spaces_node WHERE state = 'ready'") == "2", 60,
                   "both nodes registered")
        yield registry, node
    finally:
        if os.environ.get("DEMOHUB_KEEP_STACK") != "1":
            node.down()
            stack.down()
            registry.stop()
