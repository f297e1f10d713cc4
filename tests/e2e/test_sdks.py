"""Gradio, Streamlit and Dockerfile spaces: built and run for real, used through the proxy."""
from __future__ import annotations

import asyncio
import json

import pytest
import requests

from .stack import make_archive

pytestmark = pytest.mark.e2e

GRADIO_APP = '''
import gradio as gr
import pyfiglet  # a requirement of this space, installed by the build

def shout(text):
    return text.upper() + "!" + (" " if pyfiglet else "")

demo = gr.Interface(fn=shout, inputs=gr.Textbox(label="text"), outputs=gr.Textbox(label="shouted"),
                    api_name="shout")
demo.launch()
'''


def gradio_repo(app: str = GRADIO_APP, title: str = "Shouter") -> bytes:
    return make_archive({
        "README.md": f"---\ntitle: {title}\nemoji: 📣\nsdk: gradio\napp_file: app.py\ntags: [demo, text]\n---\nShouts.\n",
        "app.py": app,
        "requirements.txt": "pyfiglet==1.0.2\n",
    })


@pytest.fixture(scope="module")
def gradio_space(stack, alice):
    owner, token = alice
    space = stack.deploy(token, owner, "shouter", "gradio", gradio_repo(), timeout=900)
    return owner, token, space


def test_gradio_app_works_through_the_proxy_with_gradio_client(stack, gradio_space):
    from gradio_client import Client

    owner, token, space = gradio_space
    assert space["tags"] == ["demo", "text"] and space["title"] == "Shouter"
    client = Client(space["url"], verbose=False)
    assert client.predict("hello", api_name="/shout").startswith("HELLO!")


def test_build_log_streams_as_server_sent_events(stack, gradio_space):
    owner, token, space = gradio_space
    url = f"{stack.hub_url}/api/spaces/{owner}/shouter/logs/build"
    with stack.api(token).get(url, headers={"Accept": "text/event-stream"}, stream=True, timeout=30) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        events, current = [], {}
        for line in r.iter_lines(decode_unicode=True):
            if line == "":
                if current:
                    events.append(current)
                    if current.get("event") == "end":
                        break
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = current.get(field, "") + ("\n" if field == "data" and field in current else "") + value
    logs = [e for e in events if e.get("event") == "log"]
    # The requirements step is in the log whether it ran now or came from the layer cache
    # (an earlier run on this engine may have built the same requirements).
    assert logs and "-r /tmp/requirements.txt" in "".join(e["data"] for e in logs)
    assert int(logs[-1]["id"]) > 0
    end = json.loads(events[-1]["data"])
    assert end["status"] == "succeeded"
    # Resuming from the last id sends nothing old, only the end.
    with stack.api(token).get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": logs[-1]["id"]},
                              stream=True, timeout=30) as r:
        body = r.raw.read(4096).decode()
    assert "event: log" not in body and "event: end" in body
    # Plain text too, and the run log holds the app's output.
    assert "-r /tmp/requirements.txt" in stack.api(token).get(url).text
    run = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/shouter/logs/run").text
    assert "7860" in run or "Running on" in run


def test_logs_are_for_the_owner_only(stack, gradio_space):
    owner, token, space = gradio_space
    _, other = stack.new_user()
    url = f"{stack.hub_url}/api/spaces/{owner}/shouter/logs/build"
    assert requests.get(url).status_code == 401
    assert stack.api(other).get(url).status_code == 403


def test_code_only_redeploy_reuses_cached_layers_and_switches(stack, gradio_space):
    owner, token, space = gradio_space
    r = stack.upload(token, owner, "shouter", gradio_repo(GRADIO_APP.replace('"!"', '"?!"')))
    number = r.json()["number"]
    stack.wait_status(token, owner, "shouter", "RUNNING", timeout=300, revision=number)
    log = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/shouter/logs/build").text
    assert "Using cache" in log  # requirements layer reused: nothing reinstalled
    from gradio_client import Client

    assert Client(space["url"], verbose=False).predict("hi", api_name="/shout").startswith("HI?!")


STREAMLIT_APP = '''
import streamlit as st
st.title("Streamlit on Demohub")
name = st.text_input("name", "world")
st.write(f"hello {name}")
'''


