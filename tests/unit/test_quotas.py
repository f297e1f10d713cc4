"""Per-user quotas, the creation rate limit, address reuse and reconcile isolation (issue 15,
finding 7; spaces/lifecycle/quotas.py). The same refusals on the real stack: tests/e2e/test_quotas.py."""
from __future__ import annotations

import pytest
from django.test import Client

from runner import proxy
from spaces.lifecycle.converge import reconcile
from spaces.lifecycle.deletion import space_delete
from spaces.lifecycle.routes import proxy_config, space_route
from spaces.records.models import Revision, Space
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
STATIC = {"index.html": "<h1>hi</h1>", "README.md": "---\nsdk: static\n---\n"}


def create(client, name, sdk="static"):
    return client.post("/api/spaces", {"name": name, "sdk": sdk}, format="json")


def test_spaces_owned_quota_is_a_403_on_the_api_and_the_page(olive, api, settings):
    settings.QUOTA_SPACES_PER_USER = 2
    client = api(olive)
    assert create(client, "one").status_code == 201
    assert create(client, "two").status_code == 201
    assert_error(create(client, "three"), 403, "quota_spaces")
    page = Client()
    page.force_login(olive)
    resp = page.post("/new", {"name": "four", "sdk": "static", "visibility": "public"})
    assert resp.status_code == 403 and b"the most one user may have" in resp.content
    assert Space.objects.filter(owner=olive).count() == 2  # nothing half-made


def test_space_creation_is_rate_limited_with_retry_after(olive, api, settings):
    settings.SPACE_CREATE_RATE_PER_USER = "2/h"
    client = api(olive)
    assert create(client, "one").status_code == 201
    assert create(client, "two").status_code == 201
    resp = create(client, "three")
    assert_error(resp, 429, "rate_limited")
    assert int(resp["Retry-After"]) > 0
    page = Client()
    page.force_login(olive)
    resp = page.post("/new", {"name": "four", "sdk": "static", "visibility": "public"})
    assert resp.status_code == 429 and resp["Retry-After"]


def test_queued_builds_quota(olive, make_space, upload, api, repo, settings):
    settings.QUOTA_QUEUED_BUILDS_PER_USER = 1
    settings.QUOTA_RUNNING_SPACES_PER_USER = 0
    one, two = make_space(olive, "one", sdk="gradio"), make_space(olive, "two", sdk="gradio")
    client = api(olive)
    assert upload(client, one, repo.gradio, run=False).status_code == 202  # queued, not built
    resp = upload(client, two, repo.gradio, run=False)
    assert_error(resp, 403, "quota_builds_queued")
    assert not two.revisions.exists()


def test_running_spaces_quota(olive, make_space, upload, api, repo, settings):
    settings.QUOTA_RUNNING_SPACES_PER_USER = 1
    one, two = make_space(olive, "one"), make_space(olive, "two")
    client = api(olive)
    assert upload(client, one, STATIC).status_code == 202
    one.refresh_from_db()
    assert one.status == "RUNNING"
    assert_error(upload(client, two, STATIC), 403, "quota_running_spaces")
    # A new revision of the space that already runs is no new running space.
    assert upload(client, one, STATIC).status_code == 202


def test_storage_quota_refuses_and_keeps_no_snapshot(olive, make_space, upload, api, settings):
    settings.QUOTA_STORAGE_PER_USER = 30_000
    space = make_space(olive, "one")
    client = api(olive)
    assert upload(client, space, {**STATIC, "a.bin": "x" * 20_000}).status_code == 202
    before = set(settings.SNAPSHOTS_DIR.iterdir())
    resp = upload(client, space, {**STATIC, "b.bin": "y" * 20_000})
    assert_error(resp, 403, "quota_storage")
    assert set(settings.SNAPSHOTS_DIR.iterdir()) == before  # the refused upload left nothing
    assert space.revisions.count() == 1


def test_a_deleted_spaces_address_goes_to_the_next_space(olive, make_space, run_on_commit):
    spaces = [make_space(olive, f"s{i}") for i in range(3)]
    assert [s.address_index for s in spaces] == [1, 2, 3]
    with run_on_commit():
        space_delete(space=spaces[1])
    assert not Space.objects.filter(pk=spaces[1].pk).exists()
    assert make_space(olive, "next").address_index == 2  # the lowest free index, not Max+1
    assert make_space(olive, "after").address_index == 4


def test_a_full_subnet_is_a_clear_refusal(olive, make_space, api, settings):
    settings.SPACES_SUBNET = "127.77.0.0/27"  # 32 addresses: 16 reserved, then 2 per space
    for i in range(6):
        make_space(olive, f"s{i}")
    assert_error(create(api(olive), "full"), 503, "no_address")


def test_reconcile_skips_a_broken_space_and_converges_the_rest(olive, make_space, settings, caplog):
    broken, good = make_space(olive, "broken"), make_space(olive, "good")
    config = proxy_config()
    route_file = settings.PROXY_ROUTES_DIR / f"{good.label}.conf"
    route_file.unlink(missing_ok=True)  # not written yet, or lost: reconcile writes it
    # An address past the end of the subnet: its route cannot be rendered.
    Space.objects.filter(pk=broken.pk).update(address_index=10**6)
    reconcile()
    assert route_file.exists()
    assert not proxy.routes_out_of_date([space_route(Space.objects.get(pk=good.pk))], config)
    assert "cannot be converged" in caplog.text and "broken" in caplog.text


def test_old_snapshots_are_pruned_keeping_what_running_previous_and_queued_revisions_need(
        olive, make_space, push, settings):
    from pathlib import Path

    from spaces.lifecycle import housekeeping

    space = make_space(olive, "site")
    revs = [push(space, {**STATIC, "v": str(i)}, olive) for i in range(1, 5)]  # 4 revisions that ran
    queued = push(space, {**STATIC, "v": "5"}, olive, run=False)                 # latest, not started
    Revision.objects.filter(pk=queued.pk).update(status=Revision.Status.QUEUED)
    other = make_space(olive, "copy")
    shared = push(other, {**STATIC, "v": "1"}, olive)  # same content as revision 1: one snapshot
    assert shared.snapshot_path == revs[0].snapshot_path
    pruned = housekeeping.snapshots_prune()
    rows = {r.number: r for r in space.revisions.all()}
    # Kept: running (4), the previous that ran (3), queued and latest (5).
    assert all(rows[n].snapshot_path and Path(rows[n].snapshot_path).is_dir() for n in (3, 4, 5))
    # Pruned: 1 and 2 lose their files; the row and its history stay, its bytes stop counting.
    assert rows[2].snapshot_path == "" and rows[2].snapshot_bytes == 0
    assert not Path(revs[1].snapshot_path).exists() and revs[1].snapshot_path in pruned
    assert rows[1].snapshot_path == "" and Path(revs[0].snapshot_path).is_dir()  # still the other space's
    assert housekeeping.snapshots_prune() == []  # nothing more to do
