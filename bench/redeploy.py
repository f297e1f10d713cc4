#!/usr/bin/env python3
"""Redeploys under load: failed requests and switch times, and memory per running space, on a
real stack (tests/e2e/stack.py: uvicorn, Celery workers, beat, nginx, the real Docker engine).

* A docker-SDK space FROM demohub/base:bookworm whose tiny Python app names its revision in
  every answer (tests/e2e/load.py). Steady load through the proxy for the whole run:
  --getters keep-alive GET threads and --posters keep-alive POST threads (64 KiB body), all
  on 127.0.0.1:<proxy port> with the space's Host header. Any exception, non-200 or answer
  not from the app (the hub's fallback page) is a failed request.            target: 0
* --redeploys N times (default 3): upload the next revision and measure
    switch       upload POST -> first answer from the new revision through the proxy
    route        health check passed -> the proxy applied the route switch (from the
                 starts worker's log line "route switched ... applied X s after")
    drain        the old container's drain after the switch (from "drain ...: done after")
* Memory: what one running space of this kind holds (the engine's figure, as `docker
  stats` shows it: usage minus inactive page cache), and what the hub's processes (web,
  workers, beat, proxy, with their children; proportional set size, so shared pages count
  once) hold more per running space: measured before and after starting --spaces more.

Usage:  .venv/bin/python bench/redeploy.py [--redeploys 3] [--spaces 4] [--getters 3] [--posters 1]
Prints one line per figure, then one JSON line. Exits 0 whatever the figures are (a
measurement); 1 only if the stack could not be used at all.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import final_json, log, machine, safe_down, sigterm_raises, start_stack  # noqa: E402
from tests.e2e.load import Load, revision_app  # noqa: E402

TARGET_FAILED = 0
MIB = 2**20


# --------------------------------------------------------------------------- memory
def _pss(pid: int) -> int:
    """Proportional set size of one process in bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (Celery's pool processes, nginx's master and workers)."""
    found, pending = [], [pid]
    while pending:
        p = pending.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                pending += [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                pass
    return found


def hub_memory(stack) -> dict[str, int]:
    """PSS of each hub process tree of the stack, bytes."""
    return {name: sum(_pss(p) for p in _tree(proc.pid)) for name, proc in stack.procs.items() if proc.poll() is None}


def container_memory(stack, owner: str, name: str) -> int | None:
    import docker

    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"demohub.instance={stack.instance}",
                                                      f"demohub.space={owner}/{name}"]})
    if not found:
        return None
    stats = client.api.stats(found[0].id, stream=False, one_shot=True)
    mem = stats.get("memory_stats") or {}
    return max(int(mem.get("usage", 0)) - int((mem.get("stats") or {}).get("inactive_file", 0)), 0)


# --------------------------------------------------------------------------- the hub's own figures
def log_figures(stack, pattern: str, since_line: int) -> tuple[list[float], int]:
    """Seconds from the starts worker's log lines matching `pattern` (one group), after line
    `since_line`; and the number of lines now."""
    path = stack.log_dir / "worker-starts.log"  # starts run there (spaces/records/jobs.py)
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    values = [float(m.group(1)) for line in lines[since_line:] if (m := re.search(pattern, line))]
    return values, len(lines)


def wait_old_container_gone(stack, owner: str, name: str, timeout: float = 90) -> None:
    import docker

    client = docker.from_env()
    deadline = time.monotonic() + timeout
    flt = {"label": [f"demohub.instance={stack.instance}", f"demohub.space={owner}/{name}"], "status": "running"}
    while time.monotonic() < deadline:
        if len(client.containers.list(filters=flt)) <= 1:
            return
        time.sleep(0.2)
    raise TimeoutError("the old container was not stopped after its drain")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redeploys", type=int, default=3, help="redeploys under load (max 20)")
    ap.add_argument("--spaces", type=int, default=4, help="more running spaces for the memory figure (max 20)")
    ap.add_argument("--getters", type=int, default=3, help="keep-alive GET threads")
    ap.add_argument("--posters", type=int, default=1, help="keep-alive POST threads")
    args = ap.parse_args()
    args.redeploys = max(1, min(args.redeploys, 20))
    args.spaces = max(0, min(args.spaces, 20))
    sigterm_raises()

    info = machine()
    log(f"redeploy: {info['date_utc']}, {info['cores']} cores, load {info.get('loadavg_at_start')}")
    payload: dict = {"bench": "redeploy", "machine": info, "target_failed_requests": TARGET_FAILED,
                     "load": {"getters": args.getters, "posters": args.posters}}
    stack = start_stack()
    status = 0
    load = None
    try:
        stack.up()
        owner, token = stack.new_user(f"bench{uuid.uuid4().hex[:6]}")
        name = "redeploy"
        space = stack.deploy(token, owner, name, "docker", revision_app("v1"))
        log(f"space {owner}/{name} running revision 1 at {space['url']}")

        load = Load(stack.proxy_port, space["url"], getters=args.getters, posters=args.posters).start()
        load.wait_for("v1", timeout=30)
        time.sleep(2)  # steady load before the first redeploy
        _, mark = log_figures(stack, r"(?!)", 0)  # only the line count: what came before is not ours
        runs = []
        for i in range(2, args.redeploys + 2):
            rev = f"v{i}"
            uploaded = time.monotonic()
            r = stack.upload(token, owner, name, revision_app(rev))
            assert r.status_code == 202, r.text
            switched = load.wait_for(rev, after=uploaded, timeout=300) - uploaded
            stack.wait_status(token, owner, name, "RUNNING", revision=r.json()["number"], timeout=300)
            wait_old_container_gone(stack, owner, name)
            routes, _ = log_figures(stack, r"applied ([0-9.]+) s after its health check passed", mark)
            drains, mark = log_figures(stack, r"drain .*: done after ([0-9.]+) s", mark)
            run = {"revision": rev, "switch_s": round(switched, 3),
                   "route_switch_s": routes[-1] if routes else None, "drain_s": drains[-1] if drains else None,
                   "failed_so_far": len(load.failures())}
            runs.append(run)
            log(f"redeploy to {rev}: first answer {switched:.2f} s after the upload; route applied "
                f"{run['route_switch_s']} s after the health check; old container drained in {run['drain_s']} s")
            time.sleep(1)
        time.sleep(1)
        load.stop()
        failures = load.failures()
        payload["redeploys"] = runs
        payload["requests"] = len(load.snapshot())
        payload["failed_requests"] = len(failures)
        payload["failures"] = [f"{a.kind}: {a.failure}" for a in failures[:10]]
        payload["switch_s_median"] = round(statistics.median(r["switch_s"] for r in runs), 3)
        routes = [r["route_switch_s"] for r in runs if r["route_switch_s"] is not None]
        payload["route_switch_s_median"] = round(statistics.median(routes), 3) if routes else None
        drains = [r["drain_s"] for r in runs if r["drain_s"] is not None]
        payload["drain_s_median"] = round(statistics.median(drains), 2) if drains else None
        log(f"failed requests: {len(failures)} of {payload['requests']} (target {TARGET_FAILED}): "
            f"{'MET' if not failures else 'MISSED'} {payload['failures'][:3]}")

        # -- memory
        one = container_memory(stack, owner, name)
        payload["space_container_mib"] = round(one / MIB, 1) if one is not None else None
        before = hub_memory(stack)
        names = [f"mem{i}" for i in range(args.spaces)]
        for extra in names:
            stack.create_space(token, extra, "docker")
            assert stack.upload(token, owner, extra, revision_app(extra)).status_code == 202
        for extra in names:
            stack.wait_status(token, owner, extra, "RUNNING", timeout=300)
        time.sleep(3)  # let beat and the workers go round once with them running
        after = hub_memory(stack)
        containers = [m for m in (container_memory(stack, owner, n) for n in names) if m is not None]
        if args.spaces:
            delta = sum(after.values()) - sum(before.values())
            payload["hub_pss_mib"] = {"before": round(sum(before.values()) / MIB, 1),
                                      "after": round(sum(after.values()) / MIB, 1),
                                      "per_process_after": {k: round(v / MIB, 1) for k, v in after.items()}}
            payload["hub_mib_per_running_space"] = round(delta / args.spaces / MIB, 2)
            if containers:
                payload["space_containers_mib_median"] = round(statistics.median(containers) / MIB, 1)
        log(f"one running space (this app): {payload['space_container_mib']} MiB in its container; "
            f"hub processes: {payload.get('hub_pss_mib', {}).get('before')} -> "
            f"{payload.get('hub_pss_mib', {}).get('after')} MiB PSS with {args.spaces} more running "
            f"= {payload.get('hub_mib_per_running_space')} MiB per running space")
    except KeyboardInterrupt as exc:
        log(f"interrupted: {exc}")
        payload["error"] = f"interrupted: {exc}"
        status = 1
    except Exception as exc:  # noqa: BLE001 - report what was measured so far
        traceback.print_exc()
        payload["error"] = f"{type(exc).__name__}: {exc}"
        status = 0 if payload.get("redeploys") else 1
    finally:
        if load is not None:
            load.stop()
        safe_down(stack)
    log("")
    log("summary:")
    log(f"  failed requests during {len(payload.get('redeploys', []))} redeploys under load: "
        f"{payload.get('failed_requests')} of {payload.get('requests')} (target 0)")
    log(f"  upload -> first answer of the new revision: median {payload.get('switch_s_median')} s")
    log(f"  health check passed -> route applied: median {payload.get('route_switch_s_median')} s; "
        f"old container drained in {payload.get('drain_s_median')} s")
    log(f"  one running space's container: {payload.get('space_container_mib')} MiB; hub per running space: "
        f"{payload.get('hub_mib_per_running_space')} MiB")
    final_json(payload)
    return status


if __name__ == "__main__":
    sys.exit(main())
