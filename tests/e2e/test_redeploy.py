"""Zero-downtime redeploys under load, failed and cancelled revisions, housekeeping and deletion,
on the real stack (design.md §2, issue 4): every request goes through the real nginx proxy."""
from __future__ import annotations

import time

import docker
import pytest

from .load import Load, revision_app

pytestmark = pytest.mark.e2e

NAME = "zero"


def revision_numbers(stack, token, owner) -> dict[int, str]:
    r = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/{NAME}/revisions?page_size=100")
    assert r.status_code == 200, r.text
    return {rev["number"]: rev["status"] for rev in r.json()["results"]}


def engine_objects(stack, owner) -> tuple[list, list]:
    client = docker.from_env()
    flt = {"label": [f"demohub.instance={stack.instance}", f"demohub.space={owner}/{NAME}"]}
    return client.containers.list(all=True, filters=flt), client.images.list(filters=flt)


def watch_status(stack, token, owner, until, *, timeout: float = 300) -> list[tuple[float, str]]:
    """Poll the space until until(space) is true; return its status changes as (time, status)."""
    seen: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        space = stack.space(token, owner, NAME)
        if not seen or seen[-1][1] != space["status"]:
            seen.append((time.monotonic(), space["status"]))
        if until(space):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"status never settled: {seen}")


@pytest.fixture(scope="module")
def zero_space(stack, alice):
    owner, token = alice
    space = stack.deploy(token, owner, NAME, "docker", revision_app("v1"))
    return owner, token, space


def test_redeploy_under_load_has_zero_failed_requests(stack, zero_space):
    owner, token, space = zero_space
    # A stream of 25 s opened before the upload stays open across the route switch.
    load = Load(stack.proxy_port, space["url"], getters=3, posters=1, stream_events=125).start()
    generation = (stack.data_dir / "proxy" / "generation").read_text()
    try:
        load.wait_for("v1", timeout=30)
        time.sleep(1)
        uploaded = time.monotonic()
        r = stack.upload(token, owner, NAME, revision_app("v2"))
        assert r.status_code == 202, r.text
        statuses = watch_status(stack, token, owner,
                                lambda s: s["status"] == "RUNNING" and s["running_revision"] == 2)
        switched = load.wait_for("v2", after=uploaded, timeout=60)
        time.sleep(2)  # load on the new revision after the switch, then the drain
        _, drained = watch_old_container_gone(stack, owner, timeout=60)
        time.sleep(1)
    finally:
        load.stop()
    print(f"\nupload -> first v2 answer {switched - uploaded:.2f} s; statuses "
          f"{[(round(t - uploaded, 2), s) for t, s in statuses]}; {load.summary()}")

    assert load.failures() == [], load.summary()
    # The switch moved the slot flag only: no proxy reload (which resets keep-alive requests).
    assert (stack.data_dir / "proxy" / "generation").read_text() == generation
    # While the new revision built and started, the old one served (RUNNING_BUILDING first).
    assert statuses[0][1] == "RUNNING_BUILDING", statuses
    building_until = next(t for t, s in statuses if s != "RUNNING_BUILDING")
    answers = load.snapshot()
    assert any(a.rev == "v1" and uploaded < a.at < building_until for a in answers)
    # Answers switched from v1 to v2: the last second is v2 only, on every kind of request.
    last = [a for a in answers if a.at > answers[-1].at - 1.0]
    assert last and {a.rev for a in last} == {"v2"}, last[:5]
    assert {a.kind for a in answers if a.rev == "v2"} == {"get", "post"}
    # The stream opened on v1 before the switch ran to its end on v1: the old container was
    # stopped only after it finished (drain), not under it.
    stream = load.stream
    assert stream.failure == "" and stream.ended, stream
    assert len(stream.events) == 125 and all(e.startswith("rev=v1 ") for e in stream.events)
    assert drained >= stream.started + 125 * 0.2 - 1


