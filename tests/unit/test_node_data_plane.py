"""The data plane between nodes (docs/scale.md): registry push/pull, the published port of a
container on another node, and the route's upstream per slot. Only the outbound Docker API is
replaced; the e2e proof is tests/e2e/test_nodes.py."""
from __future__ import annotations

from unittest import mock

import docker
import docker.errors
import pytest

from runner import registry
from runner.backends.base import RunSpec
from runner.backends.docker_run import host_config_args
from spaces.lifecycle.node_routes import slot_port, slot_upstream
from spaces.models import Node, Space


def spec(**extra) -> RunSpec:
    return RunSpec(name="dh-unit-x-a", image="demohub-unit/x:r1", address="10.213.0.16", port=7860, env={},
                   labels={}, **extra)


def test_a_node_publishes_the_app_port_on_its_address_only():
    args = host_config_args(spec(publish_port=20032), "demohub-unit-spaces", "10.209.7.2")
    assert args["port_bindings"] == {7860: ("10.209.7.2", 20032)}


def test_the_hubs_own_engine_publishes_nothing():
    assert "port_bindings" not in host_config_args(spec(publish_port=20032), "demohub-unit-spaces", "")
    assert "port_bindings" not in host_config_args(spec(), "demohub-unit-spaces", "10.209.7.2")


@pytest.fixture
def client():
    c = mock.MagicMock(spec=docker.DockerClient)
    c.api = mock.MagicMock()
    return c


def test_without_a_registry_nothing_is_pushed_or_pulled(client):
    registry.push(client, "", "demohub-unit/x:r1")
    client.api.inspect_image.side_effect = docker.errors.ImageNotFound("no")
    assert registry.ensure_local(client, "", "demohub-unit/x:r1") is False
    client.api.push.assert_not_called()
    client.api.pull.assert_not_called()


def test_a_build_pushes_under_the_registry_name_and_keeps_only_its_local_name(client):
    client.api.push.return_value = iter([{"status": "Pushed"}])
    registry.push(client, "127.0.0.1:5000", "demohub-unit/x:r1")
    client.api.tag.assert_called_once_with("demohub-unit/x:r1", "127.0.0.1:5000/demohub-unit/x", "r1")
    client.api.push.assert_called_once_with("127.0.0.1:5000/demohub-unit/x", tag="r1", stream=True, decode=True)
    client.api.remove_image.assert_called_once_with("127.0.0.1:5000/demohub-unit/x:r1", noprune=True)


def test_a_failed_push_says_which_image_and_registry(client):
    client.api.push.return_value = iter([{"error": "connection refused"}])
    with pytest.raises(Exception, match=r"cannot push demohub-unit/x:r1 to the registry 10\.0\.0\.5:5000"):
        registry.push(client, "10.0.0.5:5000", "demohub-unit/x:r1")


def test_a_node_pulls_a_missing_image_and_tags_it_with_its_local_name(client):
    client.api.inspect_image.side_effect = docker.errors.ImageNotFound("no")
    assert registry.ensure_local(client, "10.209.7.1:5000", "demohub/base:bookworm") is True
    client.api.pull.assert_called_once_with("10.209.7.1:5000/demohub/base", tag="bookworm")
    client.api.tag.assert_called_once_with("10.209.7.1:5000/demohub/base:bookworm", "demohub/base", "bookworm")


def test_an_image_present_is_not_pulled(client):
    assert registry.ensure_local(client, "10.209.7.1:5000", "demohub/base:bookworm") is True
    client.api.pull.assert_not_called()


def test_an_image_the_registry_lacks_is_reported_missing(client):
    client.api.inspect_image.side_effect = docker.errors.ImageNotFound("no")
    client.api.pull.side_effect = docker.errors.NotFound("manifest unknown")
    assert registry.ensure_local(client, "10.209.7.1:5000", "demohub-unit/x:r9") is False


def test_each_slot_routes_to_its_own_node(settings):
    settings.NODE_PORT_BASE = 20000
    hub = Node(name="node1", address="127.0.0.1", queue="lifecycle")
    other = Node(name="n2", address="10.209.7.2", queue="node.n2")
    space = Space(address_index=5, node_a=hub, node_b=other)
    assert slot_upstream(space, "a", 7860) == f"{space.slot_address('a')}:7860"   # the bridge, as on one machine
    assert slot_upstream(space, "b", 7860) == "10.209.7.2:20011"
    assert slot_port(space, "a") == 20010
    assert slot_upstream(Space(address_index=5), "a", 8080) == f"{Space(address_index=5).slot_address('a')}:8080"


def test_a_port_beyond_65535_is_refused_with_the_setting_to_change(settings):
    settings.NODE_PORT_BASE = 65000
    with pytest.raises(ValueError, match="NODE_PORT_BASE"):
        slot_port(Space(address_index=600), "a")
