"""Network isolation (issue 15, findings 5 and 6): the EGRESS_ALLOW parser, the firewall state
the hub reads, the refusal to run anything without the firewall, the builds network and limits,
and GET /readyz. The rules themselves are proven on the real stack (tests/e2e/test_egress.py).
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from unittest import mock

import docker
import pytest

from runner import egress
from runner.backends.docker import DockerBackend, bridge_name
from runner.exceptions import NotIsolated

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------------- EGRESS_ALLOW
def test_allow_list_entries_and_their_spellings():
    entries = egress.parse_allow("10.199.77.2:8000, 192.168.0.0/16\n[fd00::/8]:443  fd00::1 10.199.77.2:8000")
    assert [str(e) for e in entries] == ["10.199.77.2/32:8000", "192.168.0.0/16", "[fd00::/8]:443", "fd00::1/128"]
    assert entries[0].network == ipaddress.ip_network("10.199.77.2/32") and entries[0].port == 8000
    assert entries[1].port is None  # every port
    assert egress.parse_allow("") == [] and egress.parse_allow(" , ") == []


@pytest.mark.parametrize("value, words", [
    ("10.0.0.1/8", ["'10.0.0.1/8'", "host bits", "10.0.0.0/8"]),
    ("10.1.2.3:99999", ["'10.1.2.3:99999'", "port", "65535"]),
    ("10.1.2.3:http", ["'10.1.2.3:http'", "port"]),
    ("10.1.2.3:", ["port"]),
    ("db.internal:5432", ["'db.internal:5432'", "not an IP address", "CIDR[:port]"]),
    ("10.1.2.3/33", ["'10.1.2.3/33'", "not an IP address"]),
    ("[fd00::1]:0", ["port"]),
    ("10.0.0.0/8, nonsense", ["'nonsense'"]),
])
def test_a_bad_allow_entry_is_named_with_what_is_wrong(value, words):
    with pytest.raises(egress.EgressConfigError) as caught:
        egress.parse_allow(value)
    message = str(caught.value)
    assert message.startswith("EGRESS_ALLOW entry ")
    for word in words:
        assert word in message, message


def test_the_script_interface_prints_rules_input_or_refuses():
    """scripts/isolate.sh reads the list through this, so both sides parse it the same way."""
    script = os.path.join(ROOT, "runner", "egress.py")
    out = subprocess.run([sys.executable, script, "allow", "10.199.77.2:8000,172.16.0.0/12"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["10.199.77.2/32 8000", "172.16.0.0/12 -"]
    bad = subprocess.run([sys.executable, script, "allow", "10.0.0.1/8"], capture_output=True, text=True)
    assert bad.returncode == 2 and "host bits" in bad.stderr
    deny = subprocess.run([sys.executable, script, "deny"], capture_output=True, text=True, check=True).stdout
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10"):
        assert net in deny.split()


def test_the_firewall_script_refuses_a_bad_allow_list_before_changing_anything(tmp_path):
    state = tmp_path / "isolation.json"
    env = {**os.environ, "EGRESS_ALLOW": "10.1.2.3:8000, 10.0.0.1/8", "ISOLATION_STATE_FILE": str(state)}
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts", "isolate.sh"), "10.197.5.0/24"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "EGRESS_ALLOW entry '10.0.0.1/8'" in done.stderr and "nothing was changed" in done.stderr
    assert not state.exists()


def _settings_error(**env) -> str:
    """Import the hub's settings in a fresh interpreter with `env`; return what it says."""
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", "PROXY_SHARED_SECRET": "x", **env}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, "the settings accepted it"
    return done.stderr.strip().splitlines()[-1]


def test_the_hub_refuses_a_bad_allow_list_or_overlapping_builds_subnet_at_start():
    assert "EGRESS_ALLOW entry '10.1.2.3:0'" in _settings_error(EGRESS_ALLOW="10.1.2.3:0")
    message = _settings_error(SPACES_SUBNET="10.213.0.0/16", BUILDS_SUBNET="10.213.128.0/20")
    assert "BUILDS_SUBNET=10.213.128.0/20 overlaps SPACES_SUBNET" in message


