#!/usr/bin/env python3
"""Upload to live: seconds from the upload POST to the first HTTP 200 from the space's URL
through the proxy, on a real stack (tests/e2e/stack.py: uvicorn, Celery workers, beat, nginx,
the real Docker engine).

Scenarios (run one after another, so no build waits behind another):
  static            a static site                                   target <= 2 s
  gradio_cold       only when the SDK image is missing (or --cold removed it): includes
                    the SDK image build (pip install gradio)        no target
  gradio_warm       SDK image present, no requirements.txt          target <= 10 s
  gradio_redeploy   a changed app.py uploaded to the running gradio space, until a 200
                    whose body (/config) shows the new title        target <= 5 s
  streamlit_cold    only when the streamlit SDK image is missing    no target
  streamlit_warm    SDK image present                               no target

A static warm-up deploy (not counted) runs first, so the figures are those of a running hub,
not of workers handling their first task.

Usage:  .venv/bin/python bench/upload_to_live.py [--cold] [--repeat N] [--skip-streamlit]
  --cold      first removes the image demohub/sdk-gradio:<default version> (never forced: an
              image another stack uses is left alone and the run says so). Costs a pip install.
  --repeat N  measure static, gradio_warm, gradio_redeploy and streamlit_warm N times (a new
              space each time; default 1) and report the median (and every sample).

Prints one line per figure with its target, then one JSON line. Exits 0 whatever the
figures are (a measurement, not a test); exits 1 only if the stack could not be used at all.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    AppClient,
    final_json,
    log,
    machine,
    make_archive,
    poll,
    safe_down,
    sigterm_raises,
    start_stack,
)

TARGETS = {"static": 2.0, "gradio_warm": 10.0, "gradio_redeploy": 5.0}

# The SDK versions of the stack this bench starts: it passes them as DEFAULT_<SDK>_VERSION, so
# it knows which SDK image a new space builds on. The hub's defaults (hub/settings.py; a unit
# test, tests/unit/test_bench_support.py, keeps them equal), or what this environment sets.
SDK_VERSIONS = {"gradio": os.environ.get("DEFAULT_GRADIO_VERSION") or "6.31.0",
                "streamlit": os.environ.get("DEFAULT_STREAMLIT_VERSION") or "1.67.0"}

GRADIO_APP = '''import gradio as gr

def greet(name):
    return "{mark} " + name

demo = gr.Interface(fn=greet, inputs="text", outputs="text", title="{title}")
demo.launch()
'''

STREAMLIT_APP = '''import streamlit as st
st.title("{title}")
name = st.text_input("name", "world")
st.write(f"hello {{name}}")
'''


def gradio_repo(title: str, mark: str) -> bytes:
    return make_archive({
        "README.md": f"---\ntitle: {title}\nsdk: gradio\napp_file: app.py\n---\nBenchmark.\n",
        "app.py": GRADIO_APP.format(title=title, mark=mark),
    })


def streamlit_repo(title: str) -> bytes:
    return make_archive({
        "README.md": f"---\ntitle: {title}\nsdk: streamlit\napp_file: app.py\n---\n",
        "app.py": STREAMLIT_APP.format(title=title),
    })


def static_repo(nonce: str) -> bytes:
    return make_archive({
        "README.md": "---\ntitle: Bench static\nsdk: static\n---\n",
        "index.html": f"<!doctype html><h1>bench {nonce}</h1>",
        "style.css": "h1{color:teal}",
    })


def _parse_ts(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Runner:
    def __init__(self, stack, owner: str, token: str):
        self.stack, self.owner, self.token = stack, owner, token
        self.results: dict[str, dict] = {}

    def pause(self, name: str) -> None:
        """Pause a measured space (its containers stop), so idle apps do not load the next
        measurement. Not a delete: removing a space's images prunes the untagged layers a
        concurrent build of another space may be using (see bench/README.md)."""
        import docker

        client = docker.from_env()
        flt = {"label": [f"demohub.instance={self.stack.instance}", f"demohub.space={self.owner}/{name}"],
               "status": "running"}
        try:
            self.stack.api(self.token).post(f"{self.stack.hub_url}/api/spaces/{self.owner}/{name}/pause",
                                            timeout=30)
            poll(lambda: not client.containers.list(filters=flt), started=time.monotonic(), timeout=60,
                 fast_interval=0.2, slow_interval=0.5)
        except Exception as exc:  # noqa: BLE001
            log(f"  (could not pause {name}: {exc})")

    def record(self, key: str, result: dict) -> None:
        """Keep every sample; `seconds` is the median of the samples that went live."""
        prev = self.results.get(key)
        samples = (prev["samples"] if prev else []) + [result]
        live = sorted(x["seconds"] for x in samples if x.get("seconds") is not None)
        merged = dict(result)
        merged["samples"] = samples
        merged["seconds"] = live[len(live) // 2] if live else None
        if len(samples) > 1:
            merged["min"] = live[0] if live else None
            merged["max"] = live[-1] if live else None
        if merged.get("target") is not None and merged["seconds"] is not None:
            merged["met"] = merged["seconds"] <= merged["target"]
        self.results[key] = merged

    def measure(self, key: str, name: str, sdk: str | None, archive: bytes, *, path: str = "/",
                marker: str | None = None, timeout: float = 300) -> dict:
        """Create the space (if sdk is given), upload, and time the first matching 200."""
        stack, owner, token = self.stack, self.owner, self.token
        if sdk is not None:
            space = stack.create_space(token, name, sdk)
        else:
            space = stack.space(token, owner, name)
        app = AppClient(stack, space["url"])
        seen: Counter = Counter()

        def live():
            try:
                r = app.get(path, timeout=5)
            except Exception as exc:  # noqa: BLE001 - any failure is "not live yet"
                seen[type(exc).__name__] += 1
                return None
            seen[r.status_code] += 1
            if r.status_code == 200 and (marker is None or marker in r.text):
                return r
            return None

        t0_wall = time.time()
        t0 = time.monotonic()
        r = stack.upload(token, owner, name, archive)
        post_s = time.monotonic() - t0
        if r.status_code != 202:
            raise RuntimeError(f"{key}: upload answered {r.status_code}: {r.text[:300]}")
        number = r.json()["number"]
        try:
            elapsed, polls, _ = poll(live, started=t0, timeout=timeout)
        except TimeoutError as exc:
            rev = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/{name}/revisions/{number}").json()
            sp = stack.space(token, owner, name)
            result = {"seconds": None, "target": TARGETS.get(key), "error": str(exc), "statuses": dict(seen),
                      "revision": {k: rev.get(k) for k in ("number", "status", "error")},
                      "space": {k: sp.get(k) for k in ("status", "error")}}
            self.record(key, result)
            log(f"{key:<18} NOT LIVE within {timeout:.0f} s; statuses seen {dict(seen)}; revision "
                f"{result['revision']}; space {result['space']}")
            return result
        # Breakdown from the revision's own timestamps (same host clock).
        rev = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/{name}/revisions/{number}").json()
        created, started, finished = (_parse_ts(rev.get(k)) for k in ("created_at", "started_at", "finished_at"))
        live_wall = t0_wall + elapsed
        breakdown = {
            "post": round(post_s, 3),
            "queued": round(started - created, 3) if started and created else None,
            "build": round(finished - started, 3) if finished and started else None,
            "after_build": round(live_wall - finished, 3) if finished else None,
        }
        result = {"seconds": round(elapsed, 3), "target": TARGETS.get(key), "polls": polls,
                  "statuses": {str(k): v for k, v in seen.items()}, "breakdown": breakdown,
                  "revision": number}
        if result["target"] is not None:
            result["met"] = elapsed <= result["target"]
        self.record(key, result)
        target = f"target <= {result['target']:.0f} s  {'MET' if result.get('met') else 'MISSED'}" \
            if result["target"] is not None else "no target"
        parts = ", ".join(f"{k} {v:.2f}" for k, v in breakdown.items() if v is not None)
        log(f"{key:<18} {elapsed:7.2f} s   {target:<24} ({parts})")
        # Let the space settle (RUNNING on this revision; a redeploy stops the old slot).
        stack.wait_status(token, owner, name, {"RUNNING"}, timeout=60, revision=number)
        time.sleep(3)
        return result


def image_present(name: str) -> bool:
    import docker

    try:
        docker.from_env().images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def remove_image(name: str) -> str:
    """Remove one tag, never forced (another stack may be using it). Returns what happened."""
    import docker

    try:
        docker.from_env().images.remove(name, force=False, noprune=False)
        return "removed"
    except docker.errors.ImageNotFound:
        return "absent"
    except docker.errors.APIError as exc:
        return f"kept ({exc.explanation})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", action="store_true", help="remove the gradio SDK image first (pip install, 1-2 min)")
    ap.add_argument("--skip-streamlit", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="samples per warm scenario (1-10)")
    args = ap.parse_args()
    args.repeat = max(1, min(args.repeat, 10))
    sigterm_raises()

    info = machine()
    log(f"upload_to_live: {info['date_utc']}, {info['cores']} cores, load {info.get('loadavg_at_start')}")
    stack = start_stack()
    stack.settings.update({f"DEFAULT_{sdk.upper()}_VERSION": version for sdk, version in SDK_VERSIONS.items()})
    payload: dict = {"bench": "upload_to_live", "machine": info, "cold_requested": args.cold,
                     "repeat": args.repeat, "targets_s": TARGETS}
    runner = None
    status = 0
    try:
        t = time.monotonic()
        stack.up()
        log(f"stack {stack.instance} up in {time.monotonic() - t:.1f} s (proxy 127.0.0.1:{stack.proxy_port})")
        owner, token = stack.new_user()
        runner = Runner(stack, owner, token)
        nonce = uuid.uuid4().hex[:8]

        # -- warm-up (not counted): the workers' first task, first route reload
        t = time.monotonic()
        stack.create_space(token, "bwarmup", "static")
        stack.upload(token, owner, "bwarmup", static_repo("warmup"))
        stack.wait_status(token, owner, "bwarmup", {"RUNNING"}, timeout=120)
        log(f"warm-up deploy (not counted) {time.monotonic() - t:.2f} s")

        # -- static
        for i in range(args.repeat):
            n = f"{nonce}{i}"
            runner.measure("static", f"bstatic{i}", "static", static_repo(n), marker=n, timeout=120)

        # -- gradio: cold (if the SDK image is missing or --cold), warm, code-only redeploy
        gv = SDK_VERSIONS["gradio"]
        gimage = f"demohub/sdk-gradio:{gv}"
        payload["gradio_sdk_image"] = gimage
        if args.cold:
            what = remove_image(gimage)
            payload["cold_removal"] = what
            log(f"--cold: {gimage}: {what}")
        if not image_present(gimage):
            log(f"{gimage} is missing: the next figure includes building it (pip install gradio)")
            runner.measure("gradio_cold", "bgradio-cold", "gradio",
                           gradio_repo(f"Bench cold {nonce}", "cold"), timeout=900)
            runner.pause("bgradio-cold")
        else:
            log(f"{gimage} present: gradio_cold not measured (use --cold)")
        for i in range(args.repeat):
            v1, v2 = f"Bench v1 {nonce}{i}", f"Bench v2 {nonce}{i}"
            runner.measure("gradio_warm", f"bgradio{i}", "gradio", gradio_repo(v1, "hello"), timeout=300)
            runner.measure("gradio_redeploy", f"bgradio{i}", None, gradio_repo(v2, "howdy"), path="/config",
                           marker=v2, timeout=300)
            runner.pause(f"bgradio{i}")

        # -- streamlit: warm (its SDK image is made first when missing, and that is reported)
        if not args.skip_streamlit:
            sv = SDK_VERSIONS["streamlit"]
            simage = f"demohub/sdk-streamlit:{sv}"
            if not image_present(simage):
                log(f"{simage} is missing: building it first (streamlit_cold)")
                runner.measure("streamlit_cold", "bstreamlit-cold", "streamlit",
                               streamlit_repo(f"Bench cold {nonce}"), timeout=900)
                runner.pause("bstreamlit-cold")
            for i in range(args.repeat):
                runner.measure("streamlit_warm", f"bstreamlit{i}", "streamlit",
                               streamlit_repo(f"Bench {nonce}{i}"), timeout=300)
                runner.pause(f"bstreamlit{i}")
    except KeyboardInterrupt as exc:
        log(f"interrupted: {exc}")
        payload["error"] = f"interrupted: {exc}"
        status = 1
    except Exception as exc:  # noqa: BLE001 - report what was measured so far
        traceback.print_exc()
        payload["error"] = f"{type(exc).__name__}: {exc}"
        status = 0 if runner and runner.results else 1
    finally:
        safe_down(stack)
    payload["results"] = runner.results if runner else {}
    log("")
    log("summary (seconds from upload POST to first 200 through the proxy):")
    for key, res in payload["results"].items():
        tgt = TARGETS.get(key)
        sec = res.get("seconds")
        spread = f"  (median of {len(res['samples'])}: min {res.get('min')}, max {res.get('max')})" \
            if len(res.get("samples", [])) > 1 else ""
        log(f"  {key:<18} {'-' if sec is None else f'{sec:.2f} s':>9}   "
            f"{'target <= %.0f s' % tgt if tgt else 'no target'}"
            + (f"  {'MET' if res.get('met') else 'MISSED'}" if tgt else "") + spread)
    final_json(payload)
    return status


if __name__ == "__main__":
    sys.exit(main())
