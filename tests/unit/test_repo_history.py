"""Editing a file in the browser or the API, running an earlier revision again (from its kept
image, or rebuilt), and duplicating a space (issue 10, items 5 to 7), on the fake backend."""
from __future__ import annotations

import pytest
from django.test import Client

from spaces.lifecycle import housekeeping
from spaces.lifecycle.models import SpaceVariable
from spaces.records.models import Revision, Space
from spaces.repos import reading, store
from tests.unit.helpers import assert_error, fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


@pytest.fixture
def olive(make_user):
    return make_user("olive")


def test_an_api_edit_commits_on_main_and_deploys(serving, olive, api, run_on_commit):
    client = api(olive)
    head = store.head(serving)
    with run_on_commit():
        resp = client.post("/api/spaces/olive/demo/files/app.py", {"content": "print(42)\n", "base": head,
                                                                   "message": "Answer"}, format="json")
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["number"] == 2 and body["message"] == "Answer" and body["commit"] == store.head(serving)
    assert reading.blob(serving, "main", "app.py") == b"print(42)\n"
    assert reading.commits(serving, "main")[0].parents == (head,)
    space = fresh(serving)
    assert (space.status, space.running_revision.number) == ("RUNNING", 2)


def test_a_stale_base_is_a_conflict_and_changes_nothing(serving, olive, api, run_on_commit):
    client = api(olive)
    stale = store.head(serving)
    with run_on_commit():
        assert client.post("/api/spaces/olive/demo/files/app.py", {"content": "print(2)\n"},
                           format="json").status_code == 202
    head = store.head(serving)
    resp = client.post("/api/spaces/olive/demo/files/app.py", {"content": "print(3)\n", "base": stale},
                       format="json")
    assert_error(resp, 409, "conflict")
    assert store.head(serving) == head and serving.revisions.count() == 2


def test_the_page_editor_commits_and_keeps_the_text_on_conflict(serving, olive, run_on_commit):
    browser = Client()
    browser.force_login(olive)
    form = browser.get("/spaces/olive/demo/edit/main/app.py")
    assert form.status_code == 200 and 'name="base"' in form.content.decode()
    base = form.context["form"].initial["base"]
    with run_on_commit():
        done = browser.post("/spaces/olive/demo/edit/main/app.py",
                            {"content": "print('edited')\r\n", "message": "From the page", "base": base})
    assert done.status_code == 302 and done["Location"] == "/spaces/olive/demo"
    assert reading.blob(serving, "main", "app.py") == b"print('edited')\n"  # the file's own line endings
    again = browser.post("/spaces/olive/demo/edit/main/app.py",
                         {"content": "print('mine')\n", "message": "Late", "base": base})
    assert again.status_code == 409
    page = again.content.decode()
    assert "print(&#x27;mine&#x27;)" in page and 'id="edit-error"' in page
    assert again.context["form"]["base"].value() == store.head(serving)  # a second submit goes on top


def test_a_refused_edit_says_why_and_keeps_serving(serving, olive, api):
    resp = api(olive).post("/api/spaces/olive/demo/files/README.md",
                           {"content": "---\nsdk: [broken\n---\n"}, format="json")
    assert resp.status_code in (202, 400, 422), resp.content
    assert fresh(serving).running_revision.number == 1 and fresh(serving).status == "RUNNING"


def test_rollback_reuses_the_kept_image_without_a_build(serving, olive, api, repo, push, run_on_commit, hub):
    first = fresh(serving).running_revision
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    assert fresh(serving).running_revision.number == 2
    builds = len(hub.backend.builds)
    with run_on_commit():
        resp = api(olive).post("/api/spaces/olive/demo/revisions/1/rollback")
    assert resp.status_code == 202, resp.content
    new = Revision.objects.get(space=serving, number=resp.json()["number"])
    assert (new.number, new.status, new.image) == (3, "succeeded", first.image)
    assert len(hub.backend.builds) == builds  # no build: the kept image started
    space = fresh(serving)
    assert (space.status, space.running_revision.number) == ("RUNNING", 3)
    # History stays linear: a new commit restoring revision 1's tree on top of main.
    log = reading.commits(serving, "main")
    assert [c.sha for c in log[:2]] == [new.commit, Revision.objects.get(space=serving, number=2).commit]
    assert reading.stat(serving, new.commit, "").oid == reading.stat(serving, first.commit, "").oid
    assert reading.blob(serving, "main", "app.py") == b"print(1)\n"
    # Housekeeping keeps that image for revision 3 although its label says revision 1.
    doomed = housekeeping.images_to_remove(hub.backend.list_images(), hub.backend.list_containers())
    assert first.image not in {t for image in doomed for t in image.tags}