def test_streamlit_app_and_its_websocket(stack, alice):
    import websockets

    owner, token = alice
    space = stack.deploy(token, owner, "stream", "streamlit", make_archive({
        "README.md": "---\ntitle: Stream\nsdk: streamlit\n---\n", "app.py": STREAMLIT_APP}), timeout=900)
    assert stack.get_app(space["url"], "/_stcore/health").text == "ok"
    ws_url = space["url"].replace("http://", "ws://").rstrip("/") + "/_stcore/stream"

    async def handshake():
        origin = space["url"].rstrip("/")
        async with websockets.connect(ws_url, subprotocols=["streamlit"], origin=origin,
                                      open_timeout=10) as ws:
            return ws.subprotocol

    assert asyncio.run(handshake()) == "streamlit"


DOCKER_APP = '''
import http.server, os, json, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/probe"):
            from urllib.parse import urlparse, parse_qs
            q = parse_qs(urlparse(self.path).query)
            host, port = q["host"][0], int(q["port"][0])
            try:
                socket.create_connection((host, port), timeout=2).close(); result = "open"
            except OSError as exc:
                result = type(exc).__name__
            body = json.dumps({"result": result}).encode()
        else:
            status = open("/proc/self/status").read()
            caps = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
            nnp = [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0]
            body = json.dumps({"uid": os.getuid(), "cap_eff": caps, "no_new_privs": nnp,
                               "docker_sock": os.path.exists("/var/run/docker.sock"),
                               "hello": "from docker"}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), H).serve_forever()
'''


def docker_repo(base: str = "demohub/base:bookworm") -> bytes:
    return make_archive({
        "README.md": "---\ntitle: Raw docker\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": f"FROM {base}\nRUN useradd -m -u 1000 user\nCOPY server.py /srv/server.py\n"
                      "USER root\nCMD [\"python3\", \"/srv/server.py\"]\n",
        "server.py": DOCKER_APP,
    })


@pytest.fixture(scope="module")
def docker_space(stack, alice):
    owner, token = alice
    space = stack.deploy(token, owner, "raw", "docker", docker_repo())
    return owner, token, space


def test_docker_space_runs_as_non_root_without_privileges(stack, docker_space):
    owner, token, space = docker_space
    info = stack.get_app(space["url"]).json()
    assert info["hello"] == "from docker"
    assert info["uid"] == 1000  # even though the Dockerfile says USER root
    assert int(info["cap_eff"], 16) == 0 and info["no_new_privs"] == "1"
    assert info["docker_sock"] is False


def test_missing_base_image_is_a_build_error_naming_it(stack, alice):
    owner, token = alice
    stack.create_space(token, "nofrom", "docker")
    stack.upload(token, owner, "nofrom", docker_repo(base="python:3.99-nonexistent"))
    space = stack.wait_status(token, owner, "nofrom", "BUILD_ERROR", timeout=120)
    assert "python:3.99-nonexistent" in space["error"]


def test_space_reaches_none_of_the_hubs_services(stack, docker_space, static_space_for_isolation):
    """From inside a space container: the host's hub, proxy, Postgres and Redis ports and other
    spaces are unreachable (the iptables rules and the network's icc=false), yet it runs."""
    import ipaddress
    import subprocess

    owner, token, space = docker_space
    gateway = str(ipaddress.ip_network(stack.subnet).network_address + 1)
    other = static_space_for_isolation
    targets = [(gateway, stack.hub_port), (gateway, stack.proxy_port), (gateway, 5432), (gateway, 6379),
               (gateway, 2375), (other["address"], 7860)]
    for host, port in targets:
        probe = stack.get_app(space["url"], f"/probe?host={host}&port={port}", timeout=15).json()
        assert probe["result"] != "open", (host, port)
    rules = subprocess.run(["bash", "scripts/isolate.sh", "--check", "10.216.0.0/13"], capture_output=True,
                           text=True)
    assert rules.returncode == 0 and "REJECT" in rules.stdout


@pytest.fixture(scope="module")
def static_space_for_isolation(stack, alice):
    """A second running container space, whose fixed address another space must not reach."""
    owner, token = alice
    stack.deploy(token, owner, "raw2", "docker", docker_repo())
    import docker

    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"demohub.instance={stack.instance}",
                                                      f"demohub.space={owner}/raw2"]})
    assert found
    nets = found[0].attrs["NetworkSettings"]["Networks"]
    return {"address": next(iter(nets.values()))["IPAddress"]}
