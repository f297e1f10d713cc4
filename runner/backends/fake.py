"""An in-memory backend for fast unit tests (never the default; end-to-end tests use Docker).

It keeps "containers" in a dict and can be told to fail a build or a start, so the
services' state machine can be walked without an engine.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..exceptions import BuildError
from .base import Backend, BuildSpec, ContainerState, ImageInfo, LogSink, RunSpec


BASE_LAYER = "sha256:base"  # stands for a tagged base image: never a layer to prune


class FakeBackend(Backend):
    fail_build: str = ""  # a message: the next builds fail with it
    fail_start: bool = False  # the next containers exit at once

    def __init__(self) -> None:
        self.images: dict[str, dict[str, str]] = {}
        self.containers: dict[str, dict] = {}
        self.builds: list[BuildSpec] = []
        # Names of build step containers the engine is running (a test puts them there to
        # stand for builds whose worker died); cancel_builds removes them.
        self.build_steps: set[str] = set()
        # Image tag -> its parent layer; untagged layer id -> its parent ("" at a base image).
        # A build makes one layer of its own on top of the shared base (BASE_LAYER, tagged).
        self.image_parents: dict[str, str] = {}
        self.layers: dict[str, str] = {}
        self.image_created: dict[str, float] = {}

    def ensure_ready(self) -> None:
        pass

    def build(self, spec: BuildSpec, *, log: LogSink, should_continue: Callable[[], bool]) -> str:
        self.builds.append(spec)
        log(f"Step 1/1 : FAKE build of {spec.image}\n")
        if self.fail_build:
            raise BuildError(self.fail_build)
        self.images[spec.image] = {**spec.labels, "demohub.space": spec.space, "demohub.revision": str(spec.revision)}
        layer = f"sha256:layer-{spec.image}"
        self.layers[layer] = BASE_LAYER
        self.image_parents[spec.image] = layer
        self.image_created[spec.image] = time.time()
        return f"sha256:{abs(hash(spec.image)):x}"

    def start(self, spec: RunSpec) -> None:
        self.containers[spec.name] = {"spec": spec, "running": not self.fail_start, "paused": False,
                                      "exit_code": None if not self.fail_start else 1,
                                      "logs": [(time.time(), f"fake {spec.name} started\n")],
                                      "created_at": time.time(), "finished_at": None if not self.fail_start
                                      else time.time()}

    def stop(self, name: str, *, timeout: int = 10) -> None:
        self.containers.pop(name, None)

    def freeze(self, name: str) -> bool:
        c = self.containers.get(name)
        if c is None or not c["running"]:
            return False
        c["paused"] = True
        return True

    def unfreeze(self, name: str) -> bool:
        c = self.containers.get(name)
        if c is None or not c["running"]:
            return False
        c["paused"] = False
        return True

    def memory_usage(self, name: str) -> int | None:
        c = self.containers.get(name)
        if c is None:
            return None
        return c.get("memory", 150 * 2**20) if c["running"] else 0

    def state(self, name: str) -> ContainerState | None:
        c = self.containers.get(name)
        if c is None:
            return None
        return ContainerState(name=name, running=c["running"], paused=c["paused"], exit_code=c["exit_code"],
                              oom_killed=c.get("oom_killed", False), labels=dict(c["spec"].labels), id=name,
                              created_at=c.get("created_at"), finished_at=c.get("finished_at"))

    def crash(self, name: str, *, exit_code: int = 1, oom_killed: bool = False, output: str = "") -> None:
        """The app in `name` ends by itself, as Docker shows it: the container stays, exited,
        with its exit code (an OOM kill: 137 and OOMKilled) and its output in the logs."""
        c = self.containers[name]
        if output:
            c["logs"].append((time.time(), output))
        c.update(running=False, paused=False, exit_code=exit_code, oom_killed=oom_killed, finished_at=time.time())

    def cancel_builds(self) -> int:
        removed = len(self.build_steps)
        self.build_steps.clear()
        return removed

    def logs(self, name: str, *, since: float | None = None, tail: int | None = None) -> tuple[str, float]:
        c = self.containers.get(name)
        if c is None:
            return "", since or 0.0
        lines = [(ts, text) for ts, text in c["logs"] if not since or ts > since]
        if tail:
            lines = lines[-tail:]
        return "".join(t for _, t in lines), max([ts for ts, _ in lines], default=since or 0.0)

    def list_containers(self) -> list[ContainerState]:
        return [s for s in (self.state(n) for n in list(self.containers)) if s]

    def remove_space(self, space: str) -> list[str]:
        for name, c in list(self.containers.items()):
            if c["spec"].labels.get("demohub.space") == space:
                del self.containers[name]
        parents = []
        for image, labels in list(self.images.items()):
            parent = self.image_parents.get(image, "")
            if labels.get("demohub.space") == space and self.remove_image(image):
                parents.append(parent)
        return [p for p in parents if p]

    def remove_image(self, image: str) -> bool:
        if image not in self.images or any(c["spec"].image == image for c in self.containers.values()):
            return False  # gone, or a container uses it: the engine refuses
        del self.images[image]
        self.image_created.pop(image, None)
        self.image_parents.pop(image, None)  # its layer stays (noprune) until prune_layers
        return True

    def list_images(self) -> list[ImageInfo]:
        return [ImageInfo(id=f"sha256:{tag}", tags=(tag,), labels=dict(labels), parent=self.image_parents.get(tag, ""),
                          created_at=self.image_created.get(tag)) for tag, labels in self.images.items()]

    def remove_container(self, container_id: str) -> bool:
        c = self.containers.get(container_id)
        if c is None or c["running"]:
            return False
        del self.containers[container_id]
        return True

    def prune_layers(self, image_ids: list[str]) -> list[str]:
        removed, pending = [], [i for i in image_ids if i]
        while pending:
            layer = pending.pop()
            in_use = layer in self.image_parents.values() or layer in self.layers.values()
            if layer not in self.layers or in_use:
                continue  # tagged (not a layer of ours), gone, or something is built on it
            parent = self.layers.pop(layer)
            removed.append(layer)
            if parent:
                pending.append(parent)
        return removed
