#!/usr/bin/env python3
"""Push to live: seconds from `git push` (the real git client, over the hub's smart HTTP) to the
first HTTP 200 from the space's URL through the proxy that shows the pushed code, on a real
stack (tests/e2e/stack.py).

Scenarios:
  static_push      a changed index.html pushed to a running static space       target <= 2 s
  gradio_push      a code-only change (app.py) pushed to a running gradio      target <= 5 s
                   space, until /config shows the new title (the build reuses
                   the requirements layers; the old revision serves meanwhile)

Each space is first deployed by a push that is not counted (the first build of a gradio space
may build its SDK image). Usage:  .venv/bin/python bench/push_to_live.py [--repeat N]
Prints one line per figure with its target, then one JSON line; exits 1 only if the stack could
not be used at all.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import AppClient, log, machine, poll, run_on_stack  # noqa: E402
from bench.upload_to_live import GRADIO_APP  # noqa: E402

TARGETS = {"static_push": 2.0, "gradio_push": 5.0}


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.org", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@example.org")
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stderr


def write(d: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (d / name).write_text(text)
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "bench change")


def measure(stack, sdk: str, files, changed, shows, repeat: int) -> list[float]:
    owner, token = stack.new_user()
    name = f"push-{sdk}"
    stack.create_space(token, name, sdk)
    host = stack.hub_url.split("://", 1)[1]
    url = f"http://{owner}:{token}@{host}/spaces/{owner}/{name}"
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        git(d, "init", "-q", "-b", "main")
        write(d, files)
        git(d, "push", "-q", url, "main")                      # the deploy, not counted
        space = stack.wait_status(token, owner, name, "RUNNING", timeout=900)
        app = AppClient(stack, space["url"])
        for i in range(repeat):
            nonce = f"v{i}-{time.time_ns()}"
            write(d, changed(nonce))
            started = time.monotonic()
            git(d, "push", "-q", url, "main")
            pushed = time.monotonic() - started
            elapsed, polls, _ = poll(lambda n=nonce: _shows(app, shows, n), started=started, timeout=300)
            log(f"{sdk}: push took {pushed:.2f} s, first 200 with the new code after {elapsed:.2f} s ({polls} polls)")
            samples.append(elapsed)
            stack.wait_status(token, owner, name, "RUNNING", timeout=300)
    return samples


def _shows(app, path: str, nonce: str) -> bool:
    try:
        r = app.get(path)
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return r.status_code == 200 and nonce in r.text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    payload: dict = {"bench": "push_to_live", "machine": machine(), "targets": TARGETS, "figures": {}}

    def body(stack) -> None:
        static = {"README.md": "---\nsdk: static\n---\n", "index.html": "<h1>start</h1>"}
        runs = {
            "static_push": measure(stack, "static", static, lambda n: {"index.html": f"<h1>{n}</h1>"}, "/",
                                   args.repeat),
            "gradio_push": measure(
                stack, "gradio",
                {"README.md": "---\nsdk: gradio\napp_file: app.py\n---\n",
                 "app.py": GRADIO_APP.format(title="start", mark="hi")},
                lambda n: {"app.py": GRADIO_APP.format(title=n, mark="hi")}, "/config", args.repeat),
        }
        for key, samples in runs.items():
            median = statistics.median(samples)
            payload["figures"][key] = {"median_s": round(median, 3), "samples_s": [round(s, 3) for s in samples]}
            print(f"{key}: {median:.2f} s median of {len(samples)} (target <= {TARGETS[key]} s)", flush=True)

    return run_on_stack(payload, body)


if __name__ == "__main__":
    sys.exit(main())
