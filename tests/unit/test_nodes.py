"""Nodes and hardware tiers (issue 12, spaces/nodes): tiers, placement, quotas, waiting for
hardware, lost nodes, fencing, cordon and drain, the GPU device request and GPU-only placement,
the operator API.

Several nodes in one process: the `nodes` fixture makes each task sent to a node's queue run as
that node's worker would (NODE_NAME set to it) against an engine of its own (the fake backend's
containers swapped per node), so a start handed on to another node, a move and a release run
their real code paths.
"""
from __future__ import annotations

import json
from datetime import timedelta

import docker
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from runner.backends.base import RunSpec
from runner.backends.docker_run import device_requests, host_config_args
from spaces.lifecycle import reconcile
from spaces.nodes import heartbeat, placement, services
from spaces.nodes.conf import parse_tiers
from spaces.nodes.models import Node, NodeState
from spaces.nodes.routing import resolve
from spaces.nodes.tiers import space_tier
from spaces.records import jobs
from spaces.records.models import Space
from tests.unit.helpers import fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
GiB = 2**30
TIERS = {"cpu-basic": {"cpus": 1, "memory": "1g"}, "cpu-upgrade": {"cpus": 2, "memory": "3g"},
         "gpu-small": {"cpus": 1, "memory": "1g", "gpus": 1}}


def make_node(name: str, *, memory: int = 4 * GiB, cpus: float = 4.0, gpus: int = 0, stale: bool = False,
              **kw) -> Node:
    beat = timezone.now() - timedelta(seconds=600 if stale else 0)
    return Node.objects.create(name=name, address=f"10.99.0.{Node.objects.count() + 2}", queue=f"node.{name}",
                               starts_queue=f"node.{name}.starts", memory_bytes=memory, cpus=cpus,
                               gpus=[{"index": i, "name": "NVIDIA H200", "uuid": f"GPU-{name}-{i}",
                                      "memory_bytes": 141 * GiB} for i in range(gpus)],
                               heartbeat_at=beat, **kw)


@pytest.fixture
def tiers(settings):
    settings.HARDWARE_TIERS = TIERS
    settings.HARDWARE_DEFAULT = "cpu-basic"
    settings.QUOTA_GPU_SPACES_PER_USER = 1
    return TIERS


@pytest.fixture
def nodes(settings, monkeypatch, fake_backend, tiers):
    """Run what is sent to a node's queue as that node's worker, on an engine of its own."""
    engines: dict[str, dict] = {"": fake_backend.containers}
    settings.NODE_NAME, settings.NODE_QUEUE = "", "lifecycle"
    original = jobs.send

    def as_node(name: str):
        node = Node.objects.filter(name=name).first()
        settings.NODE_NAME, settings.NODE_QUEUE = name, node.queue if node else "lifecycle"
        fake_backend.containers = engines.setdefault(name, {})

    def send(task, *args, kwargs=None, **options):
        queue = options.get("queue") or resolve(task, args, kwargs or {})
        node = Node.objects.filter(queue=queue).first() or Node.objects.filter(starts_queue=queue).first()
        before = settings.NODE_NAME
        as_node(node.name if node else "")
        try:
            original(task, *args, kwargs=kwargs, **options)
        finally:
            as_node(before)

    monkeypatch.setattr(jobs, "send", send)
    yield type("Nodes", (), {"engines": engines, "as_node": staticmethod(as_node)})
    fake_backend.containers = engines[""]


@pytest.fixture
def gradio(olive, make_space, app_server, repo):
    """A gradio space whose app answers on both slot addresses; .files(rev) is a repo for it."""
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    app_server(space.slot_address("b"), port)
    space.files = lambda label="1": gradio_files(repo, port, label)
    return space


def containers(nodes, name: str) -> set[str]:
    return set(nodes.engines.get(name, {}))


