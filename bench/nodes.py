#!/usr/bin/env python3
"""A space on the second node (issue 12, docs/scale.md): upload -> live, proxy throughput, and
the time from the node's loss to its space answering elsewhere.

* Two real nodes on this machine (tests/e2e/nodes.py `two_nodes`): the hub's engine (node 1,
  which builds and pushes to the run's registry) and a netns node 2 (pulls, runs, publishes
  on its link address). Node 1 is cordoned first, so the space goes to node 2.
* upload -> live: from the upload's POST to the first 200 of the app through the proxy
  (build on node 1, push, pull on node 2, start, route), over HTTP only.
* Proxy throughput: the bench/proxy_throughput.py responder, wrk through the Demohub proxy vs a
  hand-written nginx whose upstream is the same node-address:port with keepalive, alternating
  rounds, best of each: ratio = demohub / reference (target >= 0.9).
* Failover: node 1 uncordoned, node 2 killed with -9 (engine, containerd, containers, worker);
  the seconds until the app answers 200 through the proxy again (target <= 60).

Usage:  .venv/bin/python bench/nodes.py [-t 2] [-c 32] [-d 10] [--rounds 3]
The last line is one JSON object with the figures. Exits 1 only if the setup failed.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import AppClient, final_json, log, machine, poll, sigterm_raises, start_stack  # noqa: E402
from bench.proxy_throughput import (  # noqa: E402
    ReferenceNginx,
    check_200,
    ensure_wrk,
    proxy_workers,
    reference_conf,
    responder_repo,
    run_wrk,
    wrk_arguments,
)
from tests.e2e.nodes import node_of, two_nodes  # noqa: E402

TARGET_RATIO, TARGET_FAILOVER = 0.9, 60.0


def set_node1(stack, *, cordoned: bool) -> None:
    stack.manage("shell", "-c", "from spaces.nodes.models import Node; Node.objects.filter(name='node1')"
                                f".update(state='ready', cordoned={cordoned})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args = wrk_arguments(ap)
    sigterm_raises()
    wrk = ensure_wrk()
    info = machine()
    payload = {"bench": "nodes", "machine": info, "target_ratio": TARGET_RATIO, "target_failover_s": TARGET_FAILOVER}
    stack = start_stack()
    status = 0
    ref = None
    try:
        with two_nodes(stack) as (_registry, node):
            log(f"stack {stack.instance} up; node 2 = {node.name} at {node.address}")
            set_node1(stack, cordoned=True)
            owner, token = stack.new_user()
            stack.create_space(token, "tput", "docker")
            started = time.monotonic()
            r = stack.upload(token, owner, "tput", responder_repo())
            assert r.status_code == 202, r.text
            space = stack.space(token, owner, "tput")
            app = AppClient(stack, space["url"])
            took, _, _ = poll(lambda: _ok(app), started=started, timeout=600, slow_interval=0.2)
            assert node_of(stack, "tput") == node.name, node_of(stack, "tput")
            payload["upload_to_live_s"] = round(took, 2)
            log(f"upload -> live on node 2: {took:.1f} s")

            label = app.host.split(".", 1)[0]
            route = (stack.data_dir / "proxy" / "routes" / f"{label}.conf").read_text()
            upstream = re.search(rf"server ({re.escape(node.address)}:\d+)", route).group(1)
            workers = proxy_workers(stack)
            ref = ReferenceNginx(lambda p, prt: reference_conf(p, port=prt, upstream=upstream, workers=workers))
            ref.start()
            targets = {"demohub": f"http://127.0.0.1:{stack.proxy_port}/", "reference": f"http://127.0.0.1:{ref.port}/"}
            for url in targets.values():
                check_200(url, app.host)
                run_wrk(wrk, url, app.host, threads=args.threads, conns=args.connections, seconds=2)  # warm-up
            masters = {"demohub": int((stack.data_dir / "proxy" / "run" / "nginx.pid").read_text().strip()),
                       "reference": ref.proc.pid}
            best = {k: 0.0 for k in targets}
            cost = {k: [0, 0.0] for k in targets}  # requests, nginx CPU seconds
            for rnd in range(args.rounds):
                for name in (targets if rnd % 2 == 0 else reversed(list(targets))):
                    res = run_wrk(wrk, targets[name], app.host, threads=args.threads, conns=args.connections,
                                  seconds=args.duration, nginx_master=masters[name])
                    log(f"  round {rnd + 1} {name:<10} {res['rps']:10.0f} req/s  "
                        f"nginx {res.get('req_per_cpu_s', 0):8.0f} req/cpu-s  clean {res['clean']}  "
                        f"load {res['load1_before']}")
                    if res["clean"]:
                        best[name] = max(best[name], res["rps"])
                        cost[name][0] += res.get("requests", 0)
                        cost[name][1] += res.get("nginx_cpu_s", 0.0)
            per_cpu = {k: (n / s if s else 0.0) for k, (n, s) in cost.items()}
            payload.update({"demohub_rps": best["demohub"], "reference_rps": best["reference"], "upstream": upstream,
                            "ratio": round(best["demohub"] / best["reference"], 3) if best["reference"] else None,
                            "demohub_req_per_cpu_s": round(per_cpu["demohub"], 1),
                            "reference_req_per_cpu_s": round(per_cpu["reference"], 1),
                            "cpu_ratio": round(per_cpu["demohub"] / per_cpu["reference"], 3)
                            if per_cpu["reference"] else None})
            log(f"proxy throughput to node 2: ratio {payload['ratio']} (req/s, best of each), "
                f"{payload['cpu_ratio']} (requests per nginx CPU-second) (target >= {TARGET_RATIO})")
            ref.stop()
            ref = None

            set_node1(stack, cordoned=False)
            killed = time.monotonic()
            node.kill()
            took, _, _ = poll(lambda: _ok(app) and node_of(stack, "tput") == "node1", started=killed, timeout=180,
                              slow_interval=0.2)
            payload["failover_s"] = round(took, 2)
            log(f"node 2 killed -> the space answers from node 1 after {took:.1f} s (target <= {TARGET_FAILOVER})")
    except BaseException as exc:  # noqa: BLE001 - report, then clean up
        status = 1
        payload["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if ref is not None:
            ref.stop()
    final_json(payload)
    return status


def _ok(app: AppClient) -> bool:
    try:
        return app.get("/").status_code == 200
    except Exception:  # noqa: BLE001 - not up yet
        return False


if __name__ == "__main__":
    sys.exit(main())