def watch_old_container_gone(stack, owner, *, timeout: float) -> tuple[list, float]:
    """Wait until the space has one container left (the old one drained and was removed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        containers, _ = engine_objects(stack, owner)
        if len(containers) == 1:
            return containers, time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"the old container was never stopped: {[c.name for c in containers]}")


def test_new_revision_failing_its_health_check_leaves_the_old_one_serving(stack, zero_space):
    owner, token, space = zero_space
    load = Load(stack.proxy_port, space["url"], getters=2, posters=1).start()
    try:
        load.wait_for("v2", timeout=30)
        uploaded = time.monotonic()
        r = stack.upload(token, owner, NAME, revision_app(
            "v3", start="print('loading the model failed: weights.bin is missing', flush=True)\n"
                        "sys.exit(3)\n"))
        assert r.status_code == 202, r.text
        number = r.json()["number"]
        statuses = watch_status(stack, token, owner, lambda s: s["status"] == "RUNNING" and s["error"])
        time.sleep(1)
    finally:
        load.stop()
    print(f"\nstatuses {[(round(t - uploaded, 2), s) for t, s in statuses]}; {load.summary()}")

    assert load.failures() == [], load.summary()
    assert {a.rev for a in load.snapshot()} == {"v2"}
    final = stack.space(token, owner, NAME)
    assert final["running_revision"] == 2 and final["revision"] == number
    assert f"revision {number} failed to start" in final["error"]
    assert "exited with code 3" in final["error"] and "weights.bin is missing" in final["error"]
    containers, _ = engine_objects(stack, owner)
    # Only revision 2 runs; the failed one's container is left exited, for housekeeping.
    assert [c.labels["demohub.revision"] for c in containers if c.status == "running"] == ["2"]


def test_newer_upload_cancels_a_build_in_progress(stack, zero_space):
    owner, token, space = zero_space
    load = Load(stack.proxy_port, space["url"], getters=1, posters=0).start()
    try:
        r = stack.upload(token, owner, NAME, revision_app("slow", dockerfile_extra="RUN sleep 240\n"))
        slow = r.json()["number"]
        deadline = time.monotonic() + 60
        log = ""
        while "sleep 240" not in log and time.monotonic() < deadline:
            log = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/{NAME}/logs/build").text
            time.sleep(0.3)
        assert "sleep 240" in log, log  # the slow step is running in the engine now
        assert revision_numbers(stack, token, owner)[slow] == "building"
        assert stack.space(token, owner, NAME)["status"] == "RUNNING_BUILDING"
        uploaded = time.monotonic()
        r = stack.upload(token, owner, NAME, revision_app("v5"))
        fast = r.json()["number"]
        stack.wait_status(token, owner, NAME, "RUNNING", revision=fast, timeout=200)
        live = time.monotonic() - uploaded
        load.wait_for("v5", after=uploaded, timeout=30)
    finally:
        load.stop()
    print(f"\nnewer upload live after {live:.1f} s; {load.summary()}")
    assert load.failures() == [], load.summary()
    statuses = revision_numbers(stack, token, owner)
    assert statuses[slow] == "cancelled" and statuses[fast] == "succeeded"
    # The engine abandoned the slow build at once, not after its 240 s step.
    assert live < 90
    build_containers = docker.from_env().containers.list(filters={"status": "running"})
    assert not any("sleep 240" in " ".join(c.attrs["Config"].get("Cmd") or []) for c in build_containers)


def test_housekeeping_keeps_the_running_and_previous_images_then_delete_removes_everything(stack, zero_space):
    owner, token, space = zero_space
    assert stack.space(token, owner, NAME)["running_revision"] == 5
    watch_old_container_gone(stack, owner, timeout=60)  # revision 2's, once drained
    out = stack.manage("housekeeping")
    print("\n" + out)
    containers, images = engine_objects(stack, owner)
    kept = sorted(img.labels["demohub.revision"] for img in images)
    # 5 runs; 2 is the previous one that ran (3 failed to start, 4 was cancelled); 1 and 3 go.
    assert kept == ["2", "5"], (kept, out)
    assert [c.labels["demohub.revision"] for c in containers] == ["5"]
    assert stack.get_app(space["url"]).text.startswith("rev=v5")

    r = stack.api(token).delete(f"{stack.hub_url}/api/spaces/{owner}/{NAME}")
    assert r.status_code == 202, r.text
    assert stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/{NAME}").status_code == 404
    label = space["url"].split("//")[1].split(".")[0]
    route = stack.data_dir / "proxy" / "routes" / f"{label}.conf"
    deadline = time.monotonic() + 60  # the purge runs on the lifecycle worker
    while time.monotonic() < deadline and (any(engine_objects(stack, owner)) or route.exists()):
        time.sleep(0.3)
    containers, images = engine_objects(stack, owner)
    assert containers == [] and images == []
    assert not (stack.data_dir / "proxy" / "routes" / f"{label}.conf").exists()
    assert not (stack.data_dir / "proxy" / "slots" / f"{label}.b").exists()
    resp = stack.get_app(space["url"])
    assert not resp.text.startswith("rev=")