# ----------------------------------------------------------------------------- firewall state
SUBNETS = ["10.216.16.0/20", "10.217.0.0/20"]


def _state(tmp_path, **state):
    path = tmp_path / "isolation.json"
    path.write_text(json.dumps(state))
    return path


def test_isolation_state_reads_what_the_script_wrote(tmp_path):
    missing = egress.isolation_state(tmp_path / "nothing.json", SUBNETS)
    assert not missing.isolated and "has not run" in missing.reason
    failed = egress.isolation_state(_state(tmp_path, isolated=False, reason="iptables is not usable"), SUBNETS)
    assert not failed.isolated and failed.reason == "iptables is not usable"
    other = egress.isolation_state(_state(tmp_path, isolated=True, subnets=["10.216.0.0/16"]), SUBNETS)
    assert not other.isolated and "does not cover" in other.reason
    ok = egress.isolation_state(_state(tmp_path, isolated=True, subnets=["10.216.0.0/13"]), SUBNETS)
    assert ok.isolated
    (tmp_path / "isolation.json").write_text("{not json")
    assert not egress.isolation_state(tmp_path / "isolation.json", SUBNETS).isolated


def _backend(tmp_path, *, allow_unisolated=False, state_file=None) -> DockerBackend:
    backend = DockerBackend(instance="unit", network="demohub-unit-spaces", subnet=SUBNETS[0],
                            builds_network="demohub-unit-builds", builds_subnet=SUBNETS[1],
                            base_image="demohub/base:bookworm", build_cpus=1.5, build_cpu_shares=256,
                            build_cgroup_parent="demohub-unit-builds",
                            isolation_file=str(state_file or tmp_path / "isolation.json"),
                            allow_unisolated=allow_unisolated)
    backend._client = mock.MagicMock(spec=docker.DockerClient)
    backend._client.api = mock.MagicMock()  # an instance attribute, which spec= does not see
    return backend


def test_without_the_firewall_nothing_untrusted_runs(tmp_path):
    from runner.backends.base import BuildSpec, RunSpec

    backend = _backend(tmp_path)
    run = RunSpec(name="dh-unit-x-a", image="img", address="10.216.16.20", port=7860, env={}, labels={},
                  read_only_root=True, memory="1g", cpus=1.0, pids=64, tmpfs_size="64m")
    with pytest.raises(NotIsolated, match="ALLOW_UNISOLATED=true"):
        backend.start(run)
    build = BuildSpec(space="o/x", revision=1, sdk="docker", snapshot=tmp_path, image="img")
    with pytest.raises(NotIsolated, match="scripts/isolate.sh"):
        backend.build(build, log=lambda _: None, should_continue=lambda: True)
    # Refused before the engine is asked anything.
    assert backend.client.mock_calls == [] and backend.client.api.mock_calls == []

    # The operator's explicit switch lets it run (the engine is asked to start the container).
    unisolated = _backend(tmp_path, allow_unisolated=True)
    unisolated.client.networks.get.return_value = mock.Mock()
    unisolated.client.containers.get.side_effect = docker.errors.NotFound("none")
    unisolated.client.api.create_container.return_value = {"Id": "c1"}
    unisolated.start(run)
    unisolated.client.api.start.assert_called_once_with("c1")

    # And so does a firewall that covers both networks.
    covered = _backend(tmp_path, state_file=_state(tmp_path, isolated=True, subnets=["10.216.0.0/13"]))
    covered.require_isolation()


def test_a_refused_start_is_a_runtime_error_saying_what_to_do(api, make_user, make_space, upload, repo, hub):
    olive = make_user("olive")
    space = make_space(olive, "demo", sdk="gradio")
    refusal = NotIsolated("this hub's network firewall is not installed (x), so it runs no build and "
                          "no space: ... or set ALLOW_UNISOLATED=true")
    with mock.patch.object(hub.backend, "start", side_effect=refusal):
        assert upload(api(olive), space, repo.gradio).status_code == 202
    body = api(olive).get("/api/spaces/olive/demo").json()
    assert body["status"] == "RUNTIME_ERROR"
    assert "network firewall is not installed" in body["error"] and "ALLOW_UNISOLATED" in body["error"]


