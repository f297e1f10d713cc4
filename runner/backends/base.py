"""The container engine interface: what spaces/ may ask of an engine, in plain values.

A backend builds images and runs one container per serving slot of a space. It never sees a
Django model; callers hand it frozen dataclasses and get plain values back. Every method is
idempotent: calling it twice has the effect of calling it once, "not found" on stop/remove
is success.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BuildSpec:
    """Everything a build needs. `image` is the tag to produce."""

    space: str  # "owner/name"
    revision: int
    sdk: str  # gradio | streamlit | docker  (static spaces are never built)
    snapshot: Path  # the revision's immutable files
    image: str
    app_file: str = "app.py"
    app_port: int = 7860
    sdk_version: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """One container of a space, on a fixed address of the spaces network."""

    name: str
    image: str
    address: str
    port: int
    env: dict[str, str]
    labels: dict[str, str]
    read_only_root: bool = True
    memory: str = "2g"
    cpus: float = 1.0
    pids: int = 512
    tmpfs_size: str = "512m"
    # The port published on the node's address when the container runs on a node of several
    # (runner/backends/docker.py publish_address); ignored by the hub's own engine.
    publish_port: int | None = None
    gpus: int = 0  # NVIDIA GPUs from the hardware tier: the engine's device request (docker_run.py)


@dataclass(frozen=True)
class ContainerState:
    name: str
    running: bool
    paused: bool
    exit_code: int | None
    oom_killed: bool
    labels: dict[str, str]
    error: str = ""
    id: str = ""
    created_at: float | None = None   # epoch seconds
    finished_at: float | None = None  # when it last stopped; None while it never did


@dataclass(frozen=True)
class ImageInfo:
    """An image of this installation (a space's revision), as housekeeping sees it."""

    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    parent: str = ""                  # the local parent image id (the legacy builder's layers)
    created_at: float | None = None


LogSink = Callable[[str], None]


def parse_bytes(size: str) -> int:
    """'512m' -> bytes (docker's own notation: k, m, g)."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    size = size.strip().lower()
    if size and size[-1] in units:
        return int(float(size[:-1]) * units[size[-1]])
    return int(size)


class Backend(abc.ABC):
    """Base class of container engines (Docker today, another engine behind the same calls)."""

    @abc.abstractmethod
    def ensure_ready(self) -> None:
        """Prepare shared resources (the spaces network). Called before every start; cheap when done.

        Raises BackendUnavailable when the engine does not answer.
        """

    @abc.abstractmethod
    def build(self, spec: BuildSpec, *, log: LogSink, should_continue: Callable[[], bool]) -> str:
        """Build `spec.image` from the snapshot and return the image id.

        `log` receives the build output as it comes; `should_continue` is polled between
        steps and, when it turns False, the build is abandoned (raise BuildCancelled).
        Raises BuildError (the user's repo is at fault: shown, not retried) or
        BackendUnavailable (the engine is down: retried).
        """

    @abc.abstractmethod
    def start(self, spec: RunSpec) -> None:
        """Create and start the container `spec.name`, replacing a stale one of that name."""

    @abc.abstractmethod
    def stop(self, name: str, *, timeout: int = 10) -> None:
        """Stop and remove the container `name`; a missing container is fine."""

    @abc.abstractmethod
    def freeze(self, name: str) -> bool:
        """Suspend every process of the container, keeping its memory (Docker's "pause").

        Returns False when there is no running container of that name.
        """

    @abc.abstractmethod
    def unfreeze(self, name: str) -> bool:
        """Resume a frozen container. Returns whether it is running afterwards."""

    @abc.abstractmethod
    def memory_usage(self, name: str) -> int | None:
        """Bytes of memory the container holds now (None when it does not exist)."""

    @abc.abstractmethod
    def state(self, name: str) -> ContainerState | None:
        """The container's state, or None when it does not exist."""

    @abc.abstractmethod
    def logs(self, name: str, *, since: float | None = None, tail: int | None = None) -> tuple[str, float]:
        """Return (text, timestamp of the last line) of the container's output since `since`."""

    @abc.abstractmethod
    def list_containers(self) -> list[ContainerState]:
        """Every container of this installation (by the demohub.instance label)."""

    @abc.abstractmethod
    def remove_space(self, space: str) -> list[str]:
        """Remove every container and image labelled demohub.space=`space`; return the parent
        ids of the removed images (layers that may now be unused: see prune_layers)."""

    @abc.abstractmethod
    def remove_image(self, image: str) -> bool:
        """Remove one image by tag or id, never its parents; a missing or still used image is
        left alone. Returns whether it was removed."""

    @abc.abstractmethod
    def list_images(self) -> list[ImageInfo]:
        """Every image of this installation (by the demohub.instance label)."""

    @abc.abstractmethod
    def remove_container(self, container_id: str) -> bool:
        """Remove a container that is not running (a running one is refused and left alone).
        Returns whether it was removed."""

    @abc.abstractmethod
    def prune_layers(self, image_ids: list[str]) -> list[str]:
        """Remove the untagged images among `image_ids` that nothing uses (no child image, no
        container), then their parents the same way; return the ids removed.

        Tagged images (bases, SDK images, any space's revision) are never removed. Only while
        no build runs: a build may be about to reuse one of these layers from its cache.
        """

    @abc.abstractmethod
    def cancel_builds(self) -> int:
        """Stop every image build of this installation that the engine is running now, and
        return how many step containers were removed.

        For builds whose worker died (spaces/builds/leases.py). Docker's legacy builder has no
        per-build cancel call and its step containers carry no build id, so this ends all of
        them: callers make sure no live build is among them.
        """
