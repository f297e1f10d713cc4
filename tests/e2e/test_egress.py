"""Network isolation on the real stack (issue 15, findings 5 and 6).

* Builds run on a network of their own: a RUN step's address is in BUILDS_SUBNET, never in the
  spaces range, it runs under the stack's build cgroup, and it cannot open a connection to
  the host (a listener of this test on all addresses, the hub's port, Postgres, Redis).
* Egress: a test host of this test's own, in a network namespace at 10.199.77.2 (a private
  address), serves HTTP. A space and a build step are both refused; once the operator allows
  `10.199.77.2:8000` (EGRESS_ALLOW, applied by scripts/isolate.sh), both reach it.
* Without the firewall the runner refuses builds, and /readyz and the space page say so.

The namespace and its route exist before any container sends a packet; no packet goes to an
address other than loopback, this stack's containers, the host's own bridge addresses and
the test host. The apps are `sdk: docker` FROM demohub/base:bookworm (python3 only).
"""
from __future__ import annotations

import http.server
import ipaddress
import subprocess
import threading
import time
import uuid

import pytest
import requests

from .stack import make_archive, wait_http

pytestmark = pytest.mark.e2e

NETNS = "dh-egress-test"
HOST_SIDE, NS_SIDE = "vdhegr0", "vdhegr1"  # not "dhnet*": that prefix is the project's bridges
HOST_ADDR, TEST_HOST, PORT = "10.199.77.1", "10.199.77.2", 8000

# Tries TCP connections and prints one line per target; never fails the build.
PROBE = r'''
import socket, sys, urllib.request

def addresses():
    seen, lines = set(), open("/proc/net/fib_trie").read().splitlines()
    for i, line in enumerate(lines):
        if "/32 host LOCAL" in line:
            seen.add(lines[i - 1].split()[-1])
    return sorted(a for a in seen if not a.startswith("127."))

def connect(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=4).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "error " + type(exc).__name__

def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=4) as r:
            return "open " + r.read().decode().strip()
    except Exception as exc:
        return "blocked " + type(exc).__name__ + " " + str(getattr(exc, "reason", exc))

def resolve(name):
    try:
        return "ok " + socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError as exc:
        return "failed " + type(exc).__name__

if __name__ == "__main__":
    tag = sys.argv[1]
    print(tag, "addr", " ".join(addresses()), flush=True)
    print(tag, "cgroup", next((l.strip() for l in open("/proc/self/cgroup") if ":pids:" in l), "-"), flush=True)
    for target in sys.argv[2:]:
        if target.startswith("http://"):
            print(tag, "fetch", target, fetch(target), flush=True)
        elif target.startswith("dns:"):
            print(tag, "resolve", target[4:], resolve(target[4:]), flush=True)
        else:
            host, port = target.rsplit(":", 1)
            print(tag, "connect", target, connect(host, port), flush=True)
'''

APP = r'''
import http.server, json, urllib.parse
from probe import connect, fetch

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "url" in query:
            body = fetch(query["url"][0])
        elif "host" in query:
            body = connect(query["host"][0], query["port"][0])
        else:
            body = "ok"
        data = json.dumps({"result": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
'''


def repo(tag: str, targets: list[str]) -> bytes:
    """A docker-SDK space whose build runs the probe against `targets` (the tag keeps the layer
    cache from answering), and whose app probes on request."""
    dockerfile = ("FROM demohub/base:bookworm\nCOPY probe.py app.py /srv/\n"
                  f"RUN python3 /srv/probe.py {tag} {' '.join(targets)}\n"
                  'WORKDIR /srv\nCMD ["python3", "-u", "/srv/app.py"]\n')
    return make_archive({
        "README.md": "---\ntitle: Egress probe\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": dockerfile, "probe.py": PROBE, "app.py": APP,
    })


def build_lines(stack, token: str, owner: str, name: str, tag: str) -> dict[str, str]:
    """The probe's output lines in the build log: {"addr": ..., "connect host:port": result}."""
    log = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/{name}/logs/build").text
    found = {}
    for line in log.splitlines():
        if line.startswith(tag + " "):
            words = line.split(" ", 3)[1:]
            if words[0] in ("connect", "fetch", "resolve"):
                found[f"{words[0]} {words[1]}"] = words[2] if len(words) > 2 else ""
            else:
                found[words[0]] = " ".join(words[1:])
    assert found, f"no probe output for {tag} in the build log:\n{log[-3000:]}"
    return found


