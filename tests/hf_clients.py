"""Run the real, unmodified Hugging Face clients against a Demohub endpoint (issue 11).

Each call is a subprocess of the client's own environment (.venv-hf2: huggingface_hub 2.4.0 and
gradio_client 2.7.2; .venv-hf1: huggingface_hub 1.33.0; both made by scripts/test.sh), because
HF_ENDPOINT is read when huggingface_hub is imported. The script gets `api` (an HfApi with the
token, or without any), `hh` (huggingface_hub), `outcome(fn)` and fills the dict RESULT, which
comes back decoded from JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = {"2.4.0": ROOT / ".venv-hf2", "1.33.0": ROOT / ".venv-hf1"}
MARK = "@@RESULT@@"

PRELUDE = '''
import json, os, sys
import huggingface_hub as hh
from huggingface_hub import HfApi
assert hh.__version__ == os.environ["EXPECT_HF_VERSION"], hh.__version__
api = HfApi(token=os.environ.get("HF_TOKEN") or False)

def outcome(fn):
    """["ok", value] or [exception class, HTTP status, message]."""
    try:
        return ["ok", fn()]
    except Exception as exc:
        response = getattr(exc, "response", None)
        return [type(exc).__name__, getattr(response, "status_code", None), str(exc)[:800]]

RESULT = {}
'''


def client_env(endpoint: str, hf_home: Path, token: str | None = None, version: str = "2.4.0") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("HF_", "HUGGING", "DJANGO", "DATABASE"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_UPDATE_CHECK="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY="*",
               EXPECT_HF_VERSION=version, PYTHONUNBUFFERED="1")
    if token:
        env["HF_TOKEN"] = token
    return env


def venv(version: str) -> Path:
    path = VENVS[version]
    assert (path / "bin" / "python").exists(), (
        f"{path.name} is missing: scripts/test.sh (make test) creates it from requirements-{path.name[6:]}.txt")
    return path


def run_hf(version: str, code: str, *, endpoint: str, hf_home: Path, token: str | None = None,
           timeout: float = 120, cwd: Path | None = None) -> dict:
    """Run `code` with huggingface_hub `version`; returns its RESULT dict."""
    script = PRELUDE + textwrap.dedent(code) + f'\nprint("{MARK}" + json.dumps(RESULT, default=str))\n'
    proc = subprocess.run([str(venv(version) / "bin" / "python"), "-c", script], capture_output=True, text=True,
                          env=client_env(endpoint, hf_home, token, version), timeout=timeout, cwd=cwd)
    out = proc.stdout
    assert proc.returncode == 0 and MARK in out, f"client script failed ({proc.returncode}):\n{out}\n{proc.stderr}"
    return json.loads(out.rsplit(MARK, 1)[1])


def run_cli(args: list[str], *, endpoint: str, hf_home: Path, token: str | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """The `hf` command line of huggingface_hub 2.4.0."""
    return subprocess.run([str(venv("2.4.0") / "bin" / "hf"), *args], capture_output=True, text=True,
                          env=client_env(endpoint, hf_home, token), timeout=timeout, cwd=cwd)
