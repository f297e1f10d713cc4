"""An in-memory backend for fast unit tests (never the default; end-to-end tests use Docker).

It keeps "containers" in a dict and can be told to fail a build or a start, so the
services' state machine can be walked without an engine.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..exceptions import BuildError
from .base import Backend, BuildSpec, ContainerState, LogSink, RunSpec


class FakeBackend(Backend):
    fail_build: str = ""  # a message: the next builds fail with it
    fail_start: bool = False  # the next containers exit at once

    def __init__(self) -> None:
        self.images: dict[str, dict[str, str]] = {}
        self.containers: dict[str, dict] = {}
        self.builds: list[BuildSpec] = []

    def ensure_ready(self) -> None:
        pass

    def build(self, spec: BuildSpec, *, log: LogSink, should_continue: Callable[[], bool]) -> str:
        self.builds.append(spec)
        log(f"Step 1/1 : FAKE build of {spec.image}\n")
        if self.fail_build:
            raise BuildError(self.fail_build)
        self.images[spec.image] = {"demohub.space": spec.space, "demohub.revision": str(spec.revision)}
        return f"sha256:{abs(hash(spec.image)):x}"

    def start(self, spec: RunSpec) -> None:
        self.containers[spec.name] = {"spec": spec, "running": not self.fail_start, "paused": False,
                                      "exit_code": None if not self.fail_start else 1,
                                      "logs": [(time.time(), f"fake {spec.name} started\n")]}

    def stop(self, name: str, *, timeout: int = 10) -> None:
        self.containers.pop(name, None)

    def state(self, name: str) -> ContainerState | None:
        c = self.containers.get(name)
        if c is None:
            return None
        return ContainerState(name=name, running=c["running"], paused=c["paused"], exit_code=c["exit_code"],
                              oom_killed=False, labels=dict(c["spec"].labels))

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

    def remove_space(self, space: str) -> None:
        for name, c in list(self.containers.items()):
            if c["spec"].labels.get("demohub.space") == space:
                del self.containers[name]
        for image, labels in list(self.images.items()):
            if labels.get("demohub.space") == space:
                del self.images[image]

    def remove_image(self, image: str) -> None:
        self.images.pop(image, None)
