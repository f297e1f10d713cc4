"""Starting a built revision: its container, the health wait, and the blue/green switch.

Under the space's start claim (claims.py), so one start of a space runs at a time.
"""
from __future__ import annotations

import http.client
import logging
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from runner.backends import RunSpec
from runner.exceptions import NotIsolated
from spaces.lifecycle import claims, redeploy, variables
from spaces.lifecycle.engine import get_backend
from spaces.lifecycle.node_routes import slot_port, slot_upstream
from spaces.lifecycle.routes import container_name, other_slot, proxy_config, space_publish_route, switch_static_site
from spaces.lifecycle.run_logs import exit_message, exit_reason, run_log_copy, run_log_follow
from spaces.nodes import placement
from spaces.nodes.selectors import local_node_name
from spaces.nodes.tiers import held_tier
from spaces.records import jobs
from spaces.records.models import Revision, Sdk, Space
from spaces.records.services import space_transition
from spaces.records.status import SERVING, SpaceStatus

log = logging.getLogger(__name__)
User = get_user_model()
S = SpaceStatus
R = Revision.Status


def run_env(space: Space, rev: Revision | None, *, metadata: dict | None = None, host: str = "") -> dict[str, str]:
    """The app's environment: the runner's names and the space's variables and secrets. A
    branch preview passes its own `metadata` (README of its commit) and `host`."""
    meta = rev.metadata if metadata is None else metadata
    host = host or space.host
    port = str(meta.get("app_port") or 7860)
    runner_env = {
        "HOME": "/tmp/home",
        "PYTHONUNBUFFERED": "1",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": port,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SSR_MODE": "False",
        "GRADIO_TEMP_DIR": "/tmp/gradio",
        "STREAMLIT_SERVER_HEADLESS": "true",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        # Inside the hub page's cross-site iframe the XSRF cookie is dropped (as on HF).
        "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false",
        "STREAMLIT_SERVER_ENABLE_CORS": "false",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "HF_HOME": "/tmp/.cache/huggingface",
        "PORT": port,
        # Demohub's own names; never SYSTEM=spaces (it switches on HF-only behaviour).
        "DEMOHUB_SPACE_ID": space.full_name,
        "DEMOHUB_SPACE_HOST": host,
        "SPACE_ID": space.full_name,
        "SPACE_HOST": host,
        "SPACE_AUTHOR_NAME": space.owner.username,
        "SPACE_REPO_NAME": space.name,
        "SPACE_TITLE": space.title,
    }
    # The space's variables and secrets, at run time only (never build args); the runner's own
    # names win, though variables.py refuses them on input already.
    return {**variables.space_env_variables(space), **runner_env}


def revision_start(*, revision_id: int, restart: bool = False, move: bool = False, forwarded: bool = False) -> None:
    """Start a built revision (below), holding the space's start claim (spaces/lifecycle/reconcile.py):
    one start per space at a time, and a start whose worker died is sent again. Raises
    StartBusy while another start of the space runs (a duplicate delivery, say)."""

    space_id = Revision.objects.filter(pk=revision_id).values_list("space_id", flat=True).first()
    if space_id is None:
        return
    with claims.start_claim(space_id) as claim:
        if claim is None:
            raise claims.StartBusy(f"another start of space {space_id} is running")
        elsewhere = _revision_start(revision_id=revision_id, restart=restart, move=move, forwarded=forwarded)
    if elsewhere:  # placed on another node: its worker starts it (once this claim is released)
        jobs.send("spaces.tasks.start_revision_task", revision_id,
                  kwargs={"restart": restart, "move": move, "forwarded": True}, queue=elsewhere)


def _placed(space: Space, rev: Revision, *, serving: bool, restart: bool, move: bool,
            forwarded: bool) -> placement.Decision | None:
    """Place the space (spaces/nodes/placement.py). None when it waits for hardware (APP_STARTING,
    or its serving status, with the reason in `error`) or a start handed on reached the wrong node;
    a decision that is not `here` names the node whose starts queue the start goes to."""
    if space.sdk == Sdk.STATIC:  # served by the proxy from the hub's disk: no node, no tier
        return placement.Decision(node=None, tier=held_tier(space))
    decision = placement.space_place(space.pk)
    space.tier, space.node = decision.tier.name, decision.node
    if decision.waiting:
        if serving or space.status == S.SLEEPING:
            space_transition(space, space.status, error=f"revision {rev.number} is {decision.waiting}")
        else:
            space_transition(space, S.APP_STARTING, error=decision.waiting, node=None)
        return None
    if not decision.here:
        if forwarded:  # handed on once already: this worker is not the node it names (NODE_NAME)
            log.error("the start of revision %s for node %s reached node %r; check NODE_NAME and the worker's "
                      "queues (the lost-start sweep sends it again)", rev.pk, decision.node.name, local_node_name())
            return None
    return decision


