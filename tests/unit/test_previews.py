"""Branch previews (issue 10 item 8) on the fake backend: a branch's commit, exported to a
snapshot directory as the push hook's export does, becomes a preview on its own host that only
the space's editors may open; it sleeps, wakes, and goes with its branch, and never touches
what main serves."""
from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from runner import proxy
from runner.archive import ArchiveLimits, snapshot_archive
from spaces.lifecycle import converge, health, housekeeping, preview_runs, sleep
from spaces.lifecycle.routes import preview_container_name
from spaces.previews import services
from spaces.records.models import HostLabel, Preview, Space
from spaces.records.previews import branch_slug, preview_label_for, preview_refusal
from tests.archives import make_archive
from tests.unit.helpers import fresh, gradio_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
P = Preview.Status
SHA1, SHA2 = "1" * 40, "2" * 40


@pytest.fixture
def deploy(settings, run_on_commit):
    """deploy(space, branch, files, sha, by) -> the preview, with its build and start run inline."""

    def do(space, branch, files, sha=SHA1, by=None):
        snap = snapshot_archive(io.BytesIO(make_archive(files)), settings.SNAPSHOTS_DIR, ArchiveLimits())
        with run_on_commit():
            preview = services.preview_deploy(space=space, branch=branch, sha=sha, snapshot=snap.path,
                                              files=set(snap.files), pushed_by_id=by.pk if by else None)
        return Preview.objects.get(pk=preview.pk) if preview is not None else None

    return do


@pytest.fixture
def gradio_preview(people, make_space, deploy, repo, app_server):
    """A public gradio space of olive's (eddie edits, vera views) with a RUNNING preview of `feature`."""
    space = make_space(people["owner"], "demo", sdk="gradio", editors=[people["editor"]], viewers=[people["viewer"]])
    label = preview_label_for(space, "feature")
    port = app_server(Preview(address_index=0).address)   # the first preview's address
    preview = deploy(space, "feature", gradio_files(repo, port, "branch"), by=people["owner"])
    assert preview.label == label
    return preview


def gate(settings, host: str, headers: dict | None = None, path: str = "/internal/proxy/auth"):
    return Client().get(path, headers={"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": host,
                                       "X-Demohub-Uri": "/", "Accept": "*/*", **(headers or {})})


def flags(settings, label: str) -> set[str]:
    states = settings.PROXY_ROUTES_DIR.parent / "state"
    return {p.name.rpartition(".")[2] for p in states.glob(f"{label}.*")}


# ------------------------------------------------------------------------------ labels and limits
def test_labels_fit_dns_and_never_repeat(olive, make_space):
    space = make_space(olive, "a-rather-long-space-name-that-goes-on-and-on-and-on")
    label = preview_label_for(space, "Feature/Some_very-LONG branch name!")
    assert len(label) <= 63 and proxy.validate_label(label) == label
    assert label.startswith(space.label[:40].rstrip("-") + "--feature-some-v")
    assert preview_label_for(space, "feat/a") != preview_label_for(space, "feat-a")
    HostLabel.objects.create(label=preview_label_for(space, "x"))
    assert preview_label_for(space, "x") not in HostLabel.objects.values_list("label", flat=True)
    assert branch_slug("--/__") == ""


def test_a_push_may_add_at_most_the_setting_s_number_of_previews(olive, make_space, deploy, settings):
    settings.PREVIEW_MAX_PER_SPACE = 3
    space = make_space(olive, "site")
    for branch in ("a", "b", "c"):
        assert preview_refusal(space, branch) is None
        assert deploy(space, branch, {"README.md": "---\nsdk: static\n---\n", "index.html": branch}) is not None
    assert preview_refusal(space, "c") is None          # an existing preview may always be updated
    assert preview_refusal(space, "main") is None       # main is never a preview
    why = preview_refusal(space, "d")
    assert "at most 3" in why and "PREVIEW_MAX_PER_SPACE" in why and "git push origin :a" in why
    assert "letter or digit" in preview_refusal(space, "--")
    # A push that raced the hook's check is refused again when the row would be made.
    assert deploy(space, "d", {"README.md": "---\nsdk: static\n---\n", "index.html": "d"}) is None
    assert Preview.objects.filter(space=space).count() == 3