def test_rollback_rebuilds_when_the_image_is_gone(serving, olive, api, repo, push, run_on_commit, hub):
    first = fresh(serving).running_revision
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    hub.backend.images.pop(first.image)
    with run_on_commit():
        resp = api(olive).post("/api/spaces/olive/demo/revisions/1/rollback")
    assert resp.status_code == 202
    new = Revision.objects.get(space=serving, number=3)
    assert new.status == "succeeded" and new.image.endswith(":r3") and hub.backend.builds[-1].revision == 3


def test_only_a_revision_that_ran_can_run_again(serving, olive, api, repo, push, hub):
    hub.backend.fail_build = "broken"
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    assert_error(api(olive).post("/api/spaces/olive/demo/revisions/2/rollback"), 409, "not_runnable")
    assert api(olive).post("/api/spaces/olive/demo/revisions/9/rollback").status_code == 404


def test_duplicate_copies_history_variables_and_secret_names(serving, olive, make_user, api, repo, push,
                                                             run_on_commit):
    push(serving, gradio_files(repo, serving.port, "2"), olive)
    owner = api(olive)
    assert owner.put("/api/spaces/olive/demo/variables/COLOR", {"value": "teal"}, format="json").status_code in (200, 201)
    assert owner.put("/api/spaces/olive/demo/secrets/TOKEN", {"value": "s3cret"}, format="json").status_code in (200, 201)
    stan = make_user("stan")
    with run_on_commit():
        resp = api(stan).post("/api/spaces/olive/demo/duplicate", {"name": "my-copy", "visibility": "private"},
                              format="json")
    assert resp.status_code == 202, resp.content
    assert (resp.json()["owner"], resp.json()["visibility"]) == ("stan", "private")
    copy = Space.objects.get(owner=stan, name="my-copy")
    assert [c.sha for c in reading.commits(copy, "main")] == [c.sha for c in reading.commits(serving, "main")]
    rows = {v.key: (v.secret, v.value) for v in SpaceVariable.objects.filter(space=copy)}
    assert rows == {"COLOR": (False, "teal"), "TOKEN": (True, "")}
    assert copy.latest_revision.number == 1 and copy.latest_revision.commit == store.head(serving)
    assert fresh(copy).status in ("RUNNING", "APP_STARTING", "RUNTIME_ERROR")  # it built on its own
    browser = Client()
    browser.force_login(stan)
    page = browser.get("/spaces/stan/my-copy").content.decode()
    assert 'id="secrets-needed"' in page and "TOKEN" in page
    # A name taken, and a private source for someone who may not see it.
    assert_error(api(stan).post("/api/spaces/olive/demo/duplicate", {"name": "my-copy"}, format="json"), 409,
                 "exists")
    assert api(olive).post("/api/spaces/stan/my-copy/duplicate", {"name": "x"}, format="json").status_code == 404


def test_api_edit_refusals_are_clear_errors(serving, olive, api):
    client = api(olive)
    assert client.post("/api/spaces/olive/demo/files/a/../../x", {"content": "x"}, format="json").status_code == 404
    bad = client.post("/api/spaces/olive/demo/files/app.py", {"content": "!!", "encoding": "base64"}, format="json")
    assert_error(bad, 400)
    assert_error(api(olive, scope="read").post("/api/spaces/olive/demo/files/app.py", {"content": "x"},
                                               format="json"), 403)
    assert store.head(serving) == reading.resolve(serving, "main") and serving.revisions.count() == 1
