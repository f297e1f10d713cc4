"""POST /api/users, POST /api/token and Bearer authentication (design.md §2, §4)."""
from __future__ import annotations

import pytest

from tests.unit.helpers import assert_error
from django.contrib.auth import get_user_model

from spaces.models import ApiToken

from .conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
User = get_user_model()




# ------------------------------------------------------------------------------ sign-up
def test_signup_creates_user(api):
    resp = api().post("/api/users", {"username": "newbie", "password": PASSWORD, "email": "n@example.com"},
                      format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["username"] == "newbie"
    assert "password" not in resp.json()
    user = User.objects.get(username="newbie")
    assert user.check_password(PASSWORD)
    assert user.password != PASSWORD


def test_signup_without_email(api):
    resp = api().post("/api/users", {"username": "plain", "password": PASSWORD}, format="json")
    assert resp.status_code == 201, resp.content


@pytest.mark.parametrize("taken", ["olive", "OLIVE"])
def test_signup_duplicate_username_is_400(api, make_user, taken):
    make_user("olive")
    body = assert_error(api().post("/api/users", {"username": taken, "password": PASSWORD}, format="json"), 400)
    assert "username" in body["detail"]
    assert User.objects.filter(username__iexact="olive").count() == 1


@pytest.mark.parametrize("password", ["password", "12345678901", "short", "newbie123"])
def test_signup_weak_password_is_400(api, password):
    body = assert_error(api().post("/api/users", {"username": "newbie", "password": password}, format="json"), 400)
    assert body["detail"]
    assert not User.objects.filter(username="newbie").exists()


@pytest.mark.parametrize("username", ["", "-dash", "has space", "a" * 40, "semi;colon"])
def test_signup_bad_username_is_400(api, username):
    assert_error(api().post("/api/users", {"username": username, "password": PASSWORD}, format="json"), 400)


def test_signup_missing_fields_is_400_naming_the_field(api):
    body = assert_error(api().post("/api/users", {"username": "nopass"}, format="json"), 400)
    assert "password" in body["detail"]


def test_signup_bad_email_is_400(api):
    body = assert_error(api().post("/api/users", {"username": "x1", "password": PASSWORD, "email": "nope"},
                                   format="json"), 400)
    assert "email" in body["detail"]


def test_signup_can_be_closed(api, settings):
    settings.SIGNUP_OPEN = False
    assert_error(api().post("/api/users", {"username": "late", "password": PASSWORD}, format="json"),
                 403, "signup_closed")
    assert not User.objects.filter(username="late").exists()


# ------------------------------------------------------------------------------ tokens
def test_token_is_created_once_and_stored_hashed(api, make_user):
    user = make_user("olive")
    resp = api().post("/api/token", {"username": "olive", "password": PASSWORD, "name": "laptop"}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["token"].startswith("dh_") and len(body["token"]) > 30
    assert body["name"] == "laptop"
    assert body["scope"] == "write"  # the default
    row = ApiToken.objects.get(user=user)
    assert row.token_hash == ApiToken.hash_token(body["token"])
    assert body["token"] not in (row.token_hash, row.hint, row.name)
    # Shown once: a second call makes a different token, never the same one again.
    again = api().post("/api/token", {"username": "olive", "password": PASSWORD}, format="json").json()
    assert again["token"] != body["token"]
    assert again["name"]  # a default name


def test_token_read_scope(api, make_user):
    make_user("olive")
    resp = api().post("/api/token", {"username": "olive", "password": PASSWORD, "scope": "read"}, format="json")
    assert resp.status_code == 201
    assert resp.json()["scope"] == "read"


def test_token_bad_scope_is_400(api, make_user):
    make_user("olive")
    body = assert_error(api().post("/api/token", {"username": "olive", "password": PASSWORD, "scope": "admin"},
                                   format="json"), 400)
    assert "scope" in body["detail"]


@pytest.mark.parametrize("username,password", [("olive", "wrong password"), ("nobody", PASSWORD)])
def test_token_wrong_credentials_is_401(api, make_user, username, password):
    make_user("olive")
    resp = api().post("/api/token", {"username": username, "password": password}, format="json")
    assert_error(resp, 401)
    assert not ApiToken.objects.exists()


def test_token_endpoint_is_rate_limited_with_retry_after(api, make_user):
    make_user("olive")
    client = api()
    codes = [client.post("/api/token", {"username": "olive", "password": "wrong"}, format="json").status_code
             for _ in range(21)]
    assert codes[:20] == [401] * 20
    assert codes[20] == 429
    resp = client.post("/api/token", {"username": "olive", "password": PASSWORD}, format="json")
    assert_error(resp, 429, "throttled")
    assert int(resp["Retry-After"]) > 0


def test_read_token_cannot_write(api, make_user, make_space):
    owner = make_user("olive")
    make_space(owner, "demo")
    reader = api(owner, scope="read")
    assert reader.get("/api/spaces/olive/demo").status_code == 200
    assert reader.get("/api/me").json()["username"] == "olive"
    assert_error(reader.post("/api/spaces", {"name": "other", "sdk": "static"}, format="json"), 403)
    assert_error(reader.patch("/api/spaces/olive/demo", {"title": "x"}, format="json"), 403)
    assert_error(reader.delete("/api/spaces/olive/demo"), 403)
    assert_error(reader.post("/api/spaces/olive/demo/pause"), 403)
    writer = api(owner, scope="write")
    assert writer.patch("/api/spaces/olive/demo", {"title": "x"}, format="json").status_code == 200


# ------------------------------------------------------------------------------ bearer auth
@pytest.mark.parametrize("header", ["Bearer dh_notarealtoken", "Bearer nonsense", "bearer dh_" + "x" * 200])
def test_bad_bearer_token_is_401(api, header, make_user, make_space):
    make_space(make_user("olive"), "demo")
    client = api()
    client.credentials(HTTP_AUTHORIZATION=header)
    for resp in (client.get("/api/spaces"), client.get("/api/spaces/olive/demo"), client.get("/api/me")):
        body = assert_error(resp, 401, "invalid_token")
        assert "token" in body["detail"].lower()
        assert resp["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(api, make_user, make_token):
    user = make_user("olive")
    raw = make_token(user)
    assert api(token=raw).get("/api/me").status_code == 200
    from django.utils import timezone
    ApiToken.objects.filter(user=user).update(revoked_at=timezone.now())
    assert_error(api(token=raw).get("/api/me"), 401, "invalid_token")


def test_token_of_inactive_user_is_401(api, make_user, make_token):
    user = make_user("olive")
    raw = make_token(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_error(api(token=raw).get("/api/me"), 401)


def test_token_records_last_use(api, make_user, make_token):
    user = make_user("olive")
    raw = make_token(user)
    assert ApiToken.objects.get(user=user).last_used_at is None
    api(token=raw).get("/api/me")
    assert ApiToken.objects.get(user=user).last_used_at is not None


def test_me_without_credentials_is_401(api):
    assert_error(api().get("/api/me"), 401)
