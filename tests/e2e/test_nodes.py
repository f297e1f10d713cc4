"""Two real nodes on this one machine (issue 12, docs/scale.md), one setup for the module.

Node 1 is the hub's own engine (the stack's lifecycle and starts workers, NODE_NAME=node1);
node 2 is a second Docker engine in a network namespace of its own, joined by a veth pair,
with its own worker (tests/e2e/nodes.py). Both declare 4 GiB and 4 CPUs; a space's tier takes
2 GiB. Images go through the run's registry: the hub's builds worker (node 1) builds and
pushes, node 2 pulls. In order:

1. Two spaces fill node 1's half and go one per node (most free memory first): the one on
   node 2 was built on node 1 and answers through the proxy at node 2's address; a space
   asking for a GPU tier waits with the reason ("waiting for hardware").
2. Isolation on node 2: its firewall is what scripts/node.sh installs, and from a container
   there neither the registry, Postgres nor Redis port on the hub's end of the link, nor the
   node's own published port, accepts a connection.
3. Draining node 1 under load moves its space to node 2 with no failed request.
4. kill -9 of node 2 (engine, containerd, containers, worker): both spaces answer again from
   node 1 within the lost-node budget.

Every address used is loopback, the stack's containers, and the node link (10.209.0.0/16) of
this run's own namespace.
"""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
import requests

from .load import Load, revision_app
from .nodes import node_of, sql, two_nodes, wait_until
from .stack import make_archive, new_stack

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def cluster():
    stack = new_stack()
    with two_nodes(stack) as (registry, node):
        yield stack, node, registry


def answers(stack, space: dict) -> str:
    try:
        r = requests.get(space["url"], timeout=5)
    except requests.RequestException:
        return ""
    return r.text if r.status_code == 200 else ""


@pytest.fixture(scope="module")
def spaces(cluster):
    stack, node, _ = cluster
    owner, token = stack.new_user()
    names = ("alpha", "beta")
    for name in names:
        stack.deploy(token, owner, name, "docker", revision_app(name), wanted=None)
    gpu = make_archive({
        "README.md": "---\ntitle: Needs a GPU\nsdk: docker\napp_port: 7860\nsuggested_hardware: gpu-small\n---\n",
        "Dockerfile": "FROM demohub/base:bookworm\nCMD [\"python3\", \"-m\", \"http.server\", \"7860\"]\n"})
    stack.deploy(token, owner, "gamma", "docker", gpu, wanted=None)
    # The first run on a machine pushes the base image to the (kept) registry: minutes when busy.
    found = {name: stack.wait_status(token, owner, name, "RUNNING", timeout=600) for name in names}
    return owner, token, found


def test_spaces_fill_node_1_then_go_to_node_2_built_on_node_1(cluster, spaces):
    stack, node, _ = cluster
    owner, token, found = spaces
    placed = {name: node_of(stack, name) for name in found}
    assert sorted(placed.values()) == sorted(["node1", node.name]), placed
    remote = next(name for name, where in placed.items() if where == node.name)
    # Built by the hub's builds worker (node 1: node 2 builds nothing), run on node 2.
    assert sql(stack, f"SELECT can_build FROM spaces_node WHERE name = '{node.name}'") == "f"
    assert node.client().images.list(name=f"demohub-{stack.instance}/*"), "node 2 pulled no image"
    assert answers(stack, found[remote]).startswith(f"rev={remote}")
    routes = "".join(p.read_text() for p in (stack.data_dir / "proxy" / "routes").glob("*.conf"))
    assert f"server {node.address}:" in routes


def test_a_tier_no_node_has_waits_with_the_reason(cluster, spaces):
    stack, _, _ = cluster
    owner, token, _ = spaces
    space = stack.wait_status(token, owner, "gamma", {"APP_STARTING", "RUNTIME_ERROR", "BUILD_ERROR"}, timeout=120)
    wait_until(lambda: "waiting for hardware" in (stack.space(token, owner, "gamma").get("error") or ""), 60,
               "gamma says it waits for hardware")
    space = stack.space(token, owner, "gamma")
    assert space["status"] == "APP_STARTING" and "GPU" in space["error"], space


PROBE = r'''
import socket, sys
for host, port in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print(host, port, "open")
    except OSError as exc:
        print(host, port, type(exc).__name__)
'''


def test_spaces_on_node_2_reach_no_hub_service_through_its_link(cluster, spaces):
    stack, node, registry = cluster
    check = subprocess.run(["bash", "scripts/node.sh", "check"], env={**os.environ, **node.env},
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert f"--ctorigdst {node.address}" in check.stdout and f"! -s {node.hub_address}/32" in check.stdout
    assert "-A DEMOHUB-EGRESS-DENY -d 10.0.0.0/8 -p tcp -j REJECT" in check.stdout
    client = node.client()
    image = client.images.list(name=f"demohub-{stack.instance}/*")[0].tags[0]
    network = client.networks.list(filters={"label": f"demohub.instance={stack.instance}"})[0].name
    routes = "".join(p.read_text() for p in (stack.data_dir / "proxy" / "routes").glob("*.conf"))
    published = re.search(rf"server {re.escape(node.address)}:(\d+)", routes).group(1)
    targets = [node.hub_address, str(registry.port), node.hub_address, "5432", node.hub_address, "6379",
               node.address, published]
    out = client.containers.run(image, ["python3", "-c", PROBE, *targets], network=network, user="1000:1000",
                                cap_drop=["ALL"], remove=True).decode()
    assert "open" not in out, out
    assert out.count("ConnectionRefusedError") == 4, out


def test_drain_moves_a_space_under_load_without_a_failed_request(cluster, spaces):
    stack, node, _ = cluster
    owner, token, found = spaces
    local = next(name for name in found if node_of(stack, name) == "node1")
    load = Load(stack.proxy_port, found[local]["url"], getters=2, posters=1).start()
    try:
        load.wait_for(local, timeout=30)
        stack.manage("shell", "-c", "from spaces.nodes.models import Node; from spaces.nodes.services import node_drain; "
                                    "node_drain(Node.objects.get(name='node1'))")
        wait_until(lambda: node_of(stack, local) == node.name and
                   stack.space(token, owner, local)["status"] == "RUNNING", 120, f"{local} moved to node 2")
        time.sleep(2)  # requests keep going to the new place
    finally:
        load.stop()
    assert load.failures() == [], load.summary()
    assert len(load.snapshot()) > 50, load.summary()
    # node 1 takes spaces again
    stack.manage("shell", "-c", "from spaces.nodes.models import Node; "
                                "Node.objects.filter(name='node1').update(state='ready', cordoned=False)")


def test_killing_node_2_moves_its_spaces_to_node_1(cluster, spaces):
    stack, node, _ = cluster
    owner, token, found = spaces
    on_node_2 = [name for name in found if node_of(stack, name) == node.name]
    assert on_node_2, "nothing runs on node 2"
    killed = time.monotonic()
    node.kill()
    for name in on_node_2:
        wait_until(lambda name=name: answers(stack, found[name]).startswith(f"rev={name}")
                   and node_of(stack, name) == "node1", 90, f"{name} answers again from node 1")
    took = time.monotonic() - killed
    print(f"node 2 lost -> its {len(on_node_2)} spaces answer from node 1: {took:.1f} s")
    assert took <= 60, took
    assert sql(stack, f"SELECT state FROM spaces_node WHERE name = '{node.name}'") == "lost"