# ----------------------------------------------------------------------------- tiers
def test_default_tiers_are_what_every_space_got_before(settings):
    settings.SPACE_MEMORY_LIMIT, settings.SPACE_CPUS = "2g", 1.0
    basic = parse_tiers("", memory=settings.SPACE_MEMORY_LIMIT, cpus=settings.SPACE_CPUS)["cpu-basic"]
    assert (basic["memory_bytes"], basic["cpus"], basic["gpus"]) == (2 * GiB, 1.0, 0)


@pytest.mark.parametrize("raw, says", [
    ("{not json", "not JSON"), ("[]", "JSON object"), ('{"Big Tier": {}}', "not a tier name"),
    ('{"x": {"memory": "lots"}}', "memory"), ('{"x": {"cpus": 0}}', "cpus > 0"), ('{"x": {"ram": 1}}', "unknown keys"),
])
def test_malformed_tiers_stop_the_hub_naming_the_problem(raw, says):
    with pytest.raises(ImproperlyConfigured, match=says):
        parse_tiers(raw, memory="2g", cpus=1.0)


def test_the_owners_tier_wins_then_the_readme_within_the_gpu_quota(tiers, olive, make_space, push, repo):
    space = make_space(olive, "t", sdk="gradio")
    push(space, {**repo.gradio, "README.md": repo.readme(sdk="gradio", suggested_hardware="cpu-upgrade")}, olive,
         run=False)
    space = fresh(space)
    assert space_tier(space)[0].name == "cpu-upgrade" and space_tier(space)[1] == "readme"
    space.hardware = "cpu-basic"
    assert space_tier(space) == (space_tier(space)[0], "owner") and space_tier(space)[0].name == "cpu-basic"
    # A README may ask for a GPU only while the owner's quota has room; an unknown tier is ignored.
    other = make_space(olive, "g", sdk="gradio")
    Space.objects.filter(pk=other.pk).update(tier="gpu-small", status="RUNNING")
    push(space, {**repo.gradio, "README.md": repo.readme(sdk="gradio", suggested_hardware="gpu-small")}, olive,
         run=False)
    space = fresh(space)
    assert space_tier(space)[0].name == "cpu-basic" and space_tier(space)[1] == "default"
    Space.objects.filter(pk=other.pk).update(status="PAUSED")
    assert space_tier(fresh(space))[0].name == "gpu-small"


def test_the_tier_is_the_owners_choice_on_the_api(tiers, api, people, make_space):
    space = make_space(people["owner"], "hw", sdk="gradio", editors=[people["editor"]])
    path = f"/api/spaces/olive/{space.name}"
    assert api(people["editor"]).patch(path, {"hardware": "cpu-upgrade"}, format="json").status_code == 403
    bad = api(people["owner"]).patch(path, {"hardware": "t4-huge"}, format="json")
    assert bad.status_code == 400 and "not a hardware tier" in bad.json()["detail"]
    ok = api(people["owner"]).patch(path, {"hardware": "cpu-upgrade"}, format="json")
    assert ok.status_code == 200 and ok.json()["hardware"] == "cpu-upgrade"
    assert api(people["stranger"]).get(path).json()["tier"] == "cpu-upgrade"
    listed = api(None).get("/api/hardware").json()["results"]
    assert {t["name"]: (t["gpus"], t["default"]) for t in listed} == {
        "cpu-basic": (0, True), "cpu-upgrade": (0, False), "gpu-small": (1, False)}


def test_a_second_gpu_space_is_refused_by_the_quota(tiers, api, people, make_space):
    first = make_space(people["owner"], "g1", sdk="gradio")
    Space.objects.filter(pk=first.pk).update(tier="gpu-small", hardware="gpu-small", status="RUNNING")
    second = make_space(people["owner"], "g2", sdk="gradio")
    answer = api(people["owner"]).patch(f"/api/spaces/olive/{second.name}", {"hardware": "gpu-small"}, format="json")
    assert answer.status_code == 403 and answer.json()["code"] == "quota_gpu_spaces"


