#!/usr/bin/env python3
"""Wake latency of both sleep tiers, and the memory a frozen and a stopped space hold.

* Brings up a real stack (tests/e2e/stack.py: freeze after 4 idle seconds, checks every
  second) and deploys a Gradio space (the warm SDK image), with `sleep_after` = 8 s.
* For --rounds rounds: waits until the hub froze the space (idle, as the proxy saw it), then
  times one API request through the proxy (GET /config, what gradio_client sends first) from
  sending it to the app's 200; then waits until the space is stopped and times the same.
  The request is held by the proxy while the space wakes, so the figure is what a client
  waits for its first answer.
* Memory: the container's memory (as `docker stats` counts it) while running, while frozen,
  and while stopped (no container: 0), and the hub processes' resident memory.

Usage:  .venv/bin/python bench/wake_latency.py [--rounds 3]
Targets: frozen <= 0.2 s, stopped Gradio <= 3 s (first request to first 200 from the app).
Exits 0 whatever the figures; 1 if the stack could not be used.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import AppClient, deploy_space, log, machine, make_archive, run_on_stack, sigterm_raises  # noqa: E402

TARGET_FROZEN_S = 0.2
TARGET_STOPPED_S = 3.0

APP = '''
import gradio as gr

demo = gr.Interface(fn=lambda t: t[::-1], inputs="text", outputs="text", api_name="reverse")
demo.launch()
'''


def wait_mode(stack, token, owner, mode: str, timeout: float = 60) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = stack.space(token, owner, "wake")
        if s["status"] == "SLEEPING" and s["sleep_mode"] == mode:
            return time.monotonic() - t0   # SLEEPING is written once the container is frozen or stopped
        time.sleep(0.2)
    raise TimeoutError(f"the space was not {mode} after {timeout} s")


def container_memory(stack, owner: str) -> int | None:
    import docker

    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": [f"demohub.instance={stack.instance}",
                                                                f"demohub.space={owner}/wake"]})
    if not found:
        return 0
    try:
        stats = client.api.stats(found[0].id, stream=False, one_shot=True)
    except docker.errors.NotFound:
        return 0   # removed meanwhile (stopped)
    mem = stats.get("memory_stats") or {}
    return max(int(mem.get("usage", 0)) - int((mem.get("stats") or {}).get("inactive_file", 0)), 0)


def hub_rss(stack) -> dict[str, int]:
    out = {}
    for name, proc in stack.procs.items():
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[name] = int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return out


def timed_first_answer(app: AppClient) -> tuple[float, int]:
    t0 = time.monotonic()
    r = app.session.get(app.base + "/config", headers={"Host": app.host, "Accept": "application/json"},
                        timeout=60, allow_redirects=False)
    return time.monotonic() - t0, r.status_code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    args.rounds = max(1, min(args.rounds, 10))
    sigterm_raises()
    info = machine()
    log(f"wake_latency: {info['date_utc']}, {info['cores']} cores, load {info.get('loadavg_at_start')}")
    payload: dict = {"bench": "wake_latency", "machine": info,
                     "targets_s": {"frozen": TARGET_FROZEN_S, "stopped": TARGET_STOPPED_S}}

    def body(stack) -> None:
        owner, token, space = deploy_space(stack, "wake", "gradio", make_archive({
            "README.md": "---\ntitle: Wake\nsdk: gradio\napp_file: app.py\n---\n", "app.py": APP}))
        app = AppClient(stack, space["url"])
        memory = {"running": container_memory(stack, owner)}
        rss_before = hub_rss(stack)
        r = stack.api(token).patch(f"{stack.hub_url}/api/spaces/{owner}/wake", json={"sleep_after": 8})
        if r.status_code != 200:
            raise RuntimeError(f"PATCH sleep_after answered {r.status_code}: {r.text[:200]}")
        times: dict[str, list[float]] = {"frozen": [], "stopped": []}
        for rnd in range(args.rounds):
            for mode in ("frozen", "stopped"):
                wait_mode(stack, token, owner, mode)
                if rnd == 0:
                    memory[mode] = container_memory(stack, owner)
                took, code = timed_first_answer(app)
                if code != 200:
                    raise RuntimeError(f"the first request to the {mode} space answered {code}")
                times[mode].append(round(took, 3))
                log(f"  round {rnd + 1} {mode:<8} first answer after {took:.3f} s")
        med = {k: statistics.median(v) for k, v in times.items()}
        payload.update({
            "wake_s": times, "median_s": med,
            "met": {"frozen": med["frozen"] <= TARGET_FROZEN_S, "stopped": med["stopped"] <= TARGET_STOPPED_S},
            "container_memory_bytes": memory,
            "hub_rss_bytes": rss_before,
        })
        mib = {k: round(v / 2**20, 1) if v is not None else None for k, v in memory.items()}
        log(f"median wake: frozen {med['frozen']:.3f} s (target {TARGET_FROZEN_S}), stopped {med['stopped']:.3f} s "
            f"(target {TARGET_STOPPED_S}); memory MiB running {mib['running']}, frozen {mib.get('frozen')}, "
            f"stopped {mib.get('stopped')}")

    return run_on_stack(payload, body)


if __name__ == "__main__":
    sys.exit(main())
