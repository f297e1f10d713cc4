"""The role table of design.md §6 against the API, for every persona and both visibilities, and
"404 missing or not visible to the caller (identical)" of §4.

| | anonymous | stranger | viewer | editor | owner |
| page (detail, list)                    | public only | public only | yes | yes | yes |
| build/run logs, revisions              | no          | no          | no  | yes | yes |
| upload revision, restart               | no          | no          | no  | yes | yes |
| visibility, pause, delete              | no          | no          | no  | no  | yes |

"no" on something the caller can see is 401 for anonymous callers (no credentials) and 403 for
logged-in ones; on a private space they cannot see it is 404, the same as a missing space.
"""
from __future__ import annotations

import pytest
from django.test import Client

from spaces.records.models import Revision, Space

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

PERSONAS = ["owner", "editor", "viewer", "stranger", "anonymous"]
RANK = {"anonymous": 0, "stranger": 0, "viewer": 1, "editor": 2, "owner": 3}
# The weakest persona allowed to do each action (on a space it can see).
NEEDS = {"detail": "anonymous", "revisions": "editor", "revision": "editor", "logs_build": "editor",
         "logs_run": "editor", "upload": "editor", "restart": "editor", "patch_title": "editor",
         "pause": "owner", "delete": "owner", "patch_visibility": "owner"}
SUCCESS = {"detail": 200, "revisions": 200, "revision": 200, "logs_build": 200, "logs_run": 200, "upload": 202,
           "restart": 202, "patch_title": 200, "pause": 202, "delete": 202, "patch_visibility": 200}


def expected(action: str, visibility: str, who: str) -> int:
    sees = visibility == "public" or RANK[who] >= RANK["viewer"]
    if not sees:
        return 404
    if RANK[who] >= RANK[NEEDS[action]]:
        return SUCCESS[action]
    return 401 if who == "anonymous" else 403


@pytest.fixture
def world(people, make_space, make_token, tmp_path):
    """olive/pub and olive/priv: static, RUNNING revision 1; an editor and a viewer on both."""
    spaces = {}
    site = tmp_path / "snap"
    site.mkdir()
    (site / "index.html").write_text("hi")
    for vis, name in (("public", "pub"), ("private", "priv")):
        space = make_space(people["owner"], name, sdk="static", visibility=vis, editors=[people["editor"]],
                           viewers=[people["viewer"]])
        rev = Revision.objects.create(space=space, number=1, content_hash="0" * 64, snapshot_path=str(site),
                                      status="succeeded", created_by=people["owner"])
        Space.objects.filter(pk=space.pk).update(status="RUNNING", latest_revision=rev, running_revision=rev)
        spaces[vis] = space
    tokens = {who: (make_token(u) if u is not None else None) for who, u in people.items()}
    return {"spaces": spaces, "tokens": tokens}