# ------------------------------------------------------------------------------ build, run, route
def test_a_branch_builds_and_runs_beside_main_without_touching_it(serving, deploy, repo, app_server, hub, settings):
    space = fresh(serving)
    port = app_server(Preview(address_index=0).address)
    preview = deploy(space, "feature", gradio_files(repo, port, "branch"), by=space.owner)
    main_containers = {n: c["spec"].image for n, c in hub.backend.containers.items() if preview.label not in n}
    assert preview.status == P.RUNNING and preview.error == ""
    name = preview_container_name(preview)
    spec = hub.backend.containers[name]["spec"]
    assert spec.address == preview.address and spec.labels["demohub.preview"] == preview.label
    assert spec.env["SPACE_HOST"] == preview.host and spec.image == preview.image
    assert hub.backend.images[preview.image]["demohub.preview"] == preview.label
    assert "commit " + SHA1 in preview.build_log
    # Its own route, always private, its own label in HostLabel.
    assert f"server {preview.address}:" in (settings.PROXY_ROUTES_DIR / f"{preview.label}.conf").read_text()
    assert flags(settings, preview.label) == {"private"}
    assert HostLabel.objects.filter(label=preview.label).exists()
    # main: same status, same revision, same containers and route.
    after = fresh(serving)
    assert (after.status, after.running_revision_id, after.active_slot) == (space.status, space.running_revision_id,
                                                                            space.active_slot)
    assert {n: c["spec"].image for n, c in hub.backend.containers.items() if preview.label not in n} == main_containers
    assert preview.address not in {after.slot_address("a"), after.slot_address("b")}


def test_a_static_branch_is_served_from_its_own_link(olive, make_space, deploy, settings):
    space = make_space(olive, "site")
    preview = deploy(space, "docs", {"README.md": "---\nsdk: static\n---\n", "index.html": "<h1>branch</h1>"})
    assert preview.status == P.RUNNING
    site = settings.SITES_DIR / preview.label
    assert (site / "index.html").read_text() == "<h1>branch</h1>"
    assert not (settings.SITES_DIR / space.label).exists()
    route = (settings.PROXY_ROUTES_DIR / f"{preview.label}.conf").read_text()
    assert "kind: static" in route and flags(settings, preview.label) == {"private"}


def test_a_new_commit_replaces_the_preview_s_image_and_container(gradio_preview, deploy, repo, hub):
    first = gradio_preview
    port = int(first.metadata["app_port"])
    second = deploy(first.space, "feature", gradio_files(repo, port, "two"), sha=SHA2)
    assert second.pk == first.pk and second.commit == SHA2 and second.status == P.RUNNING
    assert second.image != first.image and hub.backend.containers[preview_container_name(second)][
        "spec"].image == second.image


def test_a_broken_branch_fails_on_its_own(gradio_preview, deploy, repo, hub, settings):
    hub.backend.fail_build = "pip could not install numpy"
    port = int(gradio_preview.metadata["app_port"])
    failed = deploy(gradio_preview.space, "feature", gradio_files(repo, port, "bad"), sha=SHA2)
    assert failed.status == P.FAILED and "pip could not install numpy" in failed.error
    bad_readme = deploy(gradio_preview.space, "other", {"README.md": "---\nsdk: static\n---\n", "app.py": ""})
    assert bad_readme.status == P.FAILED and "sdk" in bad_readme.error
    assert fresh(gradio_preview.space).status == "NO_APP_FILE"   # main has no revision: still none


