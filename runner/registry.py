"""Images travel between nodes through a registry (CNCF Distribution, docs/scale.md).

An image keeps one local name on every engine (`demohub-<instance>/<label>:r<n>`, the base and
SDK images' names); in the registry it is `<registry>/<that name>`, where `<registry>` is the
registry's host:port as THIS engine reaches it (RUNNER_REGISTRY: 127.0.0.1:5000 on the hub,
the hub's link address on a node). A build pushes what it made; a node that lacks an image
pulls it and tags it with the local name, so everything else (RunSpec.image, the Dockerfile
policy's pinned ids: a pulled image keeps its id) works the same on every node.

No registry configured (one machine, `make up`): every call here is a no-op.
"""
from __future__ import annotations

import docker
import docker.errors
import requests.exceptions

from .exceptions import BackendUnavailable


def remote_name(registry: str, image: str) -> str:
    """`<registry>/<image>`: the image's name in the registry."""
    return f"{registry.rstrip('/')}/{image}"


def _split(ref: str) -> tuple[str, str]:
    """'host:5000/a/b:tag' -> ('host:5000/a/b', 'tag'); no tag means 'latest'."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def push(client: docker.DockerClient, registry: str, image: str) -> None:
    """Push the local image `image` to the registry (idempotent: layers it has are skipped)."""
    if not registry:
        return
    remote = remote_name(registry, image)
    repo, tag = _split(remote)
    try:
        client.api.tag(image, repo, tag)
        for chunk in client.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "push failed")
                raise BackendUnavailable(f"cannot push {image} to the registry {registry}: {message}")
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as exc:
        raise BackendUnavailable(f"cannot push {image} to the registry {registry}: {exc}") from exc
    finally:
        try:  # the local name stays the only one: housekeeping lists images by it
            client.api.remove_image(remote, noprune=True)
        except docker.errors.APIError:
            pass


def ensure_local(client: docker.DockerClient, registry: str, image: str) -> bool:
    """Make `image` exist on this engine: present already, or pulled from the registry and
    tagged with its local name. Returns whether it exists afterwards (False: not in the
    registry either, or no registry)."""
    try:
        client.api.inspect_image(image)
        return True
    except docker.errors.ImageNotFound:
        pass
    except requests.exceptions.ConnectionError as exc:
        raise BackendUnavailable(f"the Docker engine does not answer: {exc}") from exc
    if not registry:
        return False
    remote = remote_name(registry, image)
    repo, tag = _split(remote)
    try:
        client.api.pull(repo, tag=tag)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code and 400 <= exc.status_code < 500:
            return False  # not in the registry (the engine answers 404 or 500 by version)
        raise BackendUnavailable(f"cannot pull {image} from the registry {registry}: {exc.explanation}") from exc
    except requests.exceptions.ConnectionError as exc:
        raise BackendUnavailable(f"the Docker engine does not answer: {exc}") from exc
    local_repo, local_tag = _split(image)
    client.api.tag(remote, local_repo, local_tag)
    try:
        client.api.remove_image(remote, noprune=True)
    except docker.errors.APIError:
        pass
    return True
