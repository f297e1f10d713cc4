"""Shared helpers of the benchmarks: a real stack (tests/e2e/stack.py), bounded polling
through the proxy, machine facts and the final JSON line.

Network rule: everything here talks to 127.0.0.1 (the stack's hub and proxy, a reference
nginx the benchmark starts) or to containers of the stack the benchmark started. Every loop
is bounded both in count and in time.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.e2e.stack import Stack, make_archive, new_stack  # noqa: E402,F401

BENCH_ARTIFACTS = ROOT / "artifacts" / "bench"


def log(msg: str) -> None:
    try:
        print(msg, flush=True)
    except (BrokenPipeError, OSError):
        pass  # the reader (tee) went away: keep going, the cleanup must still run


def start_stack() -> Stack:
    """A fresh stack (its own instance id, so its own Celery queues and Redis keys), its
    process logs under artifacts/bench/logs-<instance>/."""
    stack = new_stack()
    stack.log_dir = BENCH_ARTIFACTS / f"logs-{stack.instance}"
    return stack


def sigterm_raises() -> None:
    """SIGTERM or SIGHUP (a killed bench.sh, a closed terminal) unwind like Ctrl-C, so
    `finally: safe_down(stack)` runs."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def safe_down(stack: Stack) -> None:
    """stack.down(), not interruptible by a second Ctrl-C/SIGTERM/SIGHUP (a half-torn-down
    stack leaves processes, containers and a database behind)."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    t = time.monotonic()
    try:
        stack.down()
        log(f"stack {stack.instance} down in {time.monotonic() - t:.1f} s")
    except Exception as exc:  # noqa: BLE001
        log(f"stack.down() of {stack.instance} failed: {exc}")
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def machine() -> dict:
    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/loadavg") as fh:
            info["loadavg_at_start"] = fh.read().split()[:3]
    except OSError:
        pass
    for name, argv in (("nginx", ["nginx", "-v"]), ("docker", ["docker", "version", "--format",
                                                                 "{{.Server.Version}}"])):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            info[name] = (out.stdout + out.stderr).strip().splitlines()[-1] if (out.stdout + out.stderr).strip() else ""
        except (OSError, subprocess.TimeoutExpired):
            info[name] = "unavailable"
    return info


def final_json(payload: dict) -> None:
    """The last line of the output: one JSON object (machine-readable figures)."""
    log(json.dumps(payload, sort_keys=True))


class AppClient:
    """GETs to one space through the stack's proxy: 127.0.0.1:<proxy port> with the space's
    Host header (no name resolution needed), on a keep-alive session."""

    def __init__(self, stack: Stack, space_url: str):
        self.host = urlparse(space_url).netloc          # "<label>.spaces.localhost:<port>"
        self.base = f"http://127.0.0.1:{stack.proxy_port}"
        self.session = requests.Session()
        self.session.trust_env = False                   # never via an HTTP proxy from the env

    def get(self, path: str = "/", timeout: float = 5) -> requests.Response:
        return self.session.get(self.base + path, headers={"Host": self.host}, timeout=timeout,
                                allow_redirects=False)


def poll(check, *, started: float, timeout: float, fast_interval: float = 0.05,
         slow_interval: float = 0.1, fast_for: float = 5.0, max_polls: int = 20000):
    """Call check() until it returns a truthy value; bounded by `timeout` seconds after
    `started` (a time.monotonic() value) and by `max_polls` calls. Polls every
    `fast_interval` s during the first `fast_for` s, then every `slow_interval` s (the
    fallback answers come from the hub; polling them hard would steal CPU from the build).
    Returns (elapsed seconds since `started`, polls, last value) or raises TimeoutError."""
    polls = 0
    last = None
    while polls < max_polls:
        now = time.monotonic()
        if now - started > timeout:
            break
        polls += 1
        last = check()
        if last:
            return time.monotonic() - started, polls, last
        time.sleep(fast_interval if now - started < fast_for else slow_interval)
    raise TimeoutError(f"not reached after {time.monotonic() - started:.1f} s and {polls} polls; last={last!r}")


def deploy_space(stack: Stack, name: str, sdk: str, archive: bytes, *, timeout: float = 900) -> tuple[str, str, dict]:
    """A new user's space `name`, uploaded and RUNNING: (owner, token, space as the API shows it)."""
    owner, token = stack.new_user()
    return owner, token, stack.deploy(token, owner, name, sdk, archive, timeout=timeout)


def run_on_stack(payload: dict, body) -> int:
    """Start a stack, run body(stack) (which fills `payload`), then always tear the stack down
    and print `payload` as the final JSON line. Returns the exit status: 1 if body raised."""
    import traceback

    stack = start_stack()
    status = 0
    try:
        stack.up()
        body(stack)
    except BaseException as exc:  # noqa: BLE001 - report, then clean up
        status = 1
        payload["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        safe_down(stack)
    final_json(payload)
    return status
