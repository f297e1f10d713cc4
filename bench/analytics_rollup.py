#!/usr/bin/env python3
"""Analytics rollup: seconds to roll up one million access-log lines (target: under 60 s).

* Makes a database of its own (demohub_bench_rollup_<pid>) on this machine's Postgres,
  migrates it and creates --spaces spaces.
* Writes --lines lines in the proxy's analytics format (deploy/nginx/nginx.conf.template:
  msec, server name, status, request time, bytes, kind, client address, $uri) spread over the
  last --minutes minutes, the spaces, --visitors client addresses (each using one to three
  spaces; --spread: every space, the most daily visitor hashes to write), a mix of page
  views, API calls and assets, 2 % 4xx and 0.5 % 5xx, latencies from 1 ms to 3 s.
* Times `manage.py analytics_rollup --path <file>` as its own process (what the beat's task
  runs: read, aggregate, upsert minute and hour rollups and visitor hashes, erase, prune),
  checks the counts it wrote, prints the figure and drops the database.

Usage:  .venv/bin/python bench/analytics_rollup.py [--lines 1000000] [--spaces 50] [--visitors 20000]
Prints human-readable lines, then one JSON line. Exits 0 whatever the time; 1 if it could not run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 60.0


def log(msg: str) -> None:
    print(msg, flush=True)


def psql(*sql: str) -> None:
    argv = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
    for s in sql:
        argv += ["-c", s]
    subprocess.run(argv, check=True, capture_output=True)


def write_lines(path: Path, *, lines: int, labels: list[str], visitors: int, minutes: int, domain: str,
                spread: bool = False) -> None:
    rng = random.Random(13)
    now = time.time()
    addresses = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(visitors)]
    kinds = ["page"] * 3 + ["api"] * 4 + ["other"] * 3
    uris = {"page": ["/", "/about"], "api": ["/gradio_api/queue/join", "/gradio_api/info", "/config"],
            "other": ["/assets/index.js", "/favicon.ico", "/theme.css"]}
    hosts = [f"{label}.{domain}" for label in labels]
    # As on a hub: a visitor uses one to three spaces (which ones: fixed per visitor); with
    # --spread every visitor uses every space (the most distinct visitor hashes to write).
    n = len(hosts)
    homes = [list(range(n)) if spread else [rng.randrange(n) for _ in range(rng.randint(1, 3))]
             for _ in range(visitors)]
    with open(path, "w", encoding="ascii") as fh:
        batch = []
        for i in range(lines):
            at = now - rng.random() * minutes * 60
            kind = kinds[rng.randrange(10)]
            r = rng.random()
            status = 404 if r < 0.02 else 502 if r < 0.025 else 200
            seconds = min(3.0, rng.expovariate(1 / 0.05))
            v = rng.randrange(visitors)
            batch.append(f"{at:.3f}\t{hosts[rng.choice(homes[v])]}\t{status}\t{seconds:.3f}\t"
                         f"{rng.randrange(200, 40000)}\t{kind}\t{addresses[v]}\t"
                         f"{rng.choice(uris[kind])}\n")
            if len(batch) == 10000:
                fh.write("".join(batch))
                batch = []
        fh.write("".join(batch))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--spaces", type=int, default=50)
    ap.add_argument("--visitors", type=int, default=20_000)
    ap.add_argument("--minutes", type=int, default=240, help="the lines span this many minutes up to now")
    ap.add_argument("--spread", action="store_true", help="every visitor uses every space (worst case for hashes)")
    args = ap.parse_args()

    db = f"demohub_bench_rollup_{os.getpid()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", "DJANGO_DEBUG": "true",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
           "DJANGO_SECRET_KEY": "bench-only-" + "x" * 40, "LOG_LEVEL": "WARNING"}
    payload: dict = {"name": "analytics_rollup", "target_s": TARGET_S, "lines": args.lines, "spaces": args.spaces,
                     "visitors": args.visitors, "spread": args.spread}
    status = 0
    tmp = Path(tempfile.mkdtemp(prefix="demohub-bench-rollup-"))
    try:
        psql(f'DROP DATABASE IF EXISTS "{db}"', f'CREATE DATABASE "{db}"')
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
        setup = (
            "from django.contrib.auth import get_user_model\n"
            "from spaces.catalog import services\n"
            "from django.conf import settings\n"
            "u = get_user_model().objects.create_user('bench', password='x' * 20)\n"
            f"labels = [services.space_create(owner=u, name=f'space{{i}}', sdk='static').label for i in range({args.spaces})]\n"
            "print(settings.SPACES_DOMAIN + ' ' + ' '.join(labels))\n")
        out = subprocess.run([*manage, "shell", "-c", setup], cwd=ROOT, env=env, check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1].split()
        domain, labels = out[0], out[1:]
        path = tmp / "analytics.log"
        started = time.monotonic()
        write_lines(path, lines=args.lines, labels=labels, visitors=args.visitors, minutes=args.minutes,
                    domain=domain, spread=args.spread)
        size = path.stat().st_size
        log(f"wrote {args.lines} lines ({size / 2**20:.1f} MiB) for {len(labels)} spaces in "
            f"{time.monotonic() - started:.1f} s")

        started = time.monotonic()
        proc = subprocess.run([*manage, "analytics_rollup", "--path", str(path)], cwd=ROOT, env=env, check=True,
                              capture_output=True, text=True)
        seconds = time.monotonic() - started
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        check = subprocess.run([*manage, "shell", "-c",
                                "from django.db.models import Sum\n"
                                "from spaces.analytics.models import AnalyticsHour, AnalyticsMinute, AnalyticsVisitor\n"
                                "print(AnalyticsHour.objects.aggregate(n=Sum('requests'))['n'], "
                                "AnalyticsMinute.objects.aggregate(n=Sum('requests'))['n'], "
                                "AnalyticsMinute.objects.count(), AnalyticsVisitor.objects.count())"],
                               cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.split()
        hours, minutes, minute_rows, visitor_rows = (int(x) for x in check[-4:])
        erased = path.read_bytes().strip(b"\0") == b""
        payload.update({"seconds": round(seconds, 2), "rollup_seconds_in_process": result["seconds"],
                        "lines_per_s": round(args.lines / seconds), "counted": result["counted"],
                        "hour_total": hours, "minute_total": minutes, "minute_rows": minute_rows,
                        "visitor_rows": visitor_rows, "log_erased": erased, "met": seconds < TARGET_S,
                        "cores": os.cpu_count(), "loadavg": os.getloadavg()[0]})
        log(f"rollup of {args.lines} lines: {seconds:.2f} s as a process ({result['seconds']:.2f} s rolling up), "
            f"{args.lines / seconds:,.0f} lines/s; target < {TARGET_S:.0f} s: {'MET' if seconds < TARGET_S else 'MISSED'}")
        log(f"counted {result['counted']} (hour rollups {hours}, minute rollups {minutes} in {minute_rows} rows), "
            f"{visitor_rows} daily visitor hashes, log erased: {erased}")
        if not (result["counted"] == hours == minutes == args.lines and erased):
            log("WRONG: the counts or the erasure do not match")
            payload["error"] = "counts or erasure do not match"
            status = 1
    except Exception as exc:  # noqa: BLE001
        log(f"error: {type(exc).__name__}: {exc}")
        payload["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        try:
            psql(f'DROP DATABASE IF EXISTS "{db}"')
        except subprocess.CalledProcessError:
            pass
    print(json.dumps(payload), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