# ----------------------------------------------------------------------------- builds network
def test_builds_get_their_own_bridge_and_range(tmp_path):
    backend = _backend(tmp_path)
    backend.client.networks.get.side_effect = docker.errors.NotFound("none")
    backend.ensure_ready()
    made = {c.args[0]: c.kwargs for c in backend.client.networks.create.call_args_list}
    assert set(made) == {"demohub-unit-spaces", "demohub-unit-builds"}
    builds = made["demohub-unit-builds"]
    assert builds["ipam"]["Config"][0]["Subnet"] == SUBNETS[1]
    assert builds["options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert builds["options"]["com.docker.network.bridge.name"] == bridge_name("demohub-unit-builds")
    assert bridge_name("demohub-unit-builds").startswith("dhnet") and len(bridge_name("x" * 300)) <= 15
    assert bridge_name("demohub-unit-builds") != bridge_name("demohub-unit-spaces")


def test_build_steps_run_on_the_builds_network_with_limits(tmp_path):
    backend = _backend(tmp_path)
    api = backend.client.api
    api.hooks = {"response": []}
    api.params = {}
    seen = {}

    def build(**kwargs):
        seen.update(kwargs, session_params=dict(api.params))
        return iter([{"stream": "Step 1/1 : FROM x\n"}, {"aux": {"ID": "sha256:abc"}}])

    api.build.side_effect = build
    assert backend._stream_build(log=lambda _: None, should_continue=lambda: True, path="/x") == "sha256:abc"
    assert seen["network_mode"] == "demohub-unit-builds"
    assert seen["container_limits"]["cpushares"] == 256
    assert seen["container_limits"]["memory"] == seen["container_limits"]["memswap"]
    assert seen["session_params"] == {"cpuperiod": 100_000, "cpuquota": 150_000,
                                      "cgroupparent": "demohub-unit-builds"}
    assert api.params == {}  # only the build's own POST carried them


# ----------------------------------------------------------------------------- /readyz
@pytest.mark.django_db
def test_readyz_names_the_failing_part_and_the_isolation_state(client, settings, tmp_path):
    from spaces.lifecycle import readiness

    settings.DEMOHUB_INSTANCE = f"unit-readyz-{os.getpid()}"
    settings.RUNNER_BACKEND = "runner.backends.docker.DockerBackend"
    settings.ISOLATION_STATE_FILE = str(tmp_path / "isolation.json")
    settings.ALLOW_UNISOLATED = False
    readiness._redis().delete(readiness._engine_key())

    r = client.get("/readyz")  # no lifecycle worker has seen the engine
    assert r.status_code == 503 and r["Retry-After"] == "5"
    assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "broker": "ok", "engine": "failing"},
                        "failing": ["engine"], "isolation": "refusing",
                        "message": "not ready: the container engine (as a lifecycle worker last saw it) does not answer"}

    readiness.engine_seen()
    settings.ALLOW_UNISOLATED = True
    r = client.get("/readyz")
    assert r.status_code == 200 and "Retry-After" not in r
    assert r.json()["status"] == "ready" and r.json()["isolation"] == "unisolated"

    _state(tmp_path, isolated=True, subnets=[settings.SPACES_SUBNET, settings.BUILDS_SUBNET])
    assert client.get("/readyz").json()["isolation"] == "isolated"

    readiness._redis().delete(readiness._engine_key())
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["failing"] == ["broker"]
    assert r.json()["checks"]["engine"] == "unknown"


@pytest.mark.django_db
def test_readyz_answers_503_when_the_database_is_down(client, settings):
    from django.db import OperationalError

    from spaces.lifecycle import readiness

    with mock.patch.object(readiness.connection, "cursor", side_effect=OperationalError("gone")):
        r = client.get("/readyz")
    assert r.status_code == 503 and r["Retry-After"] == "5"
    assert "database" in r.json()["failing"]
    assert "gone" not in r.content.decode()  # nothing of the error leaks