# ------------------------------------------------------------------------------ who may open it
@pytest.mark.parametrize("visibility", ["public", "private"])
def test_only_editors_pass_the_gate_of_a_preview_host(people, make_space, deploy, make_token, settings, visibility):
    space = make_space(people["owner"], "site", visibility=visibility, editors=[people["editor"]],
                       viewers=[people["viewer"]])
    preview = deploy(space, "docs", {"README.md": "---\nsdk: static\n---\n", "index.html": "x"})
    host = f"{preview.label}.{settings.SPACES_DOMAIN}:{settings.SPACES_PORT}"
    missing = f"{space.label}--docs-000000.{settings.SPACES_DOMAIN}:{settings.SPACES_PORT}"
    for who, expected in (("owner", 204), ("editor", 204), ("viewer", 401), ("stranger", 401)):
        token = make_token(people[who])
        for header in ("Authorization", "X-HF-Authorization"):
            assert gate(settings, host, {header: f"Bearer {token}"}).status_code == expected, (who, header)
        fallback = gate(settings, host, {"Authorization": f"Bearer {token}"}, "/internal/proxy/fallback")
        if expected == 401:   # a known user who may not: exactly a missing host's answer
            gone = gate(settings, missing, {"Authorization": f"Bearer {token}"}, "/internal/proxy/fallback")
            assert (fallback.status_code, fallback.content) == (gone.status_code, gone.content) == (
                404, b'{"detail": "Not found.", "code": "not_found"}')
    assert gate(settings, host).status_code == 401
    # The browser way in: /go/<preview label> gives editors a ticket for that host only.
    browser = Client()
    browser.force_login(people["editor"])
    resp = browser.get(f"/go/{preview.label}", {"next": "/"})
    assert resp.status_code == 302 and resp["Location"].startswith(preview.url.rstrip("/") + "/.demohub/session?")
    ticket = urlsplit(resp["Location"])
    session = gate(settings, host, {"X-Demohub-Uri": f"{ticket.path}?{ticket.query}"}, "/internal/proxy/session")
    cookie = session["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    assert gate(settings, host, {"X-Demohub-Space-Cookie": cookie}).status_code == 204
    # ... which is no key to the space's own host, nor the preview's a key to another's.
    viewer = Client()
    viewer.force_login(people["viewer"])
    assert viewer.get(f"/go/{preview.label}", {"next": "/"}).status_code == 404


def test_the_api_lists_previews_for_editors_only(people, make_space, deploy, api):
    space = make_space(people["owner"], "site", editors=[people["editor"]], viewers=[people["viewer"]])
    preview = deploy(space, "docs", {"README.md": "---\nsdk: static\n---\n", "index.html": "x"}, by=people["editor"])
    url = "/api/spaces/olive/site/previews"
    body = api(people["editor"]).get(url).json()
    assert body["count"] == 1 and body["results"][0] == {**body["results"][0], "branch": "docs", "commit": SHA1,
                                                          "status": "running", "url": preview.url,
                                                          "pushed_by": "eddie", "error": ""}
    assert api(people["viewer"]).get(url).status_code == 403
    assert api(people["stranger"]).get(url).status_code == 403
    assert api().get(url).status_code == 401
    Space.objects.filter(pk=space.pk).update(visibility="private")
    assert api(people["stranger"]).get(url).status_code == 404


def test_the_space_page_lists_previews_for_editors(people, make_space, deploy):
    space = make_space(people["owner"], "site", editors=[people["editor"]], viewers=[people["viewer"]])
    preview = deploy(space, "docs", {"README.md": "---\nsdk: static\n---\n", "index.html": "x"})
    for who, shown in (("owner", True), ("editor", True), ("viewer", False)):
        browser = Client()
        browser.force_login(people[who])
        page = browser.get("/spaces/olive/site").content.decode()
        assert (f"/go/{preview.label}" in page) is shown, who
        assert ("docs" in page and "running" in page) or not shown


def test_an_access_change_reaches_the_preview_host_at_once(people, make_space, deploy, settings, run_on_commit):
    from spaces.access import services as access

    space = make_space(people["owner"], "site", editors=[people["editor"]])
    preview = deploy(space, "docs", {"README.md": "---\nsdk: static\n---\n", "index.html": "x"})
    flag = settings.PROXY_ROUTES_DIR.parent / "state" / f"{preview.label}.private"
    before = flag.read_text()
    with run_on_commit():
        access.collaborator_remove(space=fresh(space), username="eddie")
    assert flag.read_text() != before == f"{space.access_epoch}\n"


# ------------------------------------------------------------------------------ sleep and wake
def test_an_idle_preview_sleeps_and_the_next_request_wakes_it(gradio_preview, hub, settings):
    settings.PREVIEW_SLEEP_AFTER = 600
    name = preview_container_name(gradio_preview)
    Preview.objects.filter(pk=gradio_preview.pk).update(last_active_at=timezone.now() - timedelta(seconds=601))
    assert sleep.sleep_check()["previews"] == [gradio_preview.pk]
    asleep = Preview.objects.get(pk=gradio_preview.pk)
    assert asleep.status == P.SLEEPING and name not in hub.backend.containers
    assert flags(settings, asleep.label) == {"private", "sleeping"}
    assert fresh(gradio_preview.space).status == "NO_APP_FILE"   # the space is not involved
    # Active recently: left alone.
    assert preview_runs.preview_wake_requested(asleep.pk)       # (eager: the start runs here)
    awake = Preview.objects.get(pk=asleep.pk)
    assert awake.status == P.RUNNING and name in hub.backend.containers
    assert flags(settings, awake.label) == {"private"}
    assert "previews" not in sleep.sleep_check()


def test_a_preview_whose_app_crashed_sleeps_with_the_reason_and_the_next_request_starts_it(
        gradio_preview, hub, settings):
    name = preview_container_name(gradio_preview)
    health.crashes_check()
    assert Preview.objects.get(pk=gradio_preview.pk).status == P.RUNNING   # running: left alone
    hub.backend.crash(name, exit_code=1, output="Traceback: boom\n")
    health.crashes_check()
    crashed = Preview.objects.get(pk=gradio_preview.pk)
    assert crashed.status == P.SLEEPING and "exited with code 1" in crashed.error
    assert flags(settings, crashed.label) == {"private", "sleeping"}   # a request now waits for the wake
    assert fresh(gradio_preview.space).status == "NO_APP_FILE"   # the space is not involved
    assert preview_runs.preview_wake_requested(crashed.pk)       # (eager: the start runs here)
    again = Preview.objects.get(pk=crashed.pk)
    assert again.status == P.RUNNING and again.error == "" and hub.backend.state(name).running
    assert flags(settings, again.label) == {"private"}


def test_running_previews_count_toward_the_running_cap(gradio_preview, settings):
    assert sleep.running_count() == 1
    settings.SPACE_MAX_RUNNING = 1
    assert not sleep.has_room(0)


# ------------------------------------------------------------------------------ the branch goes
def test_deleting_the_branch_removes_everything_of_its_preview(gradio_preview, hub, settings):
    preview = gradio_preview
    assert services.preview_delete(space_id=preview.space_id, branch="feature")
    assert not Preview.objects.filter(pk=preview.pk).exists()
    assert preview_container_name(preview) not in hub.backend.containers
    assert preview.image not in hub.backend.images
    assert not (settings.PROXY_ROUTES_DIR / f"{preview.label}.conf").exists() and not flags(settings, preview.label)
    assert not services.preview_delete(space_id=preview.space_id, branch="feature")   # twice: nothing more
    assert HostLabel.objects.filter(label=preview.label).exists()   # never issued again
    host = f"{preview.label}.{settings.SPACES_DOMAIN}"
    assert gate(settings, host).status_code == 401


def test_reconcile_and_housekeeping_keep_a_preview_and_clear_what_it_left(gradio_preview, hub, settings):
    preview = gradio_preview
    route = settings.PROXY_ROUTES_DIR / f"{preview.label}.conf"
    route.unlink()
    hub.backend.images["demohub-x/old:1"] = {"demohub.space": "olive/demo", "demohub.revision": "0",
                                             "demohub.preview": preview.label}
    converge.reconcile()
    assert route.exists() and preview_container_name(preview) in hub.backend.containers
    assert housekeeping.images_prune() == ["demohub-x/old:1"]
    assert preview.image in hub.backend.images
    Preview.objects.filter(pk=preview.pk).delete()   # a row gone without its cleanup (a crash)
    converge.reconcile()
    assert not route.exists() and preview_container_name(preview) not in hub.backend.containers
    assert preview.image in housekeeping.images_prune()


def test_the_push_hook_s_task_deploys_a_branch_commit_of_the_repository(olive, make_space, run_on_commit, tmp_path):
    from spaces.records import jobs
    from spaces.repos import store

    space = make_space(olive, "site")
    src = tmp_path / "branch"
    src.mkdir()
    (src / "README.md").write_text("---\nsdk: static\n---\n")
    (src / "index.html").write_text("<h1>from git</h1>")
    store.ensure_repo(space)
    sha = store.commit_directory(space, src, author=olive, message="a branch", branch="feature")
    with run_on_commit():
        jobs.send("spaces.tasks.preview_update", space.pk, "feature", sha, olive.pk)
    preview = Preview.objects.get(space=space, branch="feature")
    assert (preview.status, preview.commit, preview.pushed_by) == (P.RUNNING, sha, olive)
    assert (Path(preview.snapshot_path) / "index.html").read_text() == "<h1>from git</h1>"
    jobs.send("spaces.tasks.preview_update", space.pk, "main", sha, olive.pk)   # main is never a preview
    jobs.send("spaces.tasks.preview_delete", space.pk, "feature")
    assert not Preview.objects.filter(space=space).exists()
    assert fresh(space).status == "NO_APP_FILE"


def test_the_previews_api_answers_503_when_the_database_does_not(olive, make_space, api, monkeypatch):
    from django.db import OperationalError

    from spaces.previews import selectors

    make_space(olive, "site")
    client = api(olive)

    def down(**kw):
        raise OperationalError("the database went away")

    monkeypatch.setattr(selectors, "preview_list", down)
    resp = client.get("/api/spaces/olive/site/previews")
    assert resp.status_code == 503 and resp["Retry-After"] and resp.json()["code"] == "unavailable"


def test_reconcile_sends_again_a_preview_start_that_was_lost(gradio_preview, hub):
    Preview.objects.filter(pk=gradio_preview.pk).update(status=P.STARTING,
                                                        updated_at=timezone.now() - timedelta(hours=1))
    hub.backend.stop(preview_container_name(gradio_preview))
    converge.reconcile()   # (eager: the start runs here)
    assert Preview.objects.get(pk=gradio_preview.pk).status == P.RUNNING
    assert preview_container_name(gradio_preview) in hub.backend.containers
