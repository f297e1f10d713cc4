"""POST/GET /api/spaces and GET/PATCH/DELETE /api/spaces/<owner>/<name> (design.md §4)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest

from spaces.catalog.services import space_update
from spaces.community.services import like_add
from spaces.records.models import HostLabel, Space
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

SPACE_FIELDS = {"owner", "name", "sdk", "visibility", "status", "url", "title", "emoji", "short_description",
                "tags", "revision", "running_revision", "error", "likes", "sleep_after", "created_at",
                "updated_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")






# ------------------------------------------------------------------------------ create
def test_create_space_returns_the_space_object(api, olive, run_on_commit, settings):
    with run_on_commit():
        resp = api(olive).post("/api/spaces", {"name": "my-demo", "sdk": "gradio", "visibility": "private",
                                               "title": "My demo", "short_description": "Does things"},
                               format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert SPACE_FIELDS <= set(body), SPACE_FIELDS - set(body)
    assert body["owner"] == "olive"
    assert body["name"] == "my-demo"
    assert body["sdk"] == "gradio"
    assert body["visibility"] == "private"
    assert body["title"] == "My demo"
    assert body["short_description"] == "Does things"
    assert body["status"] == "NO_APP_FILE"
    assert body["revision"] is None and body["running_revision"] is None
    assert body["tags"] == []
    assert body["likes"] == 0
    assert body["sleep_after"] == settings.SPACE_SLEEP_AFTER_DEFAULT
    assert body["error"] == ""
    assert isinstance(body["emoji"], str)
    for key in ("created_at", "updated_at"):
        assert ISO_UTC.match(body[key]), body[key]
    space = Space.objects.get(owner=olive, name="my-demo")
    assert body["url"] == f"http://{space.label}.{settings.SPACES_DOMAIN}:{settings.SPACES_PORT}/"
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", space.label)
    assert HostLabel.objects.filter(label=space.label).exists()
    # The route was published for the new space (on commit).
    assert (settings.PROXY_ROUTES_DIR / f"{space.label}.conf").is_file()
    # GET returns the same object, plus whether the caller likes it.
    got = api(olive).get("/api/spaces/olive/my-demo").json()
    assert got.pop("liked") is False
    assert got == body


def test_create_defaults(api, olive):
    body = api(olive).post("/api/spaces", {"name": "d", "sdk": "static"}, format="json").json()
    assert body["visibility"] == "public"
    assert body["title"] == "d"


@pytest.mark.parametrize("sdk", ["gradio", "streamlit", "static", "docker"])
def test_create_every_sdk(api, olive, sdk):
    assert api(olive).post("/api/spaces", {"name": f"s-{sdk}", "sdk": sdk}, format="json").status_code == 201


@pytest.mark.parametrize("payload,field", [
    ({"name": "x", "sdk": "flask"}, "sdk"),
    ({"name": "x"}, "sdk"),
    ({"sdk": "gradio"}, "name"),
    ({"name": "x", "sdk": "gradio", "visibility": "secret"}, "visibility"),
    ({"name": "bad name!", "sdk": "gradio"}, "name"),
    ({"name": "-x", "sdk": "gradio"}, "name"),
    ({"name": "x" * 97, "sdk": "gradio"}, "name"),
])
def test_create_invalid_is_400_naming_the_field(api, olive, payload, field):
    body = assert_error(api(olive).post("/api/spaces", payload, format="json"), 400)
    assert field in body["detail"], body
    assert not Space.objects.exists()


@pytest.mark.parametrize("again", ["demo", "DEMO"])
def test_create_duplicate_is_409(api, olive, again):
    assert api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json").status_code == 201
    assert_error(api(olive).post("/api/spaces", {"name": again, "sdk": "gradio"}, format="json"), 409)
    assert Space.objects.count() == 1


def test_same_name_for_two_owners(api, olive, make_user):
    other = make_user("oscar")
    assert api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json").status_code == 201
    assert api(other).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json").status_code == 201
    labels = set(Space.objects.values_list("label", flat=True))
    assert len(labels) == 2


@pytest.mark.parametrize("name", ["demo.git", "Demo.GIT", "my--demo", "a..b"])
def test_names_git_clients_refuse_are_refused_for_new_spaces(api, olive, name):
    resp = api(olive).post("/api/spaces", {"name": name, "sdk": "static"}, format="json")
    assert_error(resp, 400)
    assert ".git" in resp.json()["detail"] or "name" in str(resp.json())
    assert not Space.objects.exists()


def test_an_existing_space_named_like_a_repository_keeps_working(api, olive, make_space):
    space = make_space(olive, "plain")
    Space.objects.filter(pk=space.pk).update(name="old.git")
    assert api(olive).get("/api/spaces/olive/old.git").status_code == 200


def test_create_anonymous_is_401(api):
    assert_error(api().post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json"), 401)
    assert not Space.objects.exists()


# ------------------------------------------------------------------------------ list
@pytest.fixture
def catalogue(make_user, make_space):
    olive, oscar = make_user("olive"), make_user("oscar")
    a = make_space(olive, "image-classifier", sdk="gradio", title="Cats or dogs",
                   short_description="Tells cats from dogs")
    b = make_space(olive, "chatbot", sdk="streamlit", title="Chat")
    c = make_space(oscar, "homepage", sdk="static", title="My homepage")
    d = make_space(oscar, "secret", sdk="gradio", visibility="private")
    # Through the service, which also refreshes the search document (a raw UPDATE would not).
    space_update(space=a, tags=["vision", "cats"])
    space_update(space=b, tags=["nlp"])
    return {"olive": olive, "oscar": oscar, "spaces": (a, b, c, d)}


def names(resp) -> set[str]:
    assert resp.status_code == 200, resp.content
    return {f"{s['owner']}/{s['name']}" for s in resp.json()["results"]}


def test_list_shape(api, catalogue):
    resp = api().get("/api/spaces")
    body = resp.json()
    assert set(body) >= {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert body["next"] is None and body["previous"] is None
    assert all(SPACE_FIELDS <= set(s) for s in body["results"])


def test_list_hides_private_spaces(api, catalogue):
    public = {"olive/image-classifier", "olive/chatbot", "oscar/homepage"}
    assert names(api().get("/api/spaces")) == public
    assert names(api(catalogue["olive"]).get("/api/spaces")) == public
    assert names(api(catalogue["oscar"]).get("/api/spaces")) == public | {"oscar/secret"}


@pytest.mark.parametrize("query,expected", [
    ("sdk=gradio", {"olive/image-classifier"}),
    ("sdk=static", {"oscar/homepage"}),
    ("sdk=docker", set()),
    ("tag=nlp", {"olive/chatbot"}),
    ("tag=cats", {"olive/image-classifier"}),
    ("author=oscar", {"oscar/homepage"}),
    ("author=OLIVE", {"olive/image-classifier", "olive/chatbot"}),
    ("search=dogs", {"olive/image-classifier"}),
    ("search=homepage", {"oscar/homepage"}),
    ("search=CHAT", {"olive/chatbot"}),
    ("search=vision", {"olive/image-classifier"}),
    ("search=secret", set()),
    ("sdk=gradio&author=oscar", set()),
])
def test_list_filters(api, catalogue, query, expected):
    assert names(api().get(f"/api/spaces?{query}")) == expected


@pytest.mark.parametrize("sort", ["trending", "likes", "recent"])
def test_list_sorts(api, catalogue, sort):
    a, b, c, _ = catalogue["spaces"]
    # Through the service, which keeps Space.like_count (what lists sort by and show) in step.
    like_add(space=c, user=catalogue["olive"])
    like_add(space=c, user=catalogue["oscar"])
    like_add(space=b, user=catalogue["olive"])
    results = api().get(f"/api/spaces?sort={sort}").json()["results"]
    order = [s["name"] for s in results]
    if sort in ("trending", "likes"):
        assert order == ["homepage", "chatbot", "image-classifier"]
        assert [s["likes"] for s in results] == [2, 1, 0]
    else:
        a.refresh_from_db()
        a.title = "touched"
        a.save()  # auto_now bumps updated_at
        assert api().get("/api/spaces?sort=recent").json()["results"][0]["name"] == "image-classifier"


def test_list_bad_sort_is_400(api, catalogue):
    body = assert_error(api().get("/api/spaces?sort=bad"), 400)
    assert "sort" in body["detail"]


def test_list_page_size_capped_at_100(api, make_user):
    owner = make_user("olive")
    Space.objects.bulk_create([Space(owner=owner, name=f"s{i}", sdk="static", label=f"olive-s{i}",
                                     address_index=i + 1) for i in range(105)])
    body = api().get("/api/spaces?page_size=1000").json()
    assert body["count"] == 105
    assert len(body["results"]) == 100
    assert body["next"] and "page=2" in body["next"]
    second = api().get("/api/spaces?page_size=1000&page=2").json()
    assert len(second["results"]) == 5
    assert second["previous"]
    assert len(api().get("/api/spaces").json()["results"]) == 20  # the default
    small = api().get("/api/spaces?page_size=7&page=3").json()
    assert len(small["results"]) == 7
    all_names = set()
    for page in range(1, 3):
        all_names |= {s["name"] for s in api().get(f"/api/spaces?page_size=100&page={page}").json()["results"]}
    assert len(all_names) == 105


def test_list_page_out_of_range_is_404_with_error_body(api, catalogue):
    assert_error(api().get("/api/spaces?page=99"), 404)


def test_list_collaborator_sees_private_space_once(api, catalogue, make_user):
    from spaces.access.models import Collaborator

    vera = make_user("vera")
    secret = catalogue["spaces"][3]
    Collaborator.objects.create(space=secret, user=vera, role="viewer")
    resp = api(vera).get("/api/spaces?author=oscar")
    assert [s["name"] for s in resp.json()["results"]].count("secret") == 1
    assert resp.json()["count"] == 2


# ------------------------------------------------------------------------------ detail
def test_detail_is_case_insensitive_and_404_for_missing(api, catalogue):
    assert api().get("/api/spaces/OLIVE/Chatbot").json()["name"] == "chatbot"
    assert_error(api().get("/api/spaces/olive/nope"), 404, "not_found")
    assert_error(api().get("/api/spaces/nobody/chatbot"), 404, "not_found")


def test_patch_by_owner(api, olive, make_space):
    make_space(olive, "demo")
    resp = api(olive).patch("/api/spaces/olive/demo",
                            {"title": "New title", "short_description": "new", "tags": ["a", "b"],
                             "sleep_after": 3600}, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["title"], body["short_description"], body["tags"], body["sleep_after"]) == \
           ("New title", "new", ["a", "b"], 3600)
    assert api(olive).patch("/api/spaces/olive/demo", {"sleep_after": -1}, format="json").json()["sleep_after"] == -1


@pytest.mark.parametrize("payload,field", [
    ({"owner": "someone"}, "owner"),
    ({"status": "RUNNING"}, "status"),
    ({"name": "renamed"}, "name"),
    ({"sdk": "docker"}, "sdk"),
    ({"title": "ok", "label": "evil"}, "label"),
    ({"visibility": "secret"}, "visibility"),
    ({"sleep_after": 5}, "sleep_after"),
    ({"sleep_after": -2}, "sleep_after"),
    ({"tags": "not-a-list"}, "tags"),
])
def test_patch_invalid_or_unknown_field_is_400(api, olive, make_space, payload, field):
    make_space(olive, "demo")
    body = assert_error(api(olive).patch("/api/spaces/olive/demo", payload, format="json"), 400)
    assert field in body["detail"], body
    space = Space.objects.get(name="demo")
    assert space.title == "demo" and space.status == "NO_APP_FILE" and space.sdk == "static"


def test_patch_visibility(api, olive, make_user, run_on_commit, settings):
    with run_on_commit():
        api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json")
    space = Space.objects.get(name="demo")
    flag = settings.PROXY_ROUTES_DIR.parent / "state" / f"{space.label}.private"
    assert not flag.exists()
    with run_on_commit():
        resp = api(olive).patch("/api/spaces/olive/demo", {"visibility": "private"}, format="json")
    assert resp.status_code == 200 and resp.json()["visibility"] == "private"
    # The route was published again, as a private one (the gate itself is test_proxy.py's business).
    assert flag.exists()
    stan = make_user("stan")
    assert_error(api(stan).get("/api/spaces/olive/demo"), 404)
    assert_error(api().get("/api/spaces/olive/demo"), 404)


@pytest.mark.parametrize("visibility,who,expected", [
    ("public", "editor", 403), ("public", "viewer", 403), ("public", "stranger", 403), ("public", "anonymous", 401),
    ("private", "editor", 403), ("private", "viewer", 403), ("private", "stranger", 404),
    ("private", "anonymous", 404),
])
def test_patch_visibility_by_non_owner(api, people, make_space, visibility, who, expected):
    make_space(people["owner"], "demo", visibility=visibility, editors=[people["editor"]],
               viewers=[people["viewer"]])
    new = "private" if visibility == "public" else "public"
    resp = api(people[who]).patch("/api/spaces/olive/demo", {"visibility": new}, format="json")
    assert_error(resp, expected)
    assert Space.objects.get(name="demo").visibility == visibility


def test_editor_may_patch_title_but_not_visibility(api, people, make_space):
    make_space(people["owner"], "demo", editors=[people["editor"]], viewers=[people["viewer"]])
    assert api(people["editor"]).patch("/api/spaces/olive/demo", {"title": "by editor"},
                                       format="json").status_code == 200
    assert_error(api(people["viewer"]).patch("/api/spaces/olive/demo", {"title": "by viewer"}, format="json"), 403)
    assert Space.objects.get(name="demo").title == "by editor"


def test_delete(api, olive, make_space, run_on_commit, settings):
    space = make_space(olive, "demo")
    with run_on_commit():
        resp = api(olive).delete("/api/spaces/olive/demo")
    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "DELETING"
    # The delete task ran (eager): row, route and label's route file are gone; the label is kept.
    assert not Space.objects.filter(pk=space.pk).exists()
    assert not (settings.PROXY_ROUTES_DIR / f"{space.label}.conf").exists()
    assert HostLabel.objects.filter(label=space.label).exists()
    assert_error(api(olive).get("/api/spaces/olive/demo"), 404)
    # The name is free again, with a new host label (labels are never reused).
    again = api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json")
    assert again.status_code == 201
    assert Space.objects.get(name="demo").label != space.label


def test_deleting_space_is_gone_from_api_at_once(api, olive, make_space):
    """Between the DELETE and the purge, the space answers like a missing one."""
    make_space(olive, "demo")
    assert api(olive).delete("/api/spaces/olive/demo").status_code == 202  # purge not run (no commit)
    assert Space.objects.get(name="demo").status == "DELETING"
    assert_error(api(olive).get("/api/spaces/olive/demo"), 404)
    assert names(api(olive).get("/api/spaces")) == set()
    assert_error(api(olive).delete("/api/spaces/olive/demo"), 404)


def test_times_are_utc(api, olive, make_space):
    make_space(olive, "demo")
    body = api().get("/api/spaces/olive/demo").json()
    created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    assert created.utcoffset().total_seconds() == 0


def test_only_the_owner_allows_force_pushes(api, olive, make_user, make_space):
    eddie = make_user("eddie")
    make_space(olive, "demo", editors=[eddie])
    assert api(olive).get("/api/spaces/olive/demo").json()["allow_force_push"] is False
    assert_error(api(eddie).patch("/api/spaces/olive/demo", {"allow_force_push": True}, format="json"), 403)
    resp = api(olive).patch("/api/spaces/olive/demo", {"allow_force_push": True}, format="json")
    assert resp.status_code == 200 and resp.json()["allow_force_push"] is True
    assert Space.objects.get(name="demo").allow_force_push


def test_the_settings_page_switches_force_pushes_for_the_owner_only(client, olive, make_user, make_space):
    eddie = make_user("eddie")
    make_space(olive, "demo", editors=[eddie])
    client.force_login(olive)
    page = client.get("/spaces/olive/demo/settings")
    assert b'action="actions/force-push"' in page.content and b"Allow force pushes to <code>main</code>" in page.content
    answer = client.post("/spaces/olive/demo/actions/force-push", {"allow_force_push": "on"})
    assert answer.status_code == 302 and Space.objects.get(name="demo").allow_force_push
    client.post("/spaces/olive/demo/actions/force-push", {})  # an unticked box is not sent
    assert not Space.objects.get(name="demo").allow_force_push
    client.force_login(eddie)  # an editor pushes, but does not decide whether main may be rewritten
    assert b"actions/force-push" not in client.get("/spaces/olive/demo/settings").content
    assert client.post("/spaces/olive/demo/actions/force-push", {"allow_force_push": "on"}).status_code in (403, 404)
    assert not Space.objects.get(name="demo").allow_force_push
