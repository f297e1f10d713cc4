#!/usr/bin/env python3
"""Rollback to live: seconds from POST .../revisions/<n>/rollback to the first answer of the old
code through the proxy, when that revision's image is still kept (housekeeping keeps the
previous revision that ran), on a real stack (tests/e2e/stack.py).       target <= 2 s

A docker-SDK space FROM demohub/base:bookworm whose tiny app names its revision in every
answer (tests/e2e/load.py). Per round: revision A serves, revision B is uploaded and serves,
then "run revision A again" is posted and the clock runs until an answer says A. Only HTTP is
measured (the rollback POST and GETs to 127.0.0.1:<proxy port> with the space's Host header).

Usage:  .venv/bin/python bench/rollback_to_live.py [--rounds 3]
Prints one line per round, the median against the target, then one JSON line. Exits 0 whatever
the figures are (a measurement); 1 only if the stack could not be used at all.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import AppClient, deploy_space, log, machine, poll, run_on_stack, sigterm_raises  # noqa: E402
from tests.e2e.load import revision_app  # noqa: E402

TARGET = 2.0
NAME = "rollback"


def answers_as(app: AppClient, rev: str):
    def check():
        try:
            r = app.get("/", timeout=2)
        except Exception:  # noqa: BLE001 - switching
            return False
        return r.status_code == 200 and r.text.startswith(f"rev={rev} ")
    return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sigterm_raises()
    payload: dict = {"bench": "rollback_to_live", "target_seconds": TARGET, "machine": machine(), "samples": []}

    def body(stack):
        owner, token, space = deploy_space(stack, NAME, "docker", revision_app("a1"))
        api, base = stack.api(token), f"{stack.hub_url}/api/spaces/{owner}/{NAME}"
        app = AppClient(stack, space["url"])
        poll(answers_as(app, "a1"), started=time.monotonic(), timeout=120)
        for round_no in range(1, args.rounds + 1):
            current = api.get(base).json()["running_revision"]
            newer = f"b{round_no}"
            r = stack.upload(token, owner, NAME, revision_app(newer))
            assert r.status_code == 202, r.text
            stack.wait_status(token, owner, NAME, "RUNNING", revision=r.json()["number"], timeout=600)
            poll(answers_as(app, newer), started=time.monotonic(), timeout=120)
            old = api.get(f"{base}/files/server.py", params={"rev": api.get(f"{base}/revisions/{current}")
                                                             .json()["commit"]}).json()["content"]
            old_rev = old.split('REV = "', 1)[1].split('"', 1)[0]
            started = time.monotonic()
            r = api.post(f"{base}/revisions/{current}/rollback")
            assert r.status_code == 202, r.text
            seconds, polls, _ = poll(answers_as(app, old_rev), started=started, timeout=120)
            kept = r.json()["status"] == "succeeded"
            payload["samples"].append({"round": round_no, "seconds": round(seconds, 3), "kept_image": kept})
            log(f"round {round_no}: revision {current} ({old_rev}) again -> live in {seconds:.2f} s "
                f"({'kept image' if kept else 'rebuilt'}, {polls} polls)")
        figures = [s["seconds"] for s in payload["samples"]]
        payload["seconds"] = statistics.median(figures)
        payload["met"] = payload["seconds"] <= TARGET
        log(f"rollback to live (median of {len(figures)}): {payload['seconds']:.2f} s "
            f"(target <= {TARGET:.0f} s: {'met' if payload['met'] else 'NOT met'})")

    return run_on_stack(payload, body)


if __name__ == "__main__":
    sys.exit(main())
