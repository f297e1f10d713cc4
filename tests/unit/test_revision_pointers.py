"""Which revision a space points at, and what an upload answers, after the lifecycle moves on.

* The 202 of an upload shows the revision as stored (a static site is built synchronously).
* `latest_revision` is always the newest revision row: a restart of the serving revision does
  not rewind it.
* A SLEEPING space keeps its running revision through a new upload: a failed build, a bad
  README or a failed start leave it SLEEPING with the reason in `error` (as RUNNING_BUILDING
  falls back to RUNNING), and only a healthy new revision replaces it.
"""
from __future__ import annotations

import pytest

from spaces.lifecycle.converge import reconcile
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.services import space_restart
from spaces.lifecycle.starts import revision_start
from spaces.records.models import Revision
from spaces.records.services import space_transition
from spaces.records.status import TRANSITIONS, SpaceStatus
from tests.unit.helpers import fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
S = SpaceStatus


# ------------------------------------------------------------------------------ the upload's answer
def test_static_upload_returns_the_stored_revision(olive, make_space, push, repo):
    space = make_space(olive, "demo", sdk="static")
    rev = push(space, repo.static, olive)
    stored = Revision.objects.get(pk=rev.pk)
    assert stored.status == "succeeded"
    assert (rev.status, rev.started_at, rev.finished_at) == (stored.status, stored.started_at, stored.finished_at)


def test_config_error_upload_returns_the_stored_revision(olive, make_space, push, repo):
    space = make_space(olive, "demo", sdk="static")
    rev = push(space, dict(repo.static, **{"README.md": repo.readme(sdk="static", colorFrom="mauve")}), olive)
    assert rev.status == "failed"
    assert rev.build_log == Revision.objects.get(pk=rev.pk).build_log != ""


def test_static_upload_202_body_says_succeeded(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="static")
    resp = upload(api(olive), space, repo.static)
    assert resp.status_code == 202, resp.content
    stored = api(olive).get(resp["Location"]).json()
    assert resp.json()["status"] == stored["status"] == "succeeded"
    assert resp.json()["started_at"] == stored["started_at"] and resp.json()["finished_at"] == stored["finished_at"]


# ------------------------------------------------------------------------------ restart
def test_restart_after_a_failed_build_keeps_the_latest_revision(serving, olive, push, repo, hub,
                                                                run_on_commit):
    hub.backend.fail_build = "syntax error"
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    hub.backend.fail_build = ""
    assert (fresh(serving).latest_revision.number, fresh(serving).running_revision.number) == (2, 1)
    with run_on_commit():
        target = space_restart(space=fresh(serving), by=olive)
    assert target.number == 1
    s = fresh(serving)
    assert s.status == "RUNNING" and s.error == ""
    assert s.running_revision.number == 1
    assert s.latest_revision.number == 2  # the newest row, not the restarted one
    assert container_name(s, s.active_slot) in hub.backend.containers


def test_restart_after_a_failed_start_restarts_the_serving_revision(serving, olive, push, repo, hub,
                                                                     run_on_commit):
    hub.backend.fail_start = True
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    hub.backend.fail_start = False
    with run_on_commit():
        space_restart(space=fresh(serving), by=olive)
    s = fresh(serving)
    assert (s.status, s.running_revision.number, s.latest_revision.number) == ("RUNNING", 1, 2)
    container = hub.backend.containers[container_name(s, s.active_slot)]
    assert container["spec"].labels["demohub.revision"] == "1"


def test_restart_api_reports_the_newest_revision(api, serving, olive, push, repo, hub, run_on_commit):
    hub.backend.fail_build = "syntax error"
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    hub.backend.fail_build = ""
    with run_on_commit():
        resp = api(olive).post("/api/spaces/olive/demo/restart")
    assert resp.status_code == 202, resp.content
    body = api(olive).get("/api/spaces/olive/demo").json()
    assert (body["revision"], body["running_revision"], body["status"]) == (2, 1, "RUNNING")


def test_restart_task_for_the_serving_revision_is_still_skipped_when_stale(serving, olive, push, repo, hub):
    """Only a restart may start a revision other than the latest: a late ordinary start task of
    revision 1 while revision 2 builds must not touch the space."""
    push(serving, gradio_files(repo, serving.port, "2"), olive, run=False)
    assert fresh(serving).status == "RUNNING_BUILDING"
    revision_start(revision_id=fresh(serving).running_revision_id)
    assert fresh(serving).status == "RUNNING_BUILDING"


# ------------------------------------------------------------------------------ sleeping
@pytest.fixture
def sleeping_gradio(serving):
    assert space_transition(serving, S.SLEEPING)
    s = fresh(serving)
    s.port = serving.port
    return s


def test_upload_to_a_sleeping_space_keeps_it_sleeping_while_it_builds(sleeping_gradio, olive, push, repo):
    rev = push(sleeping_gradio, gradio_files(repo, sleeping_gradio.port, "2"), olive, run=False)
    s = fresh(sleeping_gradio)
    assert s.status == "SLEEPING"
    assert s.running_revision.number == 1 and s.latest_revision_id == rev.pk


def test_failed_build_leaves_a_sleeping_space_sleeping(sleeping_gradio, olive, push, repo, hub):
    hub.backend.fail_build = "syntax error"
    push(sleeping_gradio, gradio_files(repo, sleeping_gradio.port, "2"), olive)
    s = fresh(sleeping_gradio)
    assert s.status == "SLEEPING"
    assert s.running_revision.number == 1 and s.latest_revision.number == 2
    assert "revision 2 failed to build: syntax error" in s.error


def test_bad_readme_leaves_a_sleeping_space_sleeping(sleeping_gradio, olive, push, repo):
    files = dict(gradio_files(repo, sleeping_gradio.port, "2"),
                 **{"README.md": repo.readme(sdk="gradio", colorFrom="mauve")})
    push(sleeping_gradio, files, olive)
    s = fresh(sleeping_gradio)
    assert s.status == "SLEEPING" and s.running_revision.number == 1
    assert "revision 2" in s.error and "colorFrom" in s.error


def test_failed_start_leaves_a_sleeping_space_sleeping_on_its_slot(sleeping_gradio, olive, push, repo, hub):
    old = container_name(sleeping_gradio, "a")
    hub.backend.fail_start = True
    push(sleeping_gradio, gradio_files(repo, sleeping_gradio.port, "2"), olive)
    s = fresh(sleeping_gradio)
    assert s.status == "SLEEPING"
    assert (s.running_revision.number, s.active_slot) == (1, "a")
    assert "revision 2 failed to start" in s.error
    assert old in hub.backend.containers  # the sleeping revision's container was not replaced


def test_healthy_new_revision_replaces_the_sleeping_one(sleeping_gradio, olive, push, repo, hub):
    push(sleeping_gradio, gradio_files(repo, sleeping_gradio.port, "2"), olive)
    s = fresh(sleeping_gradio)
    assert (s.status, s.running_revision.number, s.active_slot) == ("RUNNING", 2, "b")
    assert set(hub.backend.containers) == {container_name(s, "b")}


def test_state_machine_never_drops_a_sleeping_revision_into_an_error_or_building_state():
    for to in (S.BUILDING, S.BUILD_ERROR, S.CONFIG_ERROR, S.NO_APP_FILE):
        assert S.SLEEPING not in TRANSITIONS[to], to


def test_reconcile_keeps_the_container_of_a_sleeping_space(sleeping_gradio, hub):
    reconcile()
    assert container_name(sleeping_gradio, "a") in hub.backend.containers