# ----------------------------------------------------------------------------- placement
def test_placement_takes_the_node_with_most_free_memory_that_fits(tiers, olive, make_space):
    small, big = make_node("small", memory=2 * GiB), make_node("big", memory=8 * GiB)
    spaces = [make_space(olive, f"s{i}", sdk="gradio") for i in range(3)]
    for s in spaces:
        Space.objects.filter(pk=s.pk).update(hardware="cpu-upgrade")  # 3 GiB: only "big" holds it
    first = placement.space_place(spaces[0].pk)
    assert first.node == big and fresh(spaces[0]).placement.startswith("tier cpu-upgrade (owner) on big")
    Space.objects.filter(pk=spaces[0].pk).update(status="RUNNING")
    second = placement.space_place(spaces[1].pk)
    assert second.node == big  # 5 GiB free still
    Space.objects.filter(pk=spaces[1].pk).update(status="RUNNING")
    third = placement.space_place(spaces[2].pk)  # 2 GiB free on each: none fits 3 GiB
    assert third.node is None and third.waiting == (
        "waiting for hardware: no node has 3.0 GiB of memory, 2 CPUs free for tier cpu-upgrade")
    assert small.pk != big.pk


def test_a_gpu_tier_goes_only_to_a_node_with_gpus(tiers, olive, make_space):
    make_node("cpu-only", memory=64 * GiB)
    space = make_space(olive, "gpu", sdk="gradio", )
    Space.objects.filter(pk=space.pk).update(hardware="gpu-small")
    assert placement.space_place(space.pk).waiting == "waiting for hardware: no node has a GPU"
    gpu = make_node("gpu", memory=2 * GiB, gpus=1)
    assert placement.space_place(space.pk).node == gpu
    # ... and never to it twice over its GPUs.
    Space.objects.filter(pk=space.pk).update(status="RUNNING")
    other = make_space(olive, "gpu2", sdk="gradio")
    Space.objects.filter(pk=other.pk).update(hardware="gpu-small")
    Space.objects.filter(owner=olive).update()  # same owner: the quota says no first
    assert "quota" in placement.space_place(other.pk).waiting


def test_cordoned_stale_and_lost_nodes_take_nothing(tiers, olive, make_space):
    space = make_space(olive, "c", sdk="gradio")
    make_node("cordoned", cordoned=True)
    make_node("stale", stale=True)
    make_node("lost", state=NodeState.LOST)
    assert placement.space_place(space.pk).waiting == "waiting for hardware: no node is ready"
    ok = make_node("ok")
    assert placement.space_place(space.pk).node == ok


def test_without_nodes_nothing_is_placed_and_queues_stay(tiers, olive, make_space):
    space = make_space(olive, "local", sdk="gradio")
    decision = placement.space_place(space.pk)
    assert decision.node is None and decision.here and not decision.waiting
    assert resolve("spaces.tasks.stop_space_task", (space.pk,), {}) is None


def test_a_spaces_work_goes_to_its_nodes_queues(tiers, olive, make_space):
    node = make_node("n1")
    space = make_space(olive, "q", sdk="gradio")
    Space.objects.filter(pk=space.pk).update(node=node)
    assert resolve("spaces.tasks.stop_space_task", (space.pk,), {}) == "node.n1"
    assert resolve("spaces.tasks.wake_start_space_task", (space.pk,), {}) == "node.n1.starts"
    assert resolve("spaces.tasks.publish_route_task", (space.pk,), {}) is None  # routes stay on the hub
    Node.objects.filter(pk=node.pk).update(state=NodeState.LOST)
    assert resolve("spaces.tasks.stop_space_task", (space.pk,), {}) is None


# ----------------------------------------------------------------------------- starts on nodes
def test_a_space_starts_on_its_node_with_its_tiers_limits(nodes, gradio, olive, push, fake_backend):
    make_node("n1")
    push(gradio, gradio.files(), olive)
    space = fresh(gradio)
    assert (space.status, space.node.name, space.node_a.name, space.tier) == ("RUNNING", "n1", "n1", "cpu-basic")
    name = f"dh-{fake_backend_instance()}-{space.label}-a"
    spec = nodes.engines["n1"][name]["spec"]
    assert (spec.memory, spec.cpus, spec.gpus) == ("1g", 1.0, 0)
    assert not containers(nodes, "")  # nothing on the hub's engine


