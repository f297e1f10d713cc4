"""The Docker engine backend, through the docker SDK (API 1.41, the legacy builder).

Names are deterministic and operations idempotent (readthedocs, dockerspawner): a container
is `dh-<instance>-<label>-<slot>`, an image `demohub-<instance>/<label>:r<n>`; start() replaces
a stale container of the same name; stop() and remove treat "not found" as done.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import requests
import requests.exceptions
import urllib3.exceptions

from .. import dockerfile_policy, egress, registry
from .. import sdk as sdk_files
from ..exceptions import BackendUnavailable, BuildCancelled, BuildError, NotIsolated
from . import docker_run
from .base import Backend, BuildSpec, ContainerState, ImageInfo, LogSink, RunSpec, parse_bytes
from .docker_util import bridge_name, epoch_or_none, hang_up, parse_ts, read_into

__all__ = ["DockerBackend", "bridge_name"]

log = logging.getLogger(__name__)

_STEP_RE = re.compile(r"^Step \d+/\d+ : ")


class DockerBackend(Backend):
    def __init__(self, *, instance: str, network: str, subnet: str, base_image: str,
                 builds_network: str = "", builds_subnet: str = "",
                 ca_bundle: str = "", pull_missing_base: bool = False, build_memory: str = "4g",
                 build_cpus: float = 1.0, build_cpu_shares: int = 512, build_cgroup_parent: str = "",
                 isolation_file: str = "", allow_unisolated: bool = False,
                 build_timeout: int = 1200, timeout: int = 60, allowed_images: tuple[str, ...] = (),
                 registry: str = "", publish_address: str = ""):
        # A node of several (docs/scale.md): images come from and go to `registry` (this engine's
        # view of it), containers publish their port on `publish_address` (the node's address).
        self.registry, self.publish_address = registry, publish_address
        self.instance = instance
        self.network = network
        self.subnet = subnet
        self.builds_network = builds_network or f"demohub-{instance}-builds"
        self.builds_subnet = builds_subnet
        self.build_cpus = build_cpus
        self.build_cpu_shares = build_cpu_shares
        self.build_cgroup_parent = build_cgroup_parent
        self.isolation_file = isolation_file
        self.allow_unisolated = allow_unisolated
        self.base_image = base_image
        self.ca_bundle = ca_bundle
        self.pull_missing_base = pull_missing_base
        self.build_memory = build_memory
        self.build_timeout = build_timeout
        self.timeout = timeout
        self.image_policy = dockerfile_policy.ImagePolicy(base_image=base_image,
                                                          allowed=tuple(allowed_images))
        self._client: docker.DockerClient | None = None

    # -- plumbing -------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=self.timeout)
                self._client.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                self._client = None
                raise BackendUnavailable(f"the Docker engine does not answer: {exc}") from exc
        return self._client

    def _call(self, fn: Callable, *args, **kwargs):
        """Run one engine call, turning connection failures into BackendUnavailable."""
        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            self._client = None
            raise BackendUnavailable(f"the Docker engine does not answer: {exc}") from exc

    def _labels(self, extra: dict[str, str]) -> dict[str, str]:
        return {"demohub.instance": self.instance, **extra}

    def _ca_bytes(self) -> bytes | None:
        if not self.ca_bundle:
            return None
        path = Path(self.ca_bundle)
        if not path.is_file():
            raise BackendUnavailable(f"BUILD_CA_BUNDLE={self.ca_bundle} is not a readable file")
        return path.read_bytes()

    # -- network --------------------------------------------------------------------------
    def ensure_ready(self) -> None:
        """The spaces network (fixed slot addresses) and the builds network (the engine's
        dynamic addresses for build steps): two bridges, two ranges that never overlap."""
        self._ensure_network(self.network, self.subnet, "spaces")
        if self.builds_subnet:
            self._ensure_network(self.builds_network, self.builds_subnet, "builds")

    def _ensure_network(self, name: str, subnet: str, role: str) -> None:
        try:
            self._call(self.client.networks.get, name)
            return
        except docker.errors.NotFound:
            pass
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            self._call(
                self.client.networks.create, name, driver="bridge", ipam=ipam,
                labels=self._labels({"demohub.role": role}),
                options={
                    # No inter-container traffic: a space cannot reach another space, nor a
                    # build step another build.
                    "com.docker.network.bridge.enable_icc": "false",
                    # scripts/isolate.sh matches the project's bridges by this name prefix too,
                    # so a packet with a forged source address is still filtered.
                    "com.docker.network.bridge.name": bridge_name(name),
                },
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # created meanwhile by another worker
                raise BackendUnavailable(f"cannot create network {name}: {exc.explanation}") from exc

    def require_isolation(self) -> None:
        """Refuse to run untrusted code (a build, a space) while scripts/isolate.sh has not
        firewalled this installation's subnets, unless the operator chose ALLOW_UNISOLATED."""
        if self.allow_unisolated or not self.isolation_file:
            return
        state = egress.isolation_state(self.isolation_file,
                                       [s for s in (self.subnet, self.builds_subnet) if s])
        if not state.isolated:
            raise NotIsolated(
                f"this hub's network firewall is not installed ({state.reason}), so it runs no "
                "build and no space: an operator must run scripts/isolate.sh as root (make up does), "
                "or set ALLOW_UNISOLATED=true to run spaces without it")

    # -- images ---------------------------------------------------------------------------
    def _image_exists(self, name: str) -> bool:
        """On this engine, or pulled now from the registry (a node's base and SDK images)."""
        return self._call(registry.ensure_local, self.client, self.registry, name)

    def _inspect_allowed_image(self, ref: str) -> dict | None:
        """The engine's attributes of an image the policy allows by name, or None if absent.

        With RUNNER_PULL_MISSING_BASE, an allowed reference that is absent is pulled here, by
        the API (never by the builder); the policy then verifies what arrived.
        """
        self._image_exists(ref)  # from the registry, on a node that lacks it
        for attempt in (1, 2):
            try:
                return self._call(self.client.api.inspect_image, ref)
            except docker.errors.NotFound:
                if attempt == 2 or not self.pull_missing_base:
                    return None
            except docker.errors.APIError as exc:
                if exc.status_code and 400 <= exc.status_code < 500:
                    return None
                raise BackendUnavailable(f"cannot inspect image {ref}: {exc.explanation}") from exc
            try:
                self._call(self.client.images.pull, ref)
            except docker.errors.APIError:
                return None
        return None

    def _stream_build(self, *, log: LogSink, should_continue: Callable[[], bool], **kwargs) -> str:
        """Drive one legacy-builder build, forwarding its output; return the image id.

        The output is read on a thread of its own, so `should_continue` (at each step, and
        every second) and the time limit are checked even while a step prints nothing for
        minutes (`RUN sleep 600`, a quiet pip install). An abandoned build hangs up its
        connection: the engine then cancels the build and kills the step's container at once
        (the legacy builder has no cancel call of its own).
        """
        api = self.client.api
        deadline = time.monotonic() + self.build_timeout
        # The legacy builder drops no capability and sets no pids limit of its own: what it does
        # take is a memory and CPU limit per step and a cgroup parent (whose pids.max
        # scripts/build-cgroup.sh sets). The SDK's build() knows only some of these query
        # parameters; the engine's POST /build takes them all, so the rest ride on the session.
        extra_params = {"cpuperiod": 100_000, "cpuquota": int(self.build_cpus * 100_000)}
        if self.build_cgroup_parent:
            extra_params["cgroupparent"] = self.build_cgroup_parent
        responses: list[requests.Response] = []

        def keep_build_response(response, *args, **kw):
            if response.request.path_url.split("?")[0].endswith("/build"):
                responses.append(response)

        image_id = ""
        output: queue.SimpleQueue = queue.SimpleQueue()
        reader = None
        api.hooks["response"].append(keep_build_response)
        session_params, api.params = api.params, {**(api.params or {}), **extra_params}
        try:
            try:
                # Build steps run on the builds network, never on the spaces network.
                stream = api.build(decode=True, rm=True, forcerm=True, network_mode=self.builds_network,
                                   container_limits={"memory": parse_bytes(self.build_memory),
                                                     "memswap": parse_bytes(self.build_memory),
                                                     "cpushares": self.build_cpu_shares},
                                   timeout=self.build_timeout, **kwargs)
            finally:
                api.hooks["response"].remove(keep_build_response)
                api.params = session_params
            reader = threading.Thread(target=read_into, args=(stream, output), name="build-output", daemon=True)
            reader.start()
            checked = time.monotonic()
            while True:
                try:
                    kind, chunk = output.get(timeout=1.0)
                except queue.Empty:
                    kind, chunk = "", {}
                if kind == "end":
                    break
                if kind == "error":
                    raise chunk
                step = False
                if "stream" in chunk:
                    text = chunk["stream"]
                    log(text)
                    step = bool(_STEP_RE.match(text))
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "errorDetail" in chunk or "error" in chunk:
                    message = chunk.get("error") or chunk["errorDetail"].get("message", "build failed")
                    log(message.rstrip() + "\n")
                    raise BuildError(message.strip())
                if time.monotonic() > deadline:
                    raise BuildError(f"the build took longer than {self.build_timeout} s")
                if step or time.monotonic() - checked >= 1.0:
                    checked = time.monotonic()
                    if not should_continue():
                        raise BuildCancelled("a newer revision superseded this build")
        except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError) as exc:
            raise BuildError(f"the build took longer than {self.build_timeout} s") from exc
        except (requests.exceptions.ConnectionError, urllib3.exceptions.ProtocolError) as exc:
            raise BackendUnavailable(f"the Docker engine went away during the build: {exc}") from exc
        except docker.errors.APIError as exc:
            raise BuildError(exc.explanation or str(exc)) from exc
        finally:
            if reader is not None and reader.is_alive():
                hang_up(responses)
                reader.join(timeout=10)
        if not image_id:
            raise BuildError("the build finished without producing an image")
        return image_id

    def _ensure_sdk_image(self, sdk: str, version: str, *, log: LogSink,
                          should_continue: Callable[[], bool]) -> None:
        name = sdk_files.sdk_image_name(sdk, version)
        if self._image_exists(name):
            return
        if not self._image_exists(self.base_image):
            raise BuildError(f"the base image {self.base_image} is missing on this engine; "
                             "an operator must run scripts/base-image.sh")
        log(f"--> preparing the {sdk} {version} SDK image (once per version)\n")
        ctx = sdk_files.sdk_image_context(base_image=self.base_image, sdk=sdk, version=version,
                                          ca_bundle=self._ca_bytes())
        self._stream_build(log=log, should_continue=should_continue, fileobj=ctx.fileobj,
                           custom_context=True, tag=name,
                           labels={"demohub.role": "sdk"})

    def build(self, spec: BuildSpec, *, log: LogSink, should_continue: Callable[[], bool]) -> str:
        self.require_isolation()
        self.ensure_ready()  # creates the builds network (same host and egress rules as spaces)
        labels = self._labels({**spec.labels, "demohub.space": spec.space,
                               "demohub.revision": str(spec.revision)})
        if spec.sdk in sdk_files.SDK_PACKAGES:
            self._ensure_sdk_image(spec.sdk, spec.sdk_version, log=log, should_continue=should_continue)
            ctx = sdk_files.space_image_context(snapshot=spec.snapshot, sdk=spec.sdk,
                                                version=spec.sdk_version, app_file=spec.app_file,
                                                app_port=spec.app_port, ca_bundle=self._ca_bytes())
            log(f"--> building {spec.image}\n")
            image_id = self._stream_build(log=log, should_continue=should_continue, fileobj=ctx.fileobj,
                                          custom_context=True, tag=spec.image, labels=labels,
                                          nocache=spec.no_cache)
            self._publish(spec.image, sdk_files.sdk_image_name(spec.sdk, spec.sdk_version), self.base_image)
            return image_id
        if spec.sdk == "docker":
            dockerfile = spec.snapshot / "Dockerfile"
            if not dockerfile.is_file():
                raise BuildError("sdk: docker needs a Dockerfile at the root of the repo")
            # Only images the operator allows, pinned to their ids (runner/dockerfile_policy.py).
            with dockerfile.open("rb") as fh:  # bounded: it may be a link to a large file
                raw = fh.read(dockerfile_policy.MAX_DOCKERFILE_BYTES + 1)
            checked = dockerfile_policy.check_dockerfile(raw, self.image_policy, self._inspect_allowed_image)
            log(f"--> building {spec.image} from the repo's Dockerfile\n")
            with tempfile.TemporaryDirectory(prefix="demohub-dockerfile-") as tmp:
                # Outside the context: docker-py adds it to the context under a name of its own.
                pinned = Path(tmp) / "Dockerfile"
                pinned.write_text(checked.text, encoding="utf-8")
                image_id = self._stream_build(log=log, should_continue=should_continue,
                                              path=str(spec.snapshot), dockerfile=str(pinned),
                                              tag=spec.image, labels=labels, nocache=spec.no_cache,
                                              pull=False)
            self._publish(spec.image, self.base_image)
            return image_id
        raise BuildError(f"sdk {spec.sdk!r} is not built into an image")

    def _publish(self, image: str, *under: str) -> None:
        """Push what a build made to the registry, then the SDK and base images under it (when
        this engine has them), so a fresh node needs neither internet nor debootstrap. Each
        push skips the layers the registry has; a failure to push those is only logged."""
        self._call(registry.push, self.client, self.registry, image)
        for name in under if self.registry else ():
            try:
                self._call(registry.push, self.client, self.registry, name)
            except BackendUnavailable as exc:
                log.warning("not pushed to the registry: %s", exc)

    def remove_image(self, image: str) -> bool:
        # noprune: the untagged parent layers may be shared with other spaces' images, and a
        # build running now may be reusing one from the cache; deleting it under that build
        # fails it with "unknown parent image ID". Unused parents go later, by prune_layers,
        # at a time no build runs (spaces/lifecycle/housekeeping.py).
        try:
            self._call(self.client.images.remove, image, noprune=True)
            return True
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            return False  # gone already, or still used by a container (409)

    def list_images(self) -> list[ImageInfo]:
        found = self._call(self.client.images.list, filters={"label": f"demohub.instance={self.instance}"})
        return [ImageInfo(id=image.id, tags=tuple(image.tags), labels=dict(image.labels or {}),
                          parent=image.attrs.get("Parent") or "", created_at=parse_ts(image.attrs.get("Created", "")))
                for image in found]

    def prune_layers(self, image_ids: list[str]) -> list[str]:
        removed: list[str] = []
        pending = [i for i in image_ids if i]
        while pending:
            image_id = pending.pop()
            try:
                image = self._call(self.client.images.get, image_id)
            except docker.errors.ImageNotFound:
                continue
            if image.tags:
                continue  # a named image: a base, an SDK image, a revision
            parent = image.attrs.get("Parent") or ""
            try:
                # The engine refuses (409) a layer with a child image or a container on it:
                # shared layers stay.
                self._call(self.client.images.remove, image_id, noprune=True)
            except docker.errors.APIError:
                continue
            removed.append(image_id)
            if parent:
                pending.append(parent)
        return removed

    # -- containers -----------------------------------------------------------------------
    def start(self, spec: RunSpec) -> None:
        self.require_isolation()
        self.ensure_ready()
        self.stop(spec.name, timeout=2)
        api = self.client.api
        host_config = api.create_host_config(**docker_run.host_config_args(spec, self.network, self.publish_address))
        networking = api.create_networking_config(
            {self.network: api.create_endpoint_config(ipv4_address=spec.address)})
        try:
            self._call(registry.ensure_local, self.client, self.registry, spec.image)  # built elsewhere
            created = self._call(api.create_container, spec.image, name=spec.name, user="1000:1000",
                                 environment=spec.env, labels=self._labels(spec.labels),
                                 host_config=host_config, networking_config=networking,
                                 detach=True, ports=[spec.port] if self.publish_address else None)
            self._call(api.start, created["Id"])
        except docker.errors.ImageNotFound as exc:
            raise BuildError(f"image {spec.image} is gone; rebuild the space") from exc
        except docker.errors.APIError as exc:
            raise BackendUnavailable(f"cannot start {spec.name}: {exc.explanation}") from exc

    def stop(self, name: str, *, timeout: int = 10) -> None:
        try:
            container = self._call(self.client.containers.get, name)
        except docker.errors.NotFound:
            return
        try:
            if container.status == "paused":
                container.unpause()
            if timeout > 0 and container.status in ("running", "paused"):
                container.stop(timeout=timeout)
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code not in (404, 409):
                raise BackendUnavailable(f"cannot stop {name}: {exc.explanation}") from exc

    def freeze(self, name: str) -> bool:
        try:
            container = self._call(self.client.containers.get, name)
            if container.status == "paused":
                return True
            if container.status != "running":
                return False
            self._call(container.pause)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code in (404, 409):
                return False
            raise BackendUnavailable(f"cannot freeze {name}: {exc.explanation}") from exc

    def unfreeze(self, name: str) -> bool:
        try:
            container = self._call(self.client.containers.get, name)
            if container.status == "paused":
                self._call(container.unpause)
                return True
            return container.status == "running"
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code in (404, 409):
                return False
            raise BackendUnavailable(f"cannot unfreeze {name}: {exc.explanation}") from exc

    def memory_usage(self, name: str) -> int | None:
        try:
            # one_shot: the engine answers at once instead of sampling for a second.
            stats = self._call(self.client.api.stats, name, stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise BackendUnavailable(f"cannot read the memory of {name}: {exc.explanation}") from exc
        except ValueError as exc:   # a half answer while the engine restarts (JSON cut short)
            raise BackendUnavailable(f"cannot read the memory of {name}: {exc}") from exc
        mem = stats.get("memory_stats") or {}
        usage = mem.get("usage")
        if usage is None:
            return 0
        # As `docker stats` shows it: without the page cache the kernel can drop at will.
        inactive = (mem.get("stats") or {}).get("inactive_file", 0)
        return max(int(usage) - int(inactive), 0)

    @staticmethod
    def _state_of(container) -> ContainerState:
        st = container.attrs.get("State", {})
        return ContainerState(
            name=container.name,
            running=bool(st.get("Running")),
            paused=bool(st.get("Paused")),
            exit_code=None if st.get("Running") else st.get("ExitCode"),
            oom_killed=bool(st.get("OOMKilled")),
            labels=container.labels or {},
            error=st.get("Error") or "",
            id=container.id or "",
            created_at=parse_ts(container.attrs.get("Created") or ""),
            finished_at=epoch_or_none(parse_ts(st.get("FinishedAt") or "")),  # year 1: never stopped
        )

    def state(self, name: str) -> ContainerState | None:
        try:
            return self._state_of(self._call(self.client.containers.get, name))
        except docker.errors.NotFound:
            return None

    def logs(self, name: str, *, since: float | None = None, tail: int | None = None) -> tuple[str, float]:
        try:
            container = self._call(self.client.containers.get, name)
        except docker.errors.NotFound:
            return "", since or 0.0
        kwargs = {"stdout": True, "stderr": True, "timestamps": True}
        if since:
            kwargs["since"] = since
        if tail:
            kwargs["tail"] = tail
        try:
            raw = self._call(container.logs, **kwargs).decode("utf-8", errors="replace")
        except docker.errors.APIError as exc:
            if exc.status_code in (404, 409):  # removed, or its removal is in progress
                return "", since or 0.0
            raise
        last = since or 0.0
        out = []
        for line in raw.splitlines(keepends=True):
            stamp, _, text = line.partition(" ")
            ts = parse_ts(stamp)
            # `since` is inclusive at one-second granularity: drop lines already copied.
            if since and ts is not None and ts <= since:
                continue
            if ts is not None:
                last = max(last, ts)
            out.append(text)
        return "".join(out), last

    def list_containers(self) -> list[ContainerState]:
        # ignore_removed: the list inspects each container, and one removed in between (a
        # restart replacing it) would fail the whole listing with 404.
        found = self._call(self.client.containers.list, all=True, ignore_removed=True,
                           filters={"label": f"demohub.instance={self.instance}"})
        return [self._state_of(c) for c in found]

    def remove_space(self, space: str) -> list[str]:
        filters = {"label": [f"demohub.instance={self.instance}", f"demohub.space={space}"]}
        for container in self._call(self.client.containers.list, all=True, filters=filters):
            self.stop(container.name, timeout=2)
        parents = []
        for image in self._call(self.client.images.list, filters=filters):
            for tag in image.tags or [image.id]:
                self.remove_image(tag)
            parents.append(image.attrs.get("Parent") or "")
        return [p for p in parents if p]

    def remove_container(self, container_id: str) -> bool:
        try:
            self._call(self.client.api.remove_container, container_id, force=False, v=True)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # running (started again meanwhile) or being removed
                return False
            raise BackendUnavailable(f"cannot remove container {container_id}: {exc.explanation}") from exc

    def cancel_builds(self) -> int:
        # A legacy build runs each RUN step in a container on the build's network (the builds
        # network, see _stream_build) whose labels are only its base image's: the build's own
        # labels are applied as its last step. Space containers always carry demohub.slot and
        # never join the builds network, so a running container there without it is a build
        # step. Removing it fails that step (exit 137) and the engine abandons the build.
        try:
            found = self._call(self.client.containers.list, ignore_removed=True,
                               filters={"network": self.builds_network})
        except docker.errors.NotFound:
            return 0
        removed = 0
        for container in found:
            if "demohub.slot" in (container.labels or {}):
                continue
            try:
                container.remove(force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass  # the engine removed it itself (forcerm)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: its removal is already in progress
                    raise BackendUnavailable(f"cannot remove build container {container.name}: "
                                             f"{exc.explanation}") from exc
        return removed

    # -- used by tests and reconciliation -------------------------------------------------
    def inspect_json(self, name: str) -> dict:
        return json.loads(json.dumps(self._call(self.client.api.inspect_container, name)))
