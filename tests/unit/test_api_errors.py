"""Every API error is {"detail": "<sentence>", "code": "<word>"} with the status codes of design.md §4."""
from __future__ import annotations

import os

import pytest

from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]






def test_malformed_json_is_400(api, olive):
    resp = api(olive).generic("POST", "/api/spaces", "{not json", content_type="application/json")
    assert_error(resp, 400, "parse_error")


@pytest.mark.parametrize("body", ["[]", '"a string"', "null"])
def test_json_that_is_not_an_object_is_400(api, olive, make_space, body):
    make_space(olive, "demo")
    assert_error(api(olive).generic("POST", "/api/spaces", body, content_type="application/json"), 400)
    assert_error(api(olive).generic("PATCH", "/api/spaces/olive/demo", body, content_type="application/json"), 400)


def test_unsupported_media_type_is_415(api, olive):
    resp = api(olive).generic("POST", "/api/spaces", "name=x", content_type="text/csv")
    assert_error(resp, 415)


@pytest.mark.parametrize("method,path", [("put", "/api/spaces/olive/demo"), ("delete", "/api/spaces"),
                                         ("get", "/api/spaces/olive/demo/restart"), ("get", "/api/token")])
def test_wrong_method_is_405(api, olive, make_space, method, path):
    make_space(olive, "demo")
    assert_error(getattr(api(olive), method)(path), 405, "method_not_allowed")


def test_validation_errors_name_the_field_and_keep_the_details(api, olive):
    body = assert_error(api(olive).post("/api/spaces", {"name": "ok", "sdk": "php"}, format="json"), 400)
    assert body["detail"].startswith("sdk:")
    assert "sdk" in body["errors"]


def test_archive_over_the_size_limit_is_413(api, olive, make_space, upload, repo, settings):
    from spaces.records.models import Revision

    settings.UPLOAD_MAX_BYTES = 1024
    space = make_space(olive, "demo")
    big = dict(repo.static, **{"noise.bin": os.urandom(8192)})  # incompressible
    assert_error(upload(api(olive), space, big), 413, "archive_too_large")
    assert not Revision.objects.exists()


def test_conflict_is_409(api, olive, make_space):
    make_space(olive, "demo")
    assert_error(api(olive).post("/api/spaces", {"name": "demo", "sdk": "static"}, format="json"), 409, "exists")


def test_not_authenticated_has_www_authenticate(api, make_user, make_space):
    make_space(make_user("olive"), "demo")
    resp = api().post("/api/spaces/olive/demo/restart")
    assert_error(resp, 401, "not_authenticated")
    assert resp["WWW-Authenticate"].startswith("Bearer")


def test_permission_denied_is_403(api, make_user, make_space):
    make_space(make_user("olive"), "demo")
    assert_error(api(make_user("stan")).post("/api/spaces/olive/demo/restart"), 403, "permission_denied")
