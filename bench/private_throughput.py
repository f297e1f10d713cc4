#!/usr/bin/env python3
"""Private vs public throughput of the same space through the Demohub proxy, same run.

* Brings up a real stack (tests/e2e/stack.py) and deploys the minimal docker-SDK responder of
  proxy_throughput.py (a fixed 1 KiB answer), so the proxy, not the app, is what is measured.
* Alternates rounds: the space public (no credential), then the same space private with the
  owner's API token in `Authorization: Bearer dh_...` (what an API client sends), switching
  visibility through the API between rounds and waiting until the proxy applies it. In the
  private rounds every request passes the proxy's access check (auth_request, answered by the
  hub and cached by nginx per credential for 30 s): this is the cost of privacy.
* Reports the best clean round of each, the ratio private/public, per-round paired ratios,
  nginx CPU per request for both, and how long each visibility switch took to reach the proxy.

Usage:  .venv/bin/python bench/private_throughput.py [-t 2] [-c 32] [-d 10] [--rounds 3]
Target: private / public >= 0.8. Exits 0 whatever the ratio; 1 if the stack could not be used.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import AppClient, deploy_space, log, machine, poll, run_on_stack, sigterm_raises  # noqa: E402
from bench.proxy_throughput import (  # noqa: E402
    BODY_BYTES,
    compare_runs,
    ensure_wrk,
    responder_repo,
    run_wrk,
    wrk_arguments,
    wrk_payload,
)

TARGET = 0.8


def set_visibility(stack, token: str, owner: str, name: str, visibility: str, url: str, host: str,
                   auth: dict[str, str]) -> float:
    """PATCH the visibility and wait until the proxy answers accordingly; returns seconds taken."""
    t0 = time.monotonic()
    r = stack.api(token).patch(f"{stack.hub_url}/api/spaces/{owner}/{name}", json={"visibility": visibility})
    if r.status_code != 200:
        raise RuntimeError(f"PATCH visibility={visibility} answered {r.status_code}: {r.text[:200]}")
    s = requests.Session()
    s.trust_env = False
    anonymous_wanted = 200 if visibility == "public" else 401

    def applied() -> bool:
        anon = s.get(url, headers={"Host": host, "Accept": "application/json"}, timeout=5, allow_redirects=False)
        with_token = s.get(url, headers={"Host": host, **auth}, timeout=5)
        return anon.status_code == anonymous_wanted and with_token.status_code == 200 \
            and len(with_token.content) == BODY_BYTES

    poll(applied, started=t0, timeout=30)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args = wrk_arguments(ap)
    sigterm_raises()

    wrk = ensure_wrk()
    info = machine()
    log(f"private_throughput: {info['date_utc']}, {info['cores']} cores, load {info.get('loadavg_at_start')}")
    wrk_opts = dict(threads=args.threads, conns=args.connections, seconds=args.duration)
    payload = wrk_payload("private_throughput", info, TARGET, args)

    def body(stack) -> None:
        owner, token, space = deploy_space(stack, "tput", "docker", responder_repo(), timeout=300)
        app = AppClient(stack, space["url"])
        host = app.host
        url = f"http://127.0.0.1:{stack.proxy_port}/"
        auth = {"Authorization": f"Bearer {token}"}
        master = int((stack.data_dir / "proxy" / "run" / "nginx.pid").read_text().strip())
        log(f"space {owner}/tput: Host {host}")

        runs: dict[str, list[dict]] = {"public": [], "private": []}
        switch_s: dict[str, list[float]] = {"public": [], "private": []}
        for rnd in range(args.rounds):
            order = ["public", "private"] if rnd % 2 == 0 else ["private", "public"]
            for mode in order:
                switch_s[mode].append(round(set_visibility(stack, token, owner, "tput", mode, url, host, auth), 3))
                headers = auth if mode == "private" else None
                run_wrk(wrk, url, host, threads=args.threads, conns=args.connections, seconds=2, headers=headers)
                res = run_wrk(wrk, url, host, nginx_master=master, headers=headers, **wrk_opts)
                runs[mode].append(res)
                log(f"  round {rnd + 1} {mode:<8} {res['rps']:10.0f} req/s  p50 {res.get('p50_ms', '?')} ms  "
                    f"p99 {res.get('p99_ms', '?')} ms  nginx {res.get('req_per_cpu_s', 0):8.0f} req/cpu-s  "
                    f"non-2xx {res['non_2xx']}  sock-err {res['socket_errors']}  load {res['load1_before']}")

        cmp = compare_runs(runs, "private", "public")
        ratio, paired, cpu_ratio = cmp["ratio"], cmp["paired"], cmp["cpu_ratio"]
        payload.update({
            "space": f"{owner}/tput", "runs": runs, "best_rps": cmp["best"], "paired_ratios": paired,
            "ratio_private_to_public": round(ratio, 3) if ratio else None,
            "nginx_req_per_cpu_s": {k: round(v, 1) for k, v in cmp["req_per_cpu_s"].items()},
            "cpu_ratio_private_to_public": round(cpu_ratio, 3) if cpu_ratio else None,
            "visibility_switch_s": switch_s,
            "met": bool(ratio and ratio >= TARGET),
        })
        log(f"private/public = {payload['ratio_private_to_public']} (target >= {TARGET}); paired {paired}; "
            f"nginx CPU per request ratio {payload['cpu_ratio_private_to_public']}; "
            f"visibility switch (s): {switch_s}")

    return run_on_stack(payload, body)


if __name__ == "__main__":
    sys.exit(main())
