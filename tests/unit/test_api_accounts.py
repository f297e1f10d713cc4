"""POST /api/users, POST /api/token and Bearer authentication (design.md §2, §4)."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from spaces.accounts.models import ApiToken
from tests.unit.helpers import assert_error

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


@override_settings(SIGNUP_OPEN=False)
@pytest.mark.parametrize("body", [{"username": "late", "password": PASSWORD}, {"username": "late"}, {}])
def test_signup_can_be_closed(api, body):
    # Closed comes first: even a malformed request is told so, not validated.
    body = assert_error(api().post("/api/users", body, format="json"), 403, "signup_closed")
    assert "closed" in body["detail"]
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


def _token_request(client, username="olive", password=PASSWORD):
    return client.post("/api/token", {"username": username, "password": password}, format="json")


# Test rates use periods of hours: django-ratelimit's windows are fixed, and one ending in the
# middle of a test would reset its counter.
def assert_rate_limited(resp, period_seconds: int) -> None:
    body = assert_error(resp, 429, "rate_limited")
    assert "try again" in body["detail"]
    assert 1 <= int(resp["Retry-After"]) <= period_seconds


def test_token_endpoint_limits_logins_per_ip_and_failures_count(api, make_user, settings):
    settings.LOGIN_RATE_PER_IP = "3/h"
    make_user("olive")
    client = api()
    assert [_token_request(client, password="wrong").status_code for _ in range(3)] == [401] * 3
    # Over the limit even with the right password: the password is not even checked.
    assert_rate_limited(_token_request(client), 3600)
    assert not ApiToken.objects.exists()
    # X-Forwarded-For is not trusted: the client address is REMOTE_ADDR.
    assert_rate_limited(client.post("/api/token", {"username": "olive", "password": PASSWORD}, format="json",
                                    HTTP_X_FORWARDED_FOR="192.0.2.8"), 3600)
    assert _token_request(api()).status_code == 201  # another address


def test_token_endpoint_limits_logins_per_username_across_addresses(api, make_user, settings):
    settings.LOGIN_RATE_PER_USERNAME = "2/h"
    make_user("olive")
    make_user("otto")
    assert _token_request(api(), password="wrong").status_code == 401
    assert _token_request(api(), username="OLIVE", password="wrong").status_code == 401  # any case: one counter
    assert_rate_limited(_token_request(api()), 3600)  # a fresh address, the same account
    assert _token_request(api(), username="otto").status_code == 201


def test_token_creation_is_limited_per_user(api, make_user, settings):
    settings.TOKEN_CREATE_RATE_PER_USER = "2/h"
    make_user("olive")
    make_user("otto")
    assert [_token_request(api()).status_code for _ in range(2)] == [201, 201]
    assert_rate_limited(_token_request(api()), 3600)
    assert ApiToken.objects.filter(user__username="olive").count() == 2
    assert _token_request(api(), username="otto").status_code == 201


def test_signup_is_limited_per_ip_and_every_attempt_counts(api, settings):
    settings.SIGNUP_RATE_PER_IP = "2/10h"
    client = api()
    assert client.post("/api/users", {"username": "one", "password": "short"}, format="json").status_code == 400
    assert client.post("/api/users", {"username": "two", "password": PASSWORD}, format="json").status_code == 201
    resp = client.post("/api/users", {"username": "three", "password": PASSWORD}, format="json")
    assert_rate_limited(resp, 36000)
    assert not User.objects.filter(username="three").exists()
    assert api().post("/api/users", {"username": "four", "password": PASSWORD}, format="json").status_code == 201


@pytest.mark.parametrize("run", [1, 2])
def test_rate_limit_counters_do_not_leak_between_tests(api, make_user, settings, run):
    # The same address and account in both runs: a counter kept from run 1 would refuse run 2.
    # (After a good login this address is the account's, which only the per name and address
    # counter limits then: ratelimits.check_login.)
    settings.LOGIN_RATE_PER_USERNAME = "1/h"
    settings.LOGIN_RATE_PER_USERNAME_AND_IP = "1/h"
    make_user("olive")
    client = api()
    client.defaults["REMOTE_ADDR"] = "198.51.100.1"
    assert _token_request(client).status_code == 201
    assert_rate_limited(_token_request(client), 3600)


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


# ------------------------------------------------------------------------------ token list, revoke
def test_token_list_is_the_callers_own_and_never_holds_a_secret(api, make_user, make_token):
    olive, otto = make_user("olive"), make_user("otto")
    raws = [make_token(olive, "read"), make_token(olive)]
    otto_raw = make_token(otto)
    resp = api(token=raws[0]).get("/api/tokens")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert {t["hint"] for t in body["results"]} == {raw[:7] for raw in raws}
    for t in body["results"]:
        assert set(t) == {"id", "name", "scope", "hint", "created_at", "last_used_at", "revoked_at"}
    for secret in [*raws, otto_raw, *ApiToken.objects.values_list("token_hash", flat=True)]:
        assert secret not in resp.content.decode()


def test_token_revoke_by_api(api, make_user, make_token):
    olive = make_user("olive")
    raw = make_token(olive)
    victim = make_token(olive)
    victim_id = ApiToken.objects.get(token_hash=ApiToken.hash_token(victim)).pk
    assert api(token=victim).get("/api/me").status_code == 200
    resp = api(token=raw).delete(f"/api/tokens/{victim_id}")
    assert resp.status_code == 204 and not resp.content
    assert_error(api(token=victim).get("/api/me"), 401, "invalid_token")
    listed = {t["id"]: t for t in api(token=raw).get("/api/tokens").json()["results"]}
    assert listed[victim_id]["revoked_at"] is not None
    first = ApiToken.objects.get(pk=victim_id).revoked_at
    assert api(token=raw).delete(f"/api/tokens/{victim_id}").status_code == 204  # again: no change
    assert ApiToken.objects.get(pk=victim_id).revoked_at == first


def test_token_revoke_of_another_users_token_is_404(api, make_user, make_token):
    olive, otto = make_user("olive"), make_user("otto")
    otto_raw = make_token(otto)
    otto_id = ApiToken.objects.get(user=otto).pk
    assert_error(api(olive).delete(f"/api/tokens/{otto_id}"), 404, "not_found")
    assert_error(api(olive).delete("/api/tokens/999999"), 404, "not_found")
    assert ApiToken.objects.get(pk=otto_id).revoked_at is None
    assert api(token=otto_raw).get("/api/me").status_code == 200


def test_token_calls_need_credentials_and_revoking_needs_write(api, make_user, make_token):
    olive = make_user("olive")
    make_token(olive)
    token_id = ApiToken.objects.get(user=olive).pk
    assert_error(api().get("/api/tokens"), 401)
    assert_error(api().delete(f"/api/tokens/{token_id}"), 401)
    reader = api(olive, scope="read")
    assert reader.get("/api/tokens").status_code == 200
    assert_error(reader.delete(f"/api/tokens/{token_id}"), 403)
    assert ApiToken.objects.get(pk=token_id).revoked_at is None


def test_token_records_last_use_at_most_once_a_minute(api, make_user, make_token):
    from datetime import timedelta

    from django.utils import timezone

    user = make_user("olive")
    raw = make_token(user)
    client = api(token=raw)
    client.get("/api/me")
    first = ApiToken.objects.get(user=user).last_used_at
    client.get("/api/me")
    assert ApiToken.objects.get(user=user).last_used_at == first  # no write within the minute
    ApiToken.objects.filter(user=user).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/me")
    assert ApiToken.objects.get(user=user).last_used_at > first - timedelta(seconds=1)
    assert ApiToken.objects.get(user=user).last_used_at <= timezone.now()