def _revision_start(*, revision_id: int, restart: bool = False, move: bool = False,
                    forwarded: bool = False) -> str | None:
    """Start a built revision on the free slot, wait for health, then switch the route.

    The serving (or sleeping) revision, if any, stays until the new one answers; if the new
    one fails, the old one stays and the space's error says why. Only the latest revision is
    started, or with `restart` (space_restart) the running one.
    """
    rev = Revision.objects.select_related("space__owner", "space__running_revision").get(pk=revision_id)
    space = rev.space
    wanted = rev.pk == space.latest_revision_id or (restart and rev.pk == space.running_revision_id)
    if rev.status != R.SUCCEEDED or not wanted or space.status in (S.DELETING, S.PAUSED):
        log.info("revision %s is not the one to start (space %s is %s)", rev.pk, space.pk, space.status)
        return
    serving = space.status in SERVING and space.running_revision_id is not None
    asleep = space.status == S.SLEEPING and space.running_revision_id is not None
    if space.running_revision_id == rev.pk and space.status in (S.RUNNING, S.SLEEPING) and not move:
        return  # duplicate delivery: already serving (or asleep on) this revision
    if rev.error and not restart:
        return  # duplicate delivery: it failed to start; only the owner's restart tries again
    decision = _placed(space, rev, serving=serving, restart=restart, move=move, forwarded=forwarded)
    if decision is None:
        return None
    if not decision.here:
        return decision.node.starts_queue
    placed = {"error": ""} if placement.WAITING in space.error else {}  # it waited for hardware: no more
    if not space_transition(space, S.RUNNING_APP_STARTING if serving else S.APP_STARTING, **placed):
        log.info("space %s moved on (%s); not starting revision %s", space.pk, space.status, rev.pk)
        return
    if space.sdk == Sdk.STATIC:
        switch_static_site(space, rev)
        space_publish_route(space_id=space.pk, running_revision=rev)
        space_transition(space, S.RUNNING, error="", running_revision=rev, sleep_mode="",
                         last_active_at=timezone.now())
        return
    slot = other_slot(space.active_slot) if serving or asleep else space.active_slot
    # The slot's container runs on the node placed on (the proxy routes each slot to its node).
    ran_on = {space.node_a_id, space.node_b_id} - {None, decision.node.pk if decision.node else None}
    Space.objects.filter(pk=space.pk).update(**{f"node_{slot}": decision.node})
    setattr(space, f"node_{slot}", decision.node)
    ok, message = start_container(space, rev, slot)
    if not ok:
        # On the revision too: housekeeping keeps the previous revision that did run, for rollback.
        Revision.objects.filter(pk=rev.pk).update(error=f"failed to start: {message}"[:4000])
        if serving or asleep:
            space_transition(space, S.RUNNING if serving else S.SLEEPING,
                             error=f"revision {rev.number} failed to start: {message}")
        else:
            space_transition(space, S.RUNTIME_ERROR, error=message)
        return
    old_slot = space.active_slot
    old_port = int((space.running_revision.metadata if space.running_revision else {}).get("app_port") or 7860)
    # From the switch on, the old container is in no slot the row names: reconcile must leave it.
    retiring = container_name(space, old_slot) if serving and old_slot != slot else ""
    redeploy.draining_begin(retiring)
    healthy_at = time.monotonic()
    # Switch the route first and wait for the proxy to load it: RUNNING means reachable.
    space_publish_route(space_id=space.pk, running_revision=rev, active_slot=slot, sleep_mode="")
    log.info("revision %s of %s: route switched to slot %s, applied %.3f s after its health check passed",
             rev.number, space.full_name, slot, time.monotonic() - healthy_at)
    if not space_transition(space, S.RUNNING, error="", running_revision=rev, active_slot=slot, sleep_mode="",
                            last_active_at=timezone.now()):
        get_backend().stop(container_name(space, slot))  # the space moved on (deleted, paused)
        redeploy.draining_end(retiring)
        return
    if (serving or asleep) and old_slot != slot:
        if serving:
            # Requests the proxy sent the old container before the switch finish there first.
            address, _, port = slot_upstream(space, old_slot, old_port).rpartition(":")
            redeploy.old_slot_drain(address=address, port=int(port), config=proxy_config(), what=retiring)
        get_backend().stop(container_name(space, old_slot), timeout=10)
    for queue in placement.release_queues(ran_on):  # the nodes it left stop what they still run of it
        jobs.send("spaces.tasks.node_release_task", space.pk, queue=queue)
    redeploy.draining_end(retiring)


def _run_spec(space: Space, rev: Revision, slot: str) -> RunSpec:
    return run_spec(space, name=container_name(space, slot), image=rev.image, address=space.slot_address(slot),
                    metadata=rev.metadata, env=run_env(space, rev),
                    labels={"demohub.revision": str(rev.number), "demohub.slot": slot, "demohub.label": space.label},
                    publish_port=slot_port(space, slot))


