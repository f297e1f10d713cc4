#!/usr/bin/env python3
"""How long a space made private stays open at the proxy while the lifecycle is busy
(issue 15, finding 2).

* Brings up a real stack (tests/e2e/stack.py) and sets the scene of tests/e2e/stalls.py: a
  public `sdk: docker` space (the victim), four spaces whose apps never answer (their starts
  wait up to startup_duration_timeout = 10m, filling the starts worker), and one space per
  round whose stop by the sleep check takes 10 s (it ignores SIGTERM).
* Each round: waits until a sleep check is stopping that round's sleeper, then PATCHes the
  victim private and times, from sending the PATCH, until an anonymous request to the app
  through the proxy is refused (401, the hub's answer); then makes it public again.

Before the fix, route publications waited in the lifecycle queue behind the stuck starts: the
app stayed open until a start gave up (here 10 minutes). Target: under 1 s.

Usage:  .venv/bin/python bench/visibility_latency.py [--rounds 3]
Exits 0 whatever the figures; 1 if the stack could not be used.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import log, machine, run_on_stack, sigterm_raises  # noqa: E402
from tests.e2e import stalls  # noqa: E402

TARGET_S = 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    args.rounds = max(1, min(args.rounds, 5))
    sigterm_raises()
    info = machine()
    log(f"visibility_latency: {info['date_utc']}, {info['cores']} cores, load {info.get('loadavg_at_start')}")
    payload: dict = {"bench": "visibility_latency", "machine": info, "target_s": TARGET_S}

    def body(stack) -> None:
        t0 = time.monotonic()
        scene = stalls.stalled_lifecycle(stack, sleepers=args.rounds)
        log(f"  scene ready after {time.monotonic() - t0:.0f} s: four starts stuck, the victim public")
        times = []
        try:
            for rnd, sleeper in enumerate(scene.sleepers):
                stalls.sleep_check_in_progress(scene, sleeper)
                took = stalls.time_to_private(scene, timeout=60)
                during = stalls.being_stopped(scene, sleeper)
                times.append(round(took, 3))
                log(f"  round {rnd + 1}: public -> private refused at the proxy after {took:.3f} s "
                    f"(sleep check {'still stopping' if during else 'done stopping'} {sleeper})")
                stalls.make_public(scene)
        finally:
            scene.cleanup()
        med = statistics.median(times)
        payload.update({"private_after_s": times, "median_s": med, "met": med < TARGET_S})
        log(f"median: {med:.3f} s to refuse anonymous requests after public -> private (target < {TARGET_S} s)")

    return run_on_stack(payload, body)


if __name__ == "__main__":
    sys.exit(main())