def fake_backend_instance() -> str:
    from django.conf import settings
    return settings.DEMOHUB_INSTANCE


def test_waiting_for_hardware_then_started_when_a_gpu_node_registers(nodes, gradio, olive, push, settings):
    make_node("n1")
    Space.objects.filter(pk=gradio.pk).update(hardware="gpu-small")
    push(gradio, gradio.files(), olive)
    space = fresh(gradio)
    assert (space.status, space.error, space.node) == ("APP_STARTING", "waiting for hardware: no node has a GPU", None)
    assert space.tier == "gpu-small"
    # The lost-start sweep leaves it alone (it lost nothing) and starts nothing while nothing fits.
    assert reconcile.sweep()["starts_resent"] == [] and reconcile.waiting_starts_retry() == []
    make_node("gpu", memory=16 * GiB, gpus=1)
    assert reconcile.waiting_starts_retry() == [space.pk]
    space = fresh(gradio)
    assert (space.status, space.error, space.node.name, space.tier) == ("RUNNING", "", "gpu", "gpu-small")
    spec = next(iter(nodes.engines["gpu"].values()))["spec"]
    assert spec.gpus == 1


def test_a_lost_node_is_declared_within_the_limit_and_its_spaces_start_elsewhere(nodes, gradio, olive, push,
                                                                                  settings):
    n1 = make_node("n1", memory=8 * GiB)
    push(gradio, gradio.files(), olive)
    assert fresh(gradio).node == n1 and containers(nodes, "n1")
    n2 = make_node("n2", memory=2 * GiB)
    assert services.nodes_check() == []  # n1 heartbeats: nothing happens
    settings.NODE_LOST_AFTER = 30
    Node.objects.filter(pk=n1.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=31))
    assert services.nodes_check() == ["n1"]
    n1.refresh_from_db()
    assert n1.state == NodeState.LOST and n1.epoch == 2
    space = fresh(gradio)
    assert (space.status, space.node, space.node_a) == ("RUNNING", n2, n2)
    assert containers(nodes, "n2") and space.error == ""


def test_a_node_back_from_the_dead_removes_its_containers_before_work(nodes, gradio, olive, push, fake_backend):
    n1 = make_node("n1")
    push(gradio, gradio.files(), olive)
    Node.objects.filter(pk=n1.pk).update(state=NodeState.LOST, epoch=5)
    assert not services.node_heartbeat(name="n1", epoch=1)  # the hub refuses its old epoch
    nodes.as_node("n1")
    settings_facts = heartbeat.node_facts()
    assert settings_facts["name"] == "n1"
    node = heartbeat.register(fake_backend)
    assert not fake_backend.containers and (node.state, node.epoch) == (NodeState.READY, 6)
    assert services.node_heartbeat(name="n1", epoch=6)
    nodes.as_node("")


def test_drain_moves_a_serving_space_to_another_node_switch_first(nodes, gradio, olive, push):
    n1 = make_node("n1")
    push(gradio, gradio.files(), olive)
    assert fresh(gradio).active_slot == "a"
    n2 = make_node("n2")
    assert services.node_drain(n1) == [gradio.pk]
    space = fresh(gradio)
    assert (space.status, space.node, space.active_slot, space.node_b) == ("RUNNING", n2, "b", n2)
    assert containers(nodes, "n2") == {f"dh-{fake_backend_instance()}-{space.label}-b"}
    assert containers(nodes, "n1") == set()  # the old node released it after the switch
    n1.refresh_from_db()
    assert n1.state == NodeState.DRAINING and n1.cordoned