def run_spec(space: Space, *, name: str, image: str, address: str, metadata: dict, env: dict[str, str],
             labels: dict[str, str], publish_port: int = 0) -> RunSpec:
    """One container of `space` (a slot of a revision, or a branch preview) with the limits of
    the hardware tier it was placed with. `publish_port` is used on a node of several only
    (node_routes.py)."""
    tier = held_tier(space)
    return RunSpec(
        name=name, image=image, address=address, port=int(metadata.get("app_port") or 7860), env=env,
        labels={"demohub.space": space.full_name, **labels},
        # Gradio and Streamlit write only to /tmp; a Dockerfile app may expect a writable root.
        read_only_root=space.sdk != Sdk.DOCKER,
        memory=space_memory(space), cpus=tier.cpus, gpus=tier.gpus,
        pids=settings.SPACE_PIDS_LIMIT, tmpfs_size=settings.SPACE_TMPFS_SIZE,
        publish_port=publish_port)


def space_memory(space: Space) -> str:
    """The container's memory limit: the row's own (an operator's), else its tier's."""
    return space.memory_limit or held_tier(space).memory


def start_container(space: Space, rev: Revision, slot: str, *, still_wanted=None,
                     fresh_log: bool = True) -> tuple[bool, str]:
    """Run the container and wait until GET / answers below 500. Returns (healthy, why not).

    `still_wanted()` (default: the space is still starting this revision) is asked while
    waiting; `fresh_log=False` keeps the run log going (a crash restart appends to it, so the
    crash's output stays readable above the new run's).
    """
    spec = _run_spec(space, rev, slot)
    run_log_follow(space_id=space.pk, container=spec.name, reset=fresh_log)
    return run_until_healthy(
        spec, metadata=rev.metadata, still_wanted=still_wanted or (lambda: space_still_starting(space.pk, rev.pk)),
        on_tick=lambda: run_log_copy(space_id=space.pk),
        exit_why=lambda state: exit_message(state, space.pk, memory=spec.memory))


def run_until_healthy(spec: RunSpec, *, metadata: dict, still_wanted, on_tick=lambda: None,
                      exit_why=None) -> tuple[bool, str]:
    """Start `spec` and wait until GET / answers below 500 (within the README's startup
    timeout, capped). Returns (healthy, why not). `on_tick` runs after each look (the run
    log's copy); `exit_why(state)` words an exit (default: its reason alone)."""
    backend = get_backend()
    try:
        backend.start(spec)
    except NotIsolated as exc:  # the host firewall is missing: the error says what to do
        return False, str(exc)
    # Capped here too: a revision parsed before the operator lowered the cap keeps its metadata.
    timeout = min(metadata.get("startup_duration_timeout") or settings.SPACE_STARTUP_TIMEOUT,
                  settings.SPACE_STARTUP_TIMEOUT_MAX)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.state(spec.name)
        if state is None or not state.running:
            on_tick()
            return False, exit_why(state) if exit_why else exit_reason(state, memory=spec.memory)
        if probe(*probe_target(spec)) is not None:
            on_tick()
            return True, ""
        on_tick()
        if not still_wanted():
            backend.stop(spec.name, timeout=2)
            return False, "superseded while starting"
        # Short: a visitor may be waiting on this start (waking, spaces/lifecycle/sleep.py); a probe is
        # one local HTTP request.
        time.sleep(0.1)
    backend.stop(spec.name, timeout=2)
    return False, f"the app did not answer on port {spec.port} within {timeout} s (startup timeout)"


def space_still_starting(space_id: int, rev_id: int) -> bool:
    # A restart starts the running revision, which need not be the latest.
    return Space.objects.filter(Q(latest_revision_id=rev_id) | Q(running_revision_id=rev_id), pk=space_id,
                                status__in=[S.APP_STARTING, S.RUNNING_APP_STARTING]).exists()


def probe_target(spec: RunSpec) -> tuple[str, int]:
    """Where this worker reaches the container: its bridge address, or on a node of several
    the node's published port (the worker may not share the node's network: tests/e2e/nodes.py)."""
    if settings.RUNNER_PUBLISH_ADDRESS and spec.publish_port:
        return settings.RUNNER_PUBLISH_ADDRESS, spec.publish_port
    return spec.address, spec.port


def probe(address: str, port: int) -> int | None:
    """HTTP status of `GET /` on the app's own address if below 500, else None (refused,
    timed out, 5xx, not HTTP).

    http.client, not urllib: one request to exactly this address and port. urllib's default
    opener follows redirects and honours *_proxy variables, so an app answering 302 to
    http://127.0.0.1:<port>/ or a link-local address would make this worker, on the host
    network, request it (README "Security": health probes). A 3xx answer means the app is up.
    """
    conn = http.client.HTTPConnection(address, port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": f"{address}:{port}", "User-Agent": "demohub-health/1"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    return status if status < 500 else None
