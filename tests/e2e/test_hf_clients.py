"""The Hugging Face clients on the real stack (issue 11): upload_folder -> build -> serve, and
gradio_client.Client("owner/name", token=...) finding a private space's host through /hf.

One private Gradio space (the SDK image is shared with the other e2e modules), the real
clients in subprocesses of their own environments (tests/hf_clients.py). The API's semantics
per call and persona are in tests/unit/test_hfapi_*.py, against the live server.
"""
from __future__ import annotations

import uuid

import pytest

from tests.hf_clients import run_hf

pytestmark = [pytest.mark.e2e]

APP = '''
import gradio as gr


def shout(text):
    return text.upper() + "!"


gr.Interface(shout, "text", "text", api_name="shout").launch()
'''
FOLDER = {"README.md": "---\ntitle: Shouter\nemoji: 📣\nsdk: gradio\napp_file: app.py\n---\nShouts.\n",
          "app.py": APP}


def test_upload_folder_builds_and_gradio_client_calls_the_private_space(stack, alice, tmp_path):
    owner, token = alice
    name = f"shouter-{uuid.uuid4().hex[:6]}"
    work = tmp_path / "work"
    for path, text in FOLDER.items():
        (work / "app" / path).parent.mkdir(parents=True, exist_ok=True)
        (work / "app" / path).write_text(text)
    endpoint = f"{stack.hub_url}/hf"
    got = run_hf("2.4.0", f'''
        sid = "{owner}/{name}"
        api.create_repo(sid, repo_type="space", space_sdk="gradio", private=True)
        RESULT["oid"] = api.upload_folder(folder_path="app", repo_id=sid, repo_type="space").oid
    ''', endpoint=endpoint, hf_home=tmp_path / "hf-home", token=token, cwd=work)
    space = stack.wait_status(token, owner, name, "RUNNING", timeout=300)
    assert space["visibility"] == "private"

    called = run_hf("2.4.0", f'''
        import time
        from gradio_client import Client
        sid = "{owner}/{name}"
        RESULT["runtime"] = api.get_space_runtime(sid).stage
        RESULT["sha"] = api.space_info(sid).sha
        RESULT["shout"] = Client(sid, token=os.environ["HF_TOKEN"], verbose=False).predict("hello", api_name="/shout")
        RESULT["logs"] = "".join(api.fetch_space_logs(sid, build=True))[-2000:]
    ''', endpoint=endpoint, hf_home=tmp_path / "hf-home", token=token, cwd=work)
    assert called["runtime"] == "RUNNING" and called["sha"] == got["oid"]
    assert called["shout"] == "HELLO!"
    assert f"==> commit {got['oid']}" in called["logs"]

    # Without the token the private space is the same as a missing one, for both clients.
    stranger = run_hf("2.4.0", f'''
        from gradio_client import Client
        RESULT["info"] = outcome(lambda: api.space_info("{owner}/{name}"))
        RESULT["client"] = outcome(lambda: Client("{owner}/{name}", verbose=False))
    ''', endpoint=endpoint, hf_home=tmp_path / "hf-home-2", cwd=work)
    assert stranger["info"][0] == "RepositoryNotFoundError"
    assert stranger["client"][0] in ("RepositoryNotFoundError", "ValueError"), stranger["client"]
