"""spaces.services: the upload -> build -> start chain on the fake backend, blue/green switches,
owner actions, deletion and reconciliation (design.md §1, §2)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from spaces.accounts.models import ApiToken
from spaces.accounts.services import token_authenticate, token_create
from spaces.builds.services import revision_build
from spaces.catalog.services import revision_create, space_update
from spaces.lifecycle import logs
from spaces.lifecycle.converge import reconcile
from spaces.lifecycle.deletion import space_delete
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.services import space_pause, space_restart
from spaces.lifecycle.starts import revision_start
from spaces.records.errors import ServiceError
from spaces.records.models import HostLabel, Revision, Space
from tests.unit.helpers import fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


# ------------------------------------------------------------------------------ blue/green
def test_new_revision_switches_slots_and_stops_the_old_one(olive, make_space, push, repo, app_server, hub):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    app_server(space.slot_address("b"), port)
    push(space, gradio_files(repo, port, "1"), olive)
    s = fresh(space)
    assert (s.status, s.active_slot, s.running_revision.number) == ("RUNNING", "a", 1)
    a, b = container_name(s, "a"), container_name(s, "b")
    assert set(hub.backend.containers) == {a}

    push(space, gradio_files(repo, port, "2"), olive)
    s = fresh(space)
    assert (s.status, s.active_slot, s.running_revision.number) == ("RUNNING", "b", 2)
    assert set(hub.backend.containers) == {b}  # the old slot was stopped after the switch
    assert hub.backend.containers[b]["spec"].labels["demohub.revision"] == "2"
    route = (hub.settings.PROXY_ROUTES_DIR / f"{s.label}.conf").read_text()
    assert f"{s.slot_address('b')}:{port}" in route


def test_failed_start_of_a_new_revision_keeps_the_old_one(olive, make_space, push, repo, app_server, hub):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    push(space, gradio_files(repo, port, "1"), olive)
    hub.backend.fail_start = True
    rev2 = push(space, gradio_files(repo, port, "2"), olive)
    assert rev2.status == "succeeded"  # it built; it did not start
    s = fresh(space)
    assert s.status == "RUNNING"
    assert s.running_revision.number == 1 and s.latest_revision.number == 2
    assert s.active_slot == "a"
    assert "revision 2 failed to start" in s.error
    assert container_name(s, "a") in hub.backend.containers


def test_failed_build_of_a_new_revision_keeps_the_old_one(olive, make_space, push, repo, app_server, hub):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    push(space, gradio_files(repo, port, "1"), olive)
    hub.backend.fail_build = "syntax error"
    rev2 = push(space, gradio_files(repo, port, "2"), olive)
    assert rev2.status == "failed" and "syntax error" in rev2.error
    assert "syntax error" in rev2.build_log
    s = fresh(space)
    assert s.status == "RUNNING" and s.running_revision.number == 1
    assert "revision 2 failed to build: syntax error" in s.error


def test_upload_while_serving_is_running_building(olive, make_space, push, repo):
    space = make_space(olive, "demo", sdk="static")
    push(space, repo.static, olive)
    assert fresh(space).status == "RUNNING"
    space = fresh(space)
    rev = push(space, dict(repo.static, **{"index.html": "v2"}), olive, run=False)
    s = fresh(space)
    assert s.status == "RUNNING_BUILDING"
    assert s.running_revision.number == 1 and s.latest_revision_id == rev.pk


def test_older_build_is_cancelled_by_a_newer_upload(olive, make_space, push, repo):
    space = make_space(olive, "demo", sdk="gradio")
    r1 = push(space, repo.gradio, olive, run=False)
    Revision.objects.filter(pk=r1.pk).update(status="building")  # a worker has it
    r2 = push(space, dict(repo.gradio, **{"app.py": "print(2)\n"}), olive, run=False)
    r1.refresh_from_db()
    assert r1.status == "cancelled" and "revision 2" in r1.error and r1.finished_at
    assert r2.status == "queued"


def test_build_claimed_once(olive, make_space, push, repo, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    rev = push(space, repo.gradio, olive)
    assert len(hub.backend.builds) == 1
    revision_build(revision_id=rev.pk)  # a duplicate delivery
    assert len(hub.backend.builds) == 1


def test_start_of_a_stale_revision_is_skipped(olive, make_space, push, repo, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="static")
    r1 = push(space, repo.static, olive)
    push(space, dict(repo.static, **{"index.html": "v2"}), olive)
    before = fresh(space)
    revision_start(revision_id=r1.pk)  # a late delivery of the old start
    after = fresh(space)
    assert (after.status, after.running_revision_id) == (before.status, before.running_revision_id)


def test_startup_timeout_from_readme(olive, make_space, push, repo, settings, hub):
    settings.SPACE_STARTUP_TIMEOUT = 600
    space = make_space(olive, "demo", sdk="gradio")
    files = dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", startup_duration_timeout="10s")})
    rev = push(space, files, olive, run=False)
    assert rev.metadata["startup_duration_timeout"] == 10
    hub.backend.fail_start = True  # do not wait the 10 s here
    revision_build(revision_id=rev.pk)
    assert fresh(space).status == "RUNTIME_ERROR"


# ------------------------------------------------------------------------------ owner actions
def test_pause_stops_containers_and_restart_resumes(olive, make_space, push, repo, app_server, hub, run_on_commit):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    push(space, gradio_files(repo, port), olive)
    space = fresh(space)
    with run_on_commit():
        space_pause(space=space)
    assert fresh(space).status == "PAUSED"
    assert hub.backend.containers == {}
    with run_on_commit():
        space_restart(space=fresh(space), by=olive)
    s = fresh(space)
    assert s.status == "RUNNING" and s.running_revision.number == 1
    assert container_name(s, "a") in hub.backend.containers


def test_restart_of_a_space_that_never_built_is_409(olive, make_space, push, repo, hub):
    hub.backend.fail_build = "nope"
    space = make_space(olive, "demo", sdk="gradio")
    push(space, repo.gradio, olive)
    with pytest.raises(ServiceError) as info:
        space_restart(space=fresh(space), by=olive)
    assert info.value.code == "nothing_to_run" and info.value.http_status == 409


def test_restart_while_building_is_409(olive, make_space, push, repo):
    space = make_space(olive, "demo", sdk="static")
    push(space, repo.static, olive)
    push(fresh(space), dict(repo.static, **{"index.html": "v2"}), olive, run=False)  # RUNNING_BUILDING
    s = fresh(space)
    with pytest.raises(ServiceError) as info:
        space_restart(space=s, by=olive)
    assert info.value.http_status == 409
    assert fresh(space).status == "RUNNING_BUILDING"
    assert fresh(space).latest_revision.number == 2  # rolled back with the refusal


def test_paused_space_is_not_started_by_a_late_build(olive, make_space, push, repo, hub):
    space = make_space(olive, "demo", sdk="gradio")
    rev = push(space, repo.gradio, olive, run=False)
    space_pause(space=fresh(space))
    revision_build(revision_id=rev.pk)
    assert fresh(space).status == "PAUSED"
    assert hub.backend.containers == {}


# ------------------------------------------------------------------------------ deletion
def test_delete_purges_everything(olive, make_space, push, repo, app_server, hub, run_on_commit):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    rev = push(space, gradio_files(repo, port), olive)
    snapshot = Path(rev.snapshot_path)
    label = space.label
    assert snapshot.is_dir() and hub.backend.images and hub.backend.containers
    with run_on_commit():
        space_delete(space=fresh(space))
    assert not Space.objects.filter(pk=space.pk).exists()
    assert not Revision.objects.filter(pk=rev.pk).exists()
    assert hub.backend.containers == {} and hub.backend.images == {}
    assert not snapshot.exists()
    assert not (hub.settings.PROXY_ROUTES_DIR / f"{label}.conf").exists()
    assert not logs.exists(logs.build_key(rev.pk))
    assert HostLabel.objects.filter(label=label).exists()


def test_delete_keeps_a_snapshot_another_space_uses(olive, make_space, push, repo, run_on_commit, hub):
    one = make_space(olive, "one", sdk="static")
    two = make_space(olive, "two", sdk="static")
    r1 = push(one, repo.static, olive)
    r2 = push(two, repo.static, olive)
    assert r1.snapshot_path == r2.snapshot_path
    with run_on_commit():
        space_delete(space=fresh(one))
    assert Path(r2.snapshot_path).is_dir()
    assert (hub.settings.SITES_DIR / two.label / "index.html").is_file()
    assert not (hub.settings.SITES_DIR / one.label).exists()


def test_upload_to_a_deleting_space_is_refused(olive, make_space, repo):
    import io

    space = make_space(olive, "demo", sdk="static")
    space_delete(space=space)
    with pytest.raises(ServiceError) as info:
        revision_create(space=space, archive=io.BytesIO(repo.targz(repo.static)), created_by=olive)
    assert info.value.code == "deleting"
    assert not Revision.objects.exists()


# ------------------------------------------------------------------------------ labels
def test_labels_are_dns_safe_and_unique(make_user, make_space):
    olive = make_user("olive")
    a = make_space(olive, "a.b")
    b = make_space(olive, "a-b")
    c = make_space(olive, "A_B")  # also maps to olive-a-b
    labels = {a.label, b.label, c.label}
    assert len(labels) == 3
    assert a.label == "olive-a-b"
    for label in labels:
        assert len(label) <= 63 and label == label.lower() and label.replace("-", "").isalnum()


def test_long_names_give_short_labels(make_user, make_space):
    space = make_space(make_user("olive"), "x" * 96)
    assert len(space.label) <= 63


def test_label_is_never_reused(make_user, make_space, run_on_commit):
    olive = make_user("olive")
    seen = set()
    for _ in range(3):
        space = make_space(olive, "demo")
        assert space.label not in seen
        seen.add(space.label)
        with run_on_commit():
            space_delete(space=space)
    assert HostLabel.objects.filter(label__in=seen).count() == 3


def test_slot_addresses_differ_between_spaces(make_user, make_space):
    olive = make_user("olive")
    a, b = make_space(olive, "a"), make_space(olive, "b")
    addresses = {a.slot_address("a"), a.slot_address("b"), b.slot_address("a"), b.slot_address("b")}
    assert len(addresses) == 4


# ------------------------------------------------------------------------------ reconciliation
def test_reconcile_fails_builds_whose_worker_stopped(olive, make_space, push, repo, settings):
    settings.BUILD_LEASE_RETRIES = 0  # retries: tests/unit/test_crashes.py
    space = make_space(olive, "demo", sdk="gradio")
    rev = push(space, repo.gradio, olive, run=False)
    Revision.objects.filter(pk=rev.pk).update(status="building", heartbeat_at=timezone.now() - timedelta(minutes=5))
    reconcile()
    rev.refresh_from_db()
    assert rev.status == "failed" and "stopped responding" in rev.error
    assert fresh(space).status == "BUILD_ERROR"


def test_reconcile_leaves_live_builds_alone(olive, make_space, push, repo):
    space = make_space(olive, "demo", sdk="gradio")
    rev = push(space, repo.gradio, olive, run=False)
    Revision.objects.filter(pk=rev.pk).update(status="building", heartbeat_at=timezone.now())
    reconcile()
    rev.refresh_from_db()
    assert rev.status == "building"


def test_reconcile_removes_orphan_containers_and_rebuilds_routes(olive, make_space, push, repo, app_server, hub):
    from runner.backends import RunSpec

    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    push(space, gradio_files(repo, port), olive)
    s = fresh(space)
    keep = container_name(s, "a")
    orphan = container_name(s, "b")
    hub.backend.start(RunSpec(name=orphan, image="x", address=s.slot_address("b"), port=port, env={},
                              labels={"demohub.slot": "b", "demohub.space": "olive/demo"}))
    route = hub.settings.PROXY_ROUTES_DIR / f"{s.label}.conf"
    route.unlink()
    reconcile()
    assert set(hub.backend.containers) == {keep}
    assert route.is_file()


def test_reconcile_restores_a_missing_static_site_link(olive, make_space, push, repo, hub):
    space = make_space(olive, "demo", sdk="static")
    push(space, repo.static, olive)
    link = hub.settings.SITES_DIR / space.label
    link.unlink()
    reconcile()
    assert (link / "index.html").is_file()


# ------------------------------------------------------------------------------ accounts
def test_token_hash_only(make_user):
    user = make_user("olive")
    token, raw = token_create(user=user, name="ci", scope="read")
    assert raw.startswith("dh_")
    assert ApiToken.objects.get(pk=token.pk).token_hash == ApiToken.hash_token(raw)
    assert not ApiToken.objects.filter(token_hash=raw).exists()
    assert token_authenticate(raw).pk == token.pk
    assert token_authenticate(raw + "x") is None
    assert token_authenticate("not-dh-" + raw) is None
    with pytest.raises(ValidationError):
        token_create(user=user, scope="admin")


def test_space_update_rejects_unknown_fields(make_user, make_space):
    space = make_space(make_user("olive"), "demo")
    with pytest.raises(ValidationError):
        space_update(space=space, status="RUNNING")
    with pytest.raises(ValidationError):
        space_update(space=space, sleep_after=30)
    assert fresh(space).status == "NO_APP_FILE"
