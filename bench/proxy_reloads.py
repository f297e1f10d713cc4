#!/usr/bin/env python3
"""Proxy reloads per minute and failed requests while many spaces churn (issue 9, item 1).

* Brings up a real stack (tests/e2e/stack.py) and deploys one "loaded" space and --spaces
  (default 100) minimal `sdk: docker` spaces (python3's http.server; tests/e2e/churn.py),
  the churning ones with sleep_after = 5 s (the stack freezes after 4 idle seconds).
* While eight keep-alive clients read the loaded space through the proxy, for --rounds rounds:
  every churning space falls asleep (idle), is made private, woken by a request with the
  owner's token, made public again and read anonymously.
* Prints the loaded space's requests (ok, failed), the proxy's reloads during the churn
  (deploy/proxy/run.sh counts them in <data>/proxy/reloads) and per minute, and the same for
  the creation phase (batched: at most one reload a second however many routes are added).

Usage:  .venv/bin/python bench/proxy_reloads.py [--spaces 100] [--rounds 2]
Target: 0 failed requests and 0 reloads during the churn.
Exits 0 whatever the figures; 1 if the stack could not be used.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import log, machine, run_on_stack, sigterm_raises  # noqa: E402
from tests.e2e.churn import KeepAliveLoad, churn, deploy_many, proxy_counters  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spaces", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sigterm_raises()
    payload: dict = {"bench": "proxy_reloads", "machine": machine(), "spaces": args.spaces, "rounds": args.rounds}

    def body(stack):
        # The churning spaces sleep within seconds: freeze after 4 s idle, stop after 5.
        owner, token = stack.new_user()
        started = time.monotonic()
        r0, _ = proxy_counters(stack)
        loaded = deploy_many(stack, token, owner, ["loaded"])["loaded"]
        names = [f"c{i:03d}" for i in range(args.spaces)]
        spaces = deploy_many(stack, token, owner, names, sleep_after=5, timeout=3600)
        created_s = time.monotonic() - started
        r1, g1 = proxy_counters(stack)
        log(f"{args.spaces + 1} spaces created in {created_s:.0f} s with {r1 - r0} reloads")
        t0 = time.monotonic()
        with KeepAliveLoad(loaded["url"], clients=8) as load:
            counts = churn(stack, token, owner, names, spaces, rounds=args.rounds, sleep_timeout=300, log=log)
        churn_s = time.monotonic() - t0
        r2, g2 = proxy_counters(stack)
        payload.update({
            "creation_seconds": round(created_s, 1),
            "creation_reloads": r1 - r0,
            "creation_reloads_per_minute": round((r1 - r0) / created_s * 60, 1),
            "churn_seconds": round(churn_s, 1),
            "churn_events": counts,
            "churn_reloads": r2 - r1,
            "churn_reloads_per_minute": round((r2 - r1) / churn_s * 60, 2),
            "churn_generation_bumps": g2 - g1,
            "loaded_requests_ok": load.ok,
            "loaded_requests_failed": len(load.failures),
            "failures_sample": load.failures[:5],
        })
        log(f"churn: {counts} in {churn_s:.0f} s; reloads {r2 - r1} ({payload['churn_reloads_per_minute']}/min); "
            f"loaded space {load.ok} ok, {len(load.failures)} failed")

    return run_on_stack(payload, body)


if __name__ == "__main__":
    sys.exit(main())