def test_cordon_keeps_spaces_and_takes_no_new_one(nodes, gradio, olive, push, make_space):
    n1 = make_node("n1")
    push(gradio, gradio.files(), olive)
    services.node_cordon(n1)
    assert fresh(gradio).node == n1 and containers(nodes, "n1")
    other = make_space(olive, "other", sdk="gradio")
    assert placement.space_place(other.pk).waiting == "waiting for hardware: no node is ready"
    services.node_cordon(n1, cordoned=False)
    assert placement.space_place(other.pk).node == n1


def test_remove_starts_spaces_elsewhere(nodes, gradio, olive, push):
    n1 = make_node("n1")
    push(gradio, gradio.files(), olive)
    n2 = make_node("n2")
    services.node_remove(n1)
    n1.refresh_from_db()
    assert n1.state == NodeState.REMOVED and fresh(gradio).node == n2
    assert containers(nodes, "n1") == set()  # fenced on its queue


# ----------------------------------------------------------------------------- GPUs
def test_a_gpu_tier_starts_the_container_with_the_nvidia_device_request():
    spec = RunSpec(name="x", image="i", address="10.0.0.2", port=7860, env={}, labels={}, gpus=2)
    args = host_config_args(spec, "net")
    (request,) = args["device_requests"]
    assert (request["Driver"], request["Count"], request["Capabilities"]) == ("nvidia", 2, [["gpu"]])
    config = docker.APIClient(base_url="unix:///nonexistent", version="1.41").create_host_config(**args)
    assert config["DeviceRequests"] == [{"Driver": "nvidia", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]],
                                         "Options": {}}]
    assert config["Memory"] == 2 * GiB and config["NanoCpus"] == 10**9
    cpu = host_config_args(RunSpec(name="x", image="i", address="a", port=1, env={}, labels={}), "net")
    assert "device_requests" not in cpu and device_requests(0) == []


def test_gpu_discovery_is_empty_without_a_driver():
    from runner import gpus

    assert gpus.discover() == []  # no NVIDIA driver on these machines: [] cleanly, never an error


# ----------------------------------------------------------------------------- operator API
def test_staff_see_nodes_with_capacity_load_and_spaces_and_cordon_them(api, make_user, make_space, tiers):
    staff = make_user("root", is_staff=True)
    node = make_node("n1", memory=4 * GiB, cpus=4, gpus=1)
    space = make_space(staff, "on-n1", sdk="gradio")
    Space.objects.filter(pk=space.pk).update(node=node, tier="cpu-upgrade", status="RUNNING")
    listed = api(staff).get("/api/nodes")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["name"], row["memory_bytes"], row["free_memory_bytes"], row["free_cpus"], row["free_gpus"],
            row["spaces"]) == ("n1", 4 * GiB, GiB, 2.0, 1, ["root/on-n1"])
    done = api(staff).post("/api/nodes/n1/cordon")
    assert done.status_code == 202 and done.json()["node"]["cordoned"] and not done.json()["node"]["schedulable"]
    assert api(staff).post("/api/nodes/n1/explode").status_code == 404
    assert api(staff).get("/api/nodes/nope").status_code == 404
    assert json.loads(json.dumps(api(staff).get("/api/nodes/n1").json()))["state"] == "ready"


def test_the_node_api_answers_503_when_the_database_is_down(api, make_user, monkeypatch):
    from django.db import OperationalError

    staff = make_user("root", is_staff=True)
    client = api(staff)

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setattr("spaces.nodes.api.nodes_overview", down)
    answer = client.get("/api/nodes")
    assert answer.status_code == 503 and answer["Retry-After"]


def test_the_openapi_schema_describes_tiers_and_nodes(client):
    schema = client.get("/api/schema", {"format": "json"}).json()
    assert {"/api/hardware", "/api/nodes", "/api/nodes/{name}", "/api/nodes/{name}/{action}"} <= set(schema["paths"])
    assert {"cpus", "memory_bytes", "gpus", "free_memory_bytes", "spaces"} <= set(
        schema["components"]["schemas"]["NodeOut"]["properties"])