def call(action: str, path: str, token: str | None, upload_bytes: bytes):
    """Run one action as the holder of `token` (None: anonymous). Returns the response."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from .conftest import next_ip

    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    client = APIClient(REMOTE_ADDR=next_ip(), **headers)
    base = f"/api/spaces/{path}"
    if action == "detail":
        return client.get(base)
    if action == "revisions":
        return client.get(f"{base}/revisions")
    if action == "revision":
        return client.get(f"{base}/revisions/1")
    if action in ("logs_build", "logs_run"):
        plain = Client(**headers)  # the log view is a plain (async) Django view
        return plain.get(f"{base}/logs/{action.split('_')[1]}")
    if action == "upload":
        archive = SimpleUploadedFile("r.tar.gz", upload_bytes, content_type="application/gzip")
        return client.post(f"{base}/revisions", {"archive": archive}, format="multipart")
    if action == "restart":
        return client.post(f"{base}/restart")
    if action == "pause":
        return client.post(f"{base}/pause")
    if action == "delete":
        return client.delete(base)
    if action == "patch_title":
        return client.patch(base, {"title": "changed"}, format="json")
    if action == "patch_visibility":
        return client.patch(base, {"visibility": "public" if path.endswith("priv") else "private"}, format="json")
    raise AssertionError(action)


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("who", PERSONAS)
@pytest.mark.parametrize("action", list(NEEDS))
def test_role_table(world, repo, visibility, who, action):
    space = world["spaces"][visibility]
    path = f"olive/{space.name}"
    resp = call(action, path, world["tokens"][who], repo.targz(repo.static))
    want = expected(action, visibility, who)
    assert resp.status_code == want, (action, visibility, who, resp.status_code, resp.content[:300])
    if want >= 400:
        body = resp.json()
        assert set(body) >= {"detail", "code"}, body
        # Refused: nothing changed.
        after = Space.objects.get(pk=space.pk)
        assert after.status == "RUNNING" and after.visibility == visibility and after.title == space.title
        assert Revision.objects.filter(space=space).count() == 1
    elif action == "upload":
        assert Revision.objects.filter(space=space).count() == 2
        assert Revision.objects.get(space=space, number=2).created_by.username == {
            "owner": "olive", "editor": "eddie"}[who]
    elif action == "pause":
        assert Space.objects.get(pk=space.pk).status == "PAUSED"
    elif action == "delete":
        assert Space.objects.get(pk=space.pk).status == "DELETING"
    elif action == "restart":
        assert Space.objects.get(pk=space.pk).status == "APP_STARTING"


@pytest.mark.parametrize("who", PERSONAS)
def test_list_shows_what_the_role_table_allows(world, who):
    from rest_framework.test import APIClient

    from .conftest import next_ip

    token = world["tokens"][who]
    client = APIClient(REMOTE_ADDR=next_ip(), **({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}))
    body = client.get("/api/spaces").json()
    got = {s["name"] for s in body["results"]}
    want = {"pub"} | ({"priv"} if RANK[who] >= RANK["viewer"] else set())
    assert got == want
    assert body["count"] == len(want)
    assert names_of(client.get("/api/spaces?author=olive")) == want
    assert names_of(client.get("/api/spaces?search=priv")) == want - {"pub"}


def names_of(resp) -> set[str]:
    return {s["name"] for s in resp.json()["results"]}


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
@pytest.mark.parametrize("action", list(NEEDS))
def test_private_space_is_indistinguishable_from_a_missing_one(world, repo, who, action):
    token = world["tokens"][who]
    hidden = call(action, "olive/priv", token, repo.targz(repo.static))
    missing = call(action, "olive/no-such-space", token, repo.targz(repo.static))
    nobody = call(action, "nobody/priv", token, repo.targz(repo.static))
    assert hidden.status_code == missing.status_code == nobody.status_code == 404
    assert hidden.content == missing.content == nobody.content
    assert hidden.json() == {"detail": "Not found.", "code": "not_found"}
    for header in ("Content-Type", "WWW-Authenticate", "Allow", "Vary"):
        assert hidden.get(header) == missing.get(header), header


def test_revision_number_404_is_the_same_as_a_hidden_space(world):
    from rest_framework.test import APIClient

    owner = APIClient(HTTP_AUTHORIZATION=f"Bearer {world['tokens']['owner']}")
    stranger = APIClient(HTTP_AUTHORIZATION=f"Bearer {world['tokens']['stranger']}")
    no_rev = owner.get("/api/spaces/olive/priv/revisions/99")
    hidden = stranger.get("/api/spaces/olive/priv/revisions/1")
    assert no_rev.status_code == hidden.status_code == 404
    assert no_rev.content == hidden.content


def test_collaborator_of_another_space_is_a_stranger(world, people, make_space, make_token):
    other = make_space(people["owner"], "other", visibility="private")
    from spaces.access.models import Collaborator

    outsider = people["stranger"]
    Collaborator.objects.create(space=other, user=outsider, role="editor")
    resp = Client().get("/api/spaces/olive/priv", headers={"Authorization": f"Bearer {make_token(outsider)}"})
    assert resp.status_code == 404


def test_session_login_follows_the_same_table(world, people):
    client = Client()
    client.force_login(people["viewer"])
    assert client.get("/api/spaces/olive/priv").status_code == 200
    assert client.get("/api/spaces/olive/priv/logs/build").status_code == 403
    client.force_login(people["editor"])
    assert client.get("/api/spaces/olive/priv/logs/build").status_code == 200
