"""The real `git` command line, as a person runs it against the hub (unit tests on a live
server, end-to-end tests on a stack): no system or global config, no credential prompt, a
fixed author, and the caller's GIT_* variables cleared so nothing of this machine's leaks in."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_git(cwd: Path, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    """`git <args>` in `cwd`; with `check`, an AssertionError with git's output when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
