"""spaces/lifecycle/housekeeping.py: which images, layers and stopped containers go and which stay; what
deleting a space removes; a burst of uploads is queued, never refused (fake backend)."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path
from unittest import mock

import docker
import pytest
from django.conf import settings

from runner.backends.base import ContainerState
from runner.backends.docker import DockerBackend
from runner.backends.fake import BASE_LAYER
from spaces.builds.services import image_name
from spaces.catalog.services import revision_create
from spaces.lifecycle import housekeeping, logs, redeploy
from spaces.lifecycle.deletion import space_delete
from spaces.lifecycle.routes import container_name, proxy_config
from spaces.records.models import Revision, Space

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def push(repo, run_on_commit):
    def do(space, files, by, *, run=True):
        data = io.BytesIO(repo.targz(files))
        if run:
            with run_on_commit():
                rev = revision_create(space=space, archive=data, created_by=by)
        else:
            rev = revision_create(space=space, archive=data, created_by=by)
        rev.refresh_from_db()
        return rev

    return do


@pytest.fixture
def serving(olive, make_space, push, repo, app_server, hub):
    """deploy(n) uploads n revisions of a gradio space whose app answers on both slots."""
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    app_server(space.slot_address("b"), port)

    def deploy(n: int = 1):
        for _ in range(n):
            files = dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", app_port=port),
                                         "app.py": f"print({time.time()})\n"})
            push(space, files, olive)
        return Space.objects.select_related("owner", "running_revision").get(pk=space.pk)

    return deploy


def image_numbers(backend, space) -> list[int]:
    return sorted(int(labels["demohub.revision"]) for labels in backend.images.values()
                  if labels["demohub.space"] == space.full_name)


def space_label(space) -> str:
    return Space.objects.get(pk=space.pk).label


@pytest.fixture(autouse=True)
def _no_proxy_waits(monkeypatch):
    """No nginx here: a slot switch is seen at once and there is nothing to drain."""
    from runner import proxy

    monkeypatch.setattr(proxy, "SLOT_FLAG_CACHE_SECONDS", 0)
    monkeypatch.setattr(redeploy, "DRAIN_SETTLE", 0.0)


@pytest.fixture(autouse=True)
def _forget_layers():
    yield
    logs.client().delete(housekeeping._key("layers"), housekeeping._key("lock"))


# ------------------------------------------------------------------------------ images
def test_keeps_the_running_and_the_previous_revision(serving, hub):
    space = serving(4)
    assert space.running_revision.number == 4
    assert image_numbers(hub.backend, space) == [1, 2, 3, 4]
    done = housekeeping.housekeeping_run()
    assert image_numbers(hub.backend, space) == [3, 4]
    assert sorted(done["images"]) == sorted(image_name(space, n) for n in (1, 2))
    # Running again: nothing more to do.
    assert housekeeping.housekeeping_run()["images"] == []


def test_previous_means_the_last_one_that_ran_not_one_that_failed_to_start(serving, hub):
    serving(2)
    hub.backend.fail_start = True
    space = serving(1)  # revision 3 built, failed its start: 2 keeps serving
    hub.backend.fail_start = False
    assert space.running_revision.number == 2 and space.latest_revision.number == 3
    housekeeping.housekeeping_run()
    # 2 runs; 1 is the previous that ran; 3 is the latest (a restart or rollback may want it).
    assert image_numbers(hub.backend, space) == [1, 2, 3]
    space = serving(1)  # 4 runs now: 3 never ran, so 2 is the one to go back to
    housekeeping.housekeeping_run()
    assert image_numbers(hub.backend, space) == [2, 4]


def test_revisions_queued_building_or_about_to_start_keep_their_images(serving, hub, olive, push, repo):
    space = serving(3)
    # A revision being built has no image yet, but an older one rebuilt under its number
    # (factory rebuild) or a start in progress must never lose theirs.
    rev4 = push(space, repo.gradio, olive, run=False)
    hub.backend.images[image_name(space, 4)] = {"demohub.space": space.full_name, "demohub.revision": "4"}
    Revision.objects.filter(pk=rev4.pk).update(status=Revision.Status.BUILDING)
    housekeeping.housekeeping_run()
    assert image_numbers(hub.backend, space) == [2, 3, 4]
    # Built and not started yet (the start task is on its way): kept too.
    Revision.objects.filter(pk=rev4.pk).update(status=Revision.Status.SUCCEEDED)
    housekeeping.housekeeping_run()
    assert image_numbers(hub.backend, space) == [2, 3, 4]


def test_an_image_a_container_uses_stays_whatever_the_policy(serving, hub):
    space = serving(3)
    # Revision 1 still runs somewhere (an old slot draining, say): the engine refuses its
    # removal, and the policy does not even ask.
    active = hub.backend.containers[container_name(space, space.active_slot)]
    hub.backend.containers["dh-draining"] = {**active, "spec": mock.Mock(
        labels={**active["spec"].labels, "demohub.revision": "1"}, image=image_name(space, 1))}
    housekeeping.housekeeping_run()
    assert image_numbers(hub.backend, space) == [1, 2, 3]
    # The engine's own refusal is handled too: remove_image says no, nothing breaks.
    assert hub.backend.remove_image(image_name(space, 1)) is False


def test_images_of_a_deleted_space_go_and_of_a_deleting_one_are_left_to_its_purge(serving, hub, olive, make_space):
    space = serving(2)
    hub.backend.images["demohub-x/gone:r7"] = {"demohub.space": "olive/gone", "demohub.revision": "7"}
    housekeeping.housekeeping_run()
    assert "demohub-x/gone:r7" not in hub.backend.images  # no such space any more
    Space.objects.filter(pk=space.pk).update(status="DELETING")
    hub.backend.images[image_name(space, 1)] = {"demohub.space": space.full_name, "demohub.revision": "1"}
    housekeeping.housekeeping_run()
    assert image_numbers(hub.backend, space) == [1, 2]


def test_images_that_are_not_revisions_are_never_touched(hub):
    hub.backend.images["demohub/sdk-gradio:6.31.0"] = {"demohub.role": "sdk"}
    hub.backend.images["demohub-x/odd:latest"] = {"demohub.space": "olive/odd", "demohub.revision": "latest"}
    housekeeping.housekeeping_run()
    assert set(hub.backend.images) == {"demohub/sdk-gradio:6.31.0", "demohub-x/odd:latest"}


# ------------------------------------------------------------------------------ layers
def test_layers_of_removed_images_go_once_no_build_runs(serving, hub, olive, push, repo):
    space = serving(3)
    layer1 = hub.backend.image_parents[image_name(space, 1)]
    # A build is queued: the image goes (noprune), its layer waits (a build may reuse it).
    queued = push(space, repo.gradio, olive, run=False)
    done = housekeeping.housekeeping_run()
    assert done["images"] == [image_name(space, 1)] and done["layers"] == []
    assert layer1 in hub.backend.layers
    Revision.objects.filter(pk=queued.pk).update(status=Revision.Status.CANCELLED)
    assert housekeeping.housekeeping_run()["layers"] == [layer1]
    assert layer1 not in hub.backend.layers and BASE_LAYER not in hub.backend.layers
    assert logs.client().scard(housekeeping._key("layers")) == 0


def test_a_layer_something_is_built_on_stays(serving, hub):
    space = serving(3)
    layer1 = hub.backend.image_parents[image_name(space, 1)]
    hub.backend.image_parents["another-space:r1"] = layer1  # a cache hit of another build
    hub.backend.images["another-space:r1"] = {"demohub.space": "stan/other", "demohub.revision": "1"}
    housekeeping.layers_remember([layer1, BASE_LAYER])
    assert housekeeping.layers_prune() == []
    assert layer1 in hub.backend.layers


# ------------------------------------------------------------------------------ containers
def _exited(backend, name, space_name, *, ago: float, running=False, paused=False):
    spec = mock.Mock(labels={"demohub.space": space_name, "demohub.revision": "1", "demohub.slot": "a"},
                     image="img")
    backend.containers[name] = {"spec": spec, "running": running, "paused": paused, "exit_code": None if running else 1,
                                "logs": [], "created_at": time.time() - ago - 5,
                                "finished_at": None if running else time.time() - ago}


def test_stopped_containers_go_after_the_grace_and_running_ones_never(serving, hub):
    space = serving(1)
    grace = settings.HOUSEKEEPING_CONTAINER_GRACE
    _exited(hub.backend, "recent", space.full_name, ago=grace / 2)
    _exited(hub.backend, "old", space.full_name, ago=grace + 1)
    _exited(hub.backend, "old-running", space.full_name, ago=grace + 1, running=True)
    _exited(hub.backend, "old-frozen", space.full_name, ago=grace + 1, running=True, paused=True)
    _exited(hub.backend, "orphan", "olive/gone", ago=1)
    active = container_name(space, space.active_slot)
    done = housekeeping.housekeeping_run()
    assert sorted(done["containers"]) == ["old", "orphan"]
    assert set(hub.backend.containers) == {"recent", "old-running", "old-frozen", active}


def test_a_container_being_created_or_draining_stays(serving, hub):
    space = serving(1)
    grace = settings.HOUSEKEEPING_CONTAINER_GRACE
    _exited(hub.backend, "starting", space.full_name, ago=0)
    hub.backend.containers["starting"]["finished_at"] = None  # created, not started yet
    _exited(hub.backend, "draining", space.full_name, ago=grace + 1)
    redeploy.draining_begin("draining")
    try:
        assert housekeeping.housekeeping_run()["containers"] == []
    finally:
        redeploy.draining_end("draining")


def test_one_round_at_a_time(serving, hub):
    serving(3)
    lock = logs.client().lock(housekeeping._key("lock"), timeout=60)
    assert lock.acquire(blocking=False)
    try:
        assert housekeeping.housekeeping_run() == {}
    finally:
        lock.release()


def test_housekeeping_runs_on_the_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["housekeeping"]
    assert entry == {"task": "spaces.tasks.housekeeping_task", "schedule": settings.HOUSEKEEPING_INTERVAL}
    assert settings.HOUSEKEEPING_INTERVAL == 600.0  # the documented default (README)


# ------------------------------------------------------------------------------ deleting a space
def test_deleting_a_space_removes_containers_images_layers_route_and_files(serving, hub, olive, run_on_commit):
    space = serving(2)  # slot b serves revision 2 (the route's flag says so)
    config = proxy_config()
    label = space.label
    snapshots = set(Revision.objects.filter(space=space).values_list("snapshot_path", flat=True))
    layers = {hub.backend.image_parents[image_name(space, n)] for n in (1, 2)}
    assert (config.slots_dir / f"{label}.b").exists() and (config.routes_dir / f"{label}.conf").exists()
    assert all(Path(p).is_dir() for p in snapshots)
    with run_on_commit():
        space_delete(space=Space.objects.get(pk=space.pk))
    assert not Space.objects.filter(pk=space.pk).exists()
    assert not any(c["spec"].labels.get("demohub.space") == space.full_name for c in hub.backend.containers.values())
    assert image_numbers(hub.backend, space) == []
    assert not layers & set(hub.backend.layers)
    assert not (config.routes_dir / f"{label}.conf").exists() and not (config.slots_dir / f"{label}.b").exists()
    assert not any(Path(p).exists() for p in snapshots)


# ------------------------------------------------------------------------------ the Docker backend's part
@pytest.fixture
def docker_backend():
    b = DockerBackend(instance="unit", network="demohub-unit-spaces", subnet="10.213.0.0/16",
                      base_image="demohub/base:bookworm")
    b._client = mock.MagicMock(spec=docker.DockerClient)
    return b


def test_docker_lists_only_this_installations_images(docker_backend):
    docker_backend.client.images.list.return_value = [mock.Mock(
        id="sha256:1", tags=["demohub-unit/x:r1"], labels={"demohub.revision": "1"},
        attrs={"Parent": "sha256:p", "Created": "2026-11-26T05:00:00.5Z"})]
    [image] = docker_backend.list_images()
    docker_backend.client.images.list.assert_called_once_with(filters={"label": "demohub.instance=unit"})
    assert image.parent == "sha256:p" and image.created_at == pytest.approx(1795669200.5)


def test_docker_prunes_a_layer_chain_up_to_a_shared_or_named_image(docker_backend):
    chain = {"sha256:top": ([], "sha256:mid"), "sha256:mid": ([], "sha256:shared"),
             "sha256:shared": ([], "sha256:base"), "sha256:base": (["demohub/base:bookworm"], "")}
    docker_backend.client.images.get.side_effect = lambda i: mock.Mock(tags=chain[i][0], attrs={"Parent": chain[i][1]})

    def remove(image_id, noprune):
        assert noprune is True
        if image_id == "sha256:shared":
            raise docker.errors.APIError("conflict: image has dependent child images")

    docker_backend.client.images.remove.side_effect = remove
    assert docker_backend.prune_layers(["sha256:top"]) == ["sha256:top", "sha256:mid"]
    removed = [c.args[0] for c in docker_backend.client.images.remove.call_args_list]
    assert "sha256:base" not in removed


def test_docker_removes_only_stopped_containers(docker_backend):
    docker_backend.client.api = mock.MagicMock()
    docker_backend.client.api.remove_container.side_effect = docker.errors.APIError(
        "conflict", response=mock.Mock(status_code=409))
    assert docker_backend.remove_container("abc") is False
    docker_backend.client.api.remove_container.assert_called_once_with("abc", force=False, v=True)  # its anonymous volumes too


# ------------------------------------------------------------------------------ builds are bounded, uploads queue
def test_a_burst_of_uploads_is_queued_then_built_none_refused(olive, make_space, upload, api, repo, hub,
                                                              django_capture_on_commit_callbacks, settings):
    # Within the user's quotas (spaces/lifecycle/quotas.py, tested in test_quotas.py), which are off here.
    settings.QUOTA_QUEUED_BUILDS_PER_USER = settings.QUOTA_RUNNING_SPACES_PER_USER = 0
    client = api(olive)
    spaces = [make_space(olive, f"burst{i}", sdk="gradio") for i in range(8)]
    with django_capture_on_commit_callbacks(execute=False) as queued_work:
        answers = [upload(client, space, repo.gradio, run=False) for space in spaces]
    assert [a.status_code for a in answers] == [202] * 8, [a.content for a in answers]
    assert set(Revision.objects.filter(space__in=spaces).values_list("status", flat=True)) == {"queued"}
    assert set(Space.objects.filter(pk__in=[s.pk for s in spaces]).values_list("status", flat=True)) == {"BUILDING"}
    for callback in queued_work:  # the workers take them one after the other
        callback()
    assert list(Revision.objects.filter(space__in=spaces).values_list("status", flat=True)) == ["succeeded"] * 8
    assert len(hub.backend.builds) == 8


def test_builds_run_on_their_own_bounded_worker():
    """At most BUILD_CONCURRENCY builds at once: the builds queue's worker runs that many
    processes and takes one task each (prefetch 1); the rest wait in the queue."""
    assert settings.CELERY_TASK_ROUTES["spaces.tasks.build_revision_task"] == {"queue": "builds"}
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1 and settings.CELERY_TASK_ACKS_LATE
    # A queued build is not handed to a second worker while the first one builds.
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > settings.BUILD_TIMEOUT
    compose = (REPO / "docker-compose.yml").read_text()
    command = re.search(r"worker-builds:.*?command: (.*?)\n", compose, re.S).group(1)
    assert "-Q builds" in command and "-c ${BUILD_CONCURRENCY:-1}" in command and "--prefetch-multiplier 1" in command
    lifecycle = re.search(r"worker-lifecycle:.*?command: (.*?)\n", compose, re.S).group(1)
    assert "builds" not in lifecycle  # a start never waits behind a build


def test_container_state_carries_what_housekeeping_needs():
    state = ContainerState(name="x", running=False, paused=False, exit_code=0, oom_killed=False, labels={})
    assert state.id == "" and state.created_at is None and state.finished_at is None


# ------------------------------------------------------------------------------ manage.py housekeeping
def test_the_housekeeping_command_runs_one_round_by_the_tasks_registered_name(serving, hub):
    space = serving(4)
    out = io.StringIO()
    from django.core.management import call_command

    call_command("housekeeping", stdout=out)
    assert image_numbers(hub.backend, space) == [3, 4]
    assert re.fullmatch(r"housekeeping: one round in \d+\.\d s\n", out.getvalue())
