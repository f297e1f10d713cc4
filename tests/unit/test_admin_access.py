"""Issue 9, item 3: the Django admin goes through the hub's access machinery. A space made
private there is closed at the proxy at once (its epoch bumped, its private flag written:
runner/proxy.py), a collaborator removed or a share link revoked there ends that access, and
status, label and access_epoch are read-only."""
from __future__ import annotations

import pytest
from django.test import Client

from spaces.models import Collaborator, ShareLink, Space

pytestmark = pytest.mark.usefixtures("hub")


@pytest.fixture
def admin_client(make_user):
    admin = make_user("root-admin", is_staff=True, is_superuser=True)
    c = Client()
    c.force_login(admin)
    return c


@pytest.fixture
def space(api, olive, run_on_commit):
    with run_on_commit():
        assert api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json").status_code == 201
    return Space.objects.get(name="demo")


def _change_form(admin_client, space) -> dict:
    resp = admin_client.get(f"/admin/spaces/space/{space.pk}/change/")
    assert resp.status_code == 200
    form = resp.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if isinstance(value, (list, tuple)):
            data[name] = list(value)
        elif value is None:
            data[name] = ""
        else:
            data[name] = value
    return data


def test_status_label_and_epoch_are_read_only(admin_client, space):
    data = _change_form(admin_client, space)
    assert not {"status", "label", "access_epoch"} & set(data)
    resp = admin_client.get(f"/admin/spaces/space/{space.pk}/change/")
    assert {"status", "label", "access_epoch"} <= set(resp.context["adminform"].readonly_fields)
    assert admin_client.get("/admin/spaces/space/add/").status_code == 403


def test_private_in_the_admin_closes_the_proxy_at_once(admin_client, space, settings, run_on_commit):
    flag = settings.PROXY_ROUTES_DIR.parent / "state" / f"{space.label}.private"
    assert not flag.exists()
    epoch = space.access_epoch
    data = _change_form(admin_client, space)
    data.update(visibility="private", status="RUNNING", label="evil", access_epoch=0)   # read-only: ignored
    with run_on_commit():
        resp = admin_client.post(f"/admin/spaces/space/{space.pk}/change/", data)
    assert resp.status_code == 302, resp.content[:2000]
    fresh = Space.objects.get(pk=space.pk)
    assert fresh.visibility == "private" and fresh.label == space.label and fresh.status == space.status
    assert fresh.access_epoch == epoch + 1
    assert flag.read_text() == f"{epoch + 1}\n"      # the proxy's gate, without a reconcile


def test_collaborator_and_share_link_changes_in_the_admin_bump_the_epoch(admin_client, space, make_user,
                                                                           run_on_commit):
    viewer = make_user("vic")
    collab = Collaborator.objects.create(space=space, user=viewer, role="viewer")
    link = ShareLink.objects.create(space=space, token_hash="x" * 64, note="n")
    epoch = Space.objects.get(pk=space.pk).access_epoch
    with run_on_commit():
        resp = admin_client.post(f"/admin/spaces/collaborator/{collab.pk}/delete/", {"post": "yes"})
    assert resp.status_code == 302 and not Collaborator.objects.filter(pk=collab.pk).exists()
    assert Space.objects.get(pk=space.pk).access_epoch == epoch + 1
    resp = admin_client.get(f"/admin/spaces/sharelink/{link.pk}/change/")
    assert "token_hash" in resp.context["adminform"].readonly_fields
    with run_on_commit():
        resp = admin_client.post(f"/admin/spaces/sharelink/{link.pk}/change/", {
            "note": "n", "expires_at_0": "", "expires_at_1": "", "max_uses": "",
            "revoked_at_0": "2026-01-01", "revoked_at_1": "00:00:00"})
    assert resp.status_code == 302, resp.content[:2000]
    assert ShareLink.objects.get(pk=link.pk).revoked_at is not None
    assert Space.objects.get(pk=space.pk).access_epoch == epoch + 2
