"""runner.backends.docker: image removal never prunes untagged parent layers.

Images of different spaces share untagged parent layers (the first steps after
`FROM demohub/sdk-<sdk>:<v>`), which a concurrent build reuses from the cache. Removing an
image with pruning deletes such a parent under that build, which then fails with "unknown
parent image ID" (bench/README.md). Only the outbound Docker API is replaced here.
"""
from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import docker
import pytest

from runner.backends.docker import DockerBackend


@pytest.fixture
def backend():
    b = DockerBackend(instance="unit", network="demohub-unit-spaces", subnet="10.213.0.0/16",
                      base_image="demohub/base:bookworm")
    b._client = mock.MagicMock(spec=docker.DockerClient)
    return b


def test_remove_image_keeps_parent_layers(backend):
    backend.remove_image("demohub-unit/olive-demo:r1")
    backend.client.images.remove.assert_called_once_with("demohub-unit/olive-demo:r1", noprune=True)


def test_remove_space_keeps_parent_layers(backend):
    backend.client.containers.list.return_value = []
    backend.client.images.list.return_value = [
        SimpleNamespace(id="sha256:1", tags=["demohub-unit/olive-demo:r1", "demohub-unit/olive-demo:r2"],
                        attrs={"Parent": "sha256:p1"}),
        SimpleNamespace(id="sha256:2", tags=[], attrs={"Parent": ""}),
    ]
    parents = backend.remove_space("olive/demo")
    calls = backend.client.images.remove.call_args_list
    assert [c.args[0] for c in calls] == ["demohub-unit/olive-demo:r1", "demohub-unit/olive-demo:r2", "sha256:2"]
    assert all(c.kwargs.get("noprune") is True for c in calls), calls
    assert parents == ["sha256:p1"]  # for housekeeping's layer pruning, once no build runs


def test_remove_image_that_is_gone_or_in_use_is_not_an_error(backend):
    backend.client.images.remove.side_effect = docker.errors.ImageNotFound("gone")
    backend.remove_image("demohub-unit/olive-demo:r1")
    backend.client.images.remove.side_effect = docker.errors.APIError("conflict: in use")
    backend.remove_image("demohub-unit/olive-demo:r1")


def test_stop_removes_the_containers_anonymous_volumes(backend):
    """A Dockerfile VOLUME makes an anonymous volume per container: it goes with the container."""
    container = backend.client.containers.get.return_value
    container.status = "running"
    backend.stop("dh-unit-olive-demo-a", timeout=1)
    container.remove.assert_called_once_with(force=True, v=True)