def app_probe(space: dict, **query) -> str:
    r = requests.get(space["url"], params=query, timeout=20, headers={"Accept": "application/json"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()["result"]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def test_host(tmp_path_factory):
    """10.199.77.2 in the network namespace dh-egress-test, on a veth pair from this host,
    serving a marker file over HTTP. Everything exists before any packet is sent."""
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)  # a leftover of a killed run
    subprocess.run(["ip", "link", "del", HOST_SIDE], capture_output=True)
    sh("ip", "netns", "add", NETNS)
    server = None
    try:
        sh("ip", "link", "add", HOST_SIDE, "type", "veth", "peer", "name", NS_SIDE)
        sh("ip", "link", "set", NS_SIDE, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", HOST_SIDE)
        sh("ip", "link", "set", HOST_SIDE, "up")
        sh("ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{TEST_HOST}/30", "dev", NS_SIDE)
        sh("ip", "netns", "exec", NETNS, "ip", "link", "set", NS_SIDE, "up")
        sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", NETNS, "ip", "route", "add", "default", "via", HOST_ADDR)
        root = tmp_path_factory.mktemp("egress-host")
        marker = "egress-ok-" + uuid.uuid4().hex[:8]
        (root / "marker").write_text(marker + "\n")
        server = subprocess.Popen(["ip", "netns", "exec", NETNS, "python3", "-m", "http.server", str(PORT),
                                   "--bind", TEST_HOST, "--directory", str(root)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://{TEST_HOST}:{PORT}/marker"
        wait_http(url, timeout=20)
        assert requests.get(url, timeout=5).text.strip() == marker  # the host itself reaches it
        yield {"url": url, "marker": marker}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
        subprocess.run(["ip", "link", "del", HOST_SIDE], capture_output=True)


@pytest.fixture(scope="module")
def host_listener():
    """A TCP service of this test's own on every address of the host: without the firewall any
    container could connect to it through its bridge's gateway address."""
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert requests.get(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5).status_code == 204
    yield server.server_address[1]
    server.shutdown()


def test_build_steps_run_on_their_own_range_and_reach_no_host_service(stack, alice, host_listener):
    owner, token = alice
    gateway = str(ipaddress.ip_network(stack.builds_subnet).network_address + 1)
    ports = [host_listener, stack.hub_port, stack.proxy_port, 5432, 6379]
    tag = "probe-" + uuid.uuid4().hex[:8]
    targets = [f"{gateway}:{p}" for p in ports] + ["dns:pypi.org"]
    space = stack.deploy(token, owner, "buildnet", "docker", repo(tag, targets))
    found = build_lines(stack, token, owner, "buildnet", tag)

    addresses = [ipaddress.ip_address(a) for a in found["addr"].split()]
    assert addresses, found
    for address in addresses:
        assert address in ipaddress.ip_network(stack.builds_subnet), (address, stack.builds_subnet)
        assert address not in ipaddress.ip_network(stack.subnet), (address, stack.subnet)
    for port in ports:
        assert found[f"connect {gateway}:{port}"] == "refused", (port, found)
    # Under the stack's build cgroup, whose pids.max caps every build step together.
    assert f"/{stack.build_cgroup}/" in found["cgroup"], found
    pids_max = open(f"/sys/fs/cgroup/pids/{stack.build_cgroup}/pids.max").read().strip()
    assert pids_max.isdigit(), pids_max

    # Name lookups still work in a build (pip needs them): the host's resolvers stay allowed.
    assert found["resolve pypi.org"].startswith("ok "), found
    # The space itself is on the spaces network, at its slot address.
    assert space["status"] == "RUNNING"
    nets = _space_container(stack, owner, "buildnet").attrs["NetworkSettings"]["Networks"]
    assert list(nets) == [f"demohub-{stack.instance}-spaces"], list(nets)
    address = ipaddress.ip_address(nets[f"demohub-{stack.instance}-spaces"]["IPAddress"])
    assert address in ipaddress.ip_network(stack.subnet)


def _space_container(stack, owner: str, name: str):
    import docker

    found = docker.from_env().containers.list(filters={"label": [f"demohub.instance={stack.instance}",
                                                                 f"demohub.space={owner}/{name}"]})
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def test_private_test_host_is_refused_until_the_operator_allows_it(stack, alice, test_host):
    owner, token = alice
    target = test_host["url"]
    tag = "egress-" + uuid.uuid4().hex[:8]
    started = time.monotonic()
    space = stack.deploy(token, owner, "egress", "docker", repo(tag, [target]))
    # Refused: the build step and the running space.
    assert build_lines(stack, token, owner, "egress", tag)[f"fetch {target}"].startswith("blocked "), \
        build_lines(stack, token, owner, "egress", tag)
    assert app_probe(space, url=target).startswith("blocked ")
    assert app_probe(space, host=TEST_HOST, port=str(PORT)) == "refused"

    # The operator allows the test host (EGRESS_ALLOW, as `make up` applies it) for this stack.
    stack.isolate(stack.subnet, stack.builds_subnet, egress_allow=f"{TEST_HOST}:{PORT}")
    try:
        assert app_probe(space, url=target) == "open " + test_host["marker"]
        tag2 = "egress-" + uuid.uuid4().hex[:8]
        r = stack.upload(token, owner, "egress", repo(tag2, [target]))
        assert r.status_code == 202, r.text
        stack.wait_status(token, owner, "egress", "RUNNING", revision=r.json()["number"], timeout=300)
        assert build_lines(stack, token, owner, "egress", tag2)[f"fetch {target}"] == "open " + test_host["marker"]
        # Only that port: another port of the same host stays refused.
        assert app_probe(space, host=TEST_HOST, port="8001") == "refused"
    finally:
        stack.isolate(stack.subnet, stack.builds_subnet, egress_allow="")  # the allow rules go
    assert app_probe(space, url=target).startswith("blocked ")
    print(f"egress: refused, allowed, refused again in {time.monotonic() - started:.0f} s")


def test_without_the_firewall_nothing_runs_and_the_hub_says_so(stack, alice):
    owner, token = alice
    r = requests.get(f"{stack.hub_url}/readyz", timeout=10)
    body = r.json()
    assert body["isolation"] == "isolated" and set(body["checks"]) == {"database", "broker", "engine"}

    # A builds worker that finds no firewall state refuses to build.
    missing = str(stack.data_dir / "no-firewall.json")
    stack.stop("worker-builds")
    stack.settings["ISOLATION_STATE_FILE"] = missing
    stack.start_builds_worker()
    try:
        stack.create_space(token, "nofirewall", "docker")
        r = stack.upload(token, owner, "nofirewall", repo("nf-" + uuid.uuid4().hex[:8], []))
        assert r.status_code == 202, r.text
        s = stack.wait_status(token, owner, "nofirewall", "BUILD_ERROR", timeout=120)
        assert "network firewall is not installed" in s["error"] and "ALLOW_UNISOLATED=true" in s["error"], s

        # The operator's switch: the page and /readyz say that spaces run without the firewall.
        stack.settings["ALLOW_UNISOLATED"] = "true"
        stack.stop("web")
        stack.start_web()
        wait_http(stack.hub_url + "/readyz", timeout=60)
        assert requests.get(f"{stack.hub_url}/readyz", timeout=10).json()["isolation"] == "unisolated"
        page = requests.get(f"{stack.hub_url}/spaces/{owner}/nofirewall", timeout=10).text
        assert 'id="unisolated"' in page and "without its network firewall" in page
    finally:
        stack.settings.pop("ISOLATION_STATE_FILE", None)
        stack.settings.pop("ALLOW_UNISOLATED", None)
        for name, start in (("worker-builds", stack.start_builds_worker), ("web", stack.start_web)):
            stack.stop(name)
            start()
        wait_http(stack.hub_url + "/api/spaces", timeout=60)
    page = requests.get(f"{stack.hub_url}/spaces/{owner}/nofirewall", timeout=10).text
    assert 'id="unisolated"' not in page
