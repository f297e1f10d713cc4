"""The shapes /hf answers in, byte for byte where the clients depend on them (issue 11):
errors, 404s that do not tell a hidden space from a missing one, 503 + Retry-After when the
database or broker is down, the download headers."""
from __future__ import annotations

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


def test_a_hidden_space_is_the_same_404_as_a_missing_one(people, make_space, api):
    make_space(people["owner"], "secret", visibility="private")
    stranger = api(people["stranger"])
    for path in ("/hf/api/spaces/olive/{}", "/hf/api/spaces/olive/{}/runtime", "/hf/api/spaces/olive/{}/tree/main",
                 "/hf/spaces/olive/{}/resolve/main/README.md"):
        hidden, missing = stranger.get(path.format("secret")), stranger.get(path.format("nothing"))
        assert hidden.status_code == missing.status_code == 404
        assert hidden["X-Error-Code"] == missing["X-Error-Code"] == "RepoNotFound"
        assert hidden.content == missing.content == b'{"error": "Repository not found.", "code": "not_found"}'


def test_models_and_datasets_are_not_here(api):
    resp = api().get("/hf/api/models/olive/bert")
    assert resp.status_code == 404 and resp["X-Error-Code"] == "RepoNotFound"
    assert 'repo_type="space"' in resp.json()["error"]


def test_downloads_carry_what_hf_hub_download_reads(people, make_space, api, upload, repo):
    space = make_space(people["owner"], "demo")
    assert upload(api(people["owner"]), space, repo.static).status_code == 202
    client = api()
    head = client.head("/hf/spaces/olive/demo/resolve/main/index.html")
    get = client.get("/hf/spaces/olive/demo/resolve/main/index.html")
    assert head.status_code == get.status_code == 200 and head.content == b""
    commit = space.revisions.get().commit
    for resp in (head, get):
        assert resp["X-Repo-Commit"] == commit
        assert resp["ETag"].strip('"') and len(resp["ETag"].strip('"')) == 40
        assert resp["Content-Length"] == str(len(repo.static["index.html"].encode()))
        assert resp["Content-Type"] == "application/octet-stream" and resp["X-Content-Type-Options"] == "nosniff"
    assert get.content == repo.static["index.html"].encode()
    ranged = client.get("/hf/spaces/olive/demo/resolve/main/index.html", HTTP_RANGE="bytes=4-")
    assert ranged.status_code == 206 and ranged.content == repo.static["index.html"].encode()[4:]
    missing = client.head("/hf/spaces/olive/demo/resolve/main/nope.txt")
    assert missing.status_code == 404 and missing["X-Error-Code"] == "EntryNotFound"
    no_rev = client.head("/hf/spaces/olive/demo/resolve/nobranch/index.html")
    assert no_rev.status_code == 404 and no_rev["X-Error-Code"] == "RevisionNotFound"


@pytest.mark.parametrize("down", [OperationalError("the database is restarting"),
                                  RedisConnectionError("the broker is restarting")])
def test_503_with_retry_after_when_the_database_or_broker_is_down(people, make_space, api, monkeypatch, down):
    from spaces.hfapi import api as hf_api
    from spaces.hfapi import api_space

    make_space(people["owner"], "demo")

    def fail(*args, **kwargs):
        raise down

    monkeypatch.setattr(hf_api, "get_space", fail)
    monkeypatch.setattr(api_space, "get_space", fail)
    monkeypatch.setattr(hf_api, "space_list_visible_to", fail)
    client = api(people["owner"])
    for resp in (client.get("/hf/api/spaces/olive/demo"), client.get("/hf/api/spaces/olive/demo/runtime"),
                 client.post("/hf/api/spaces/olive/demo/restart"), client.get("/hf/api/spaces")):
        assert resp.status_code == 503, resp.content
        assert resp["Retry-After"] and "try again" in resp.json()["error"]


@pytest.mark.parametrize("name", ["demo.git", "my--demo", "my..demo"])
def test_names_hugging_faces_clients_refuse_are_not_taken_for_new_spaces(people, api, name):
    resp = api(people["owner"]).post("/api/spaces", {"name": name, "sdk": "static"}, format="json")
    assert resp.status_code == 400 and resp.json()["detail"].startswith("name:"), resp.content
    hf = api(people["owner"]).post("/hf/api/repos/create", {"name": name, "organization": "olive", "type": "space",
                                                             "sdk": "static"}, format="json")
    assert hf.status_code == 400 and hf.json()["error"].startswith("name:"), hf.content
