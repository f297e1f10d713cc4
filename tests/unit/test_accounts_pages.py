"""Account pages: log out, password change, the account page, API tokens, closed sign-up and the
rate limits of the login, sign-up and token pages (issue 3)."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from spaces.accounts.models import ApiToken
from tests.unit.helpers import assert_error

from .conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
User = get_user_model()
NEW_PASSWORD = "a different horse battery 77"
TOKEN_RE = re.compile(r"dh_[A-Za-z0-9_-]{40,}")


def logged_in(username: str, password: str = PASSWORD, addr: str = "127.0.0.1") -> Client:
    """A browser with a real login (a session holding the password's auth hash)."""
    browser = Client(REMOTE_ADDR=addr)
    resp = browser.post("/accounts/login/", {"username": username, "password": password})
    assert resp.status_code == 302, resp.content
    return browser


def is_logged_in(browser: Client) -> bool:
    return browser.get("/settings/").status_code == 200


def me_status(raw_token: str) -> int:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {raw_token}").get("/api/me").status_code


def assert_page_rate_limited(resp, period_seconds: int) -> str:
    assert resp.status_code == 429, resp.status_code
    assert 1 <= int(resp["Retry-After"]) <= period_seconds
    page = resp.content.decode()
    assert "Too many attempts; try again in" in page
    assert "<form" in page  # the form is there to try again later
    return page


# ------------------------------------------------------------------------------ log in, log out
def test_login_page_logs_in_and_the_nav_shows_the_account(make_user):
    make_user("olive")
    browser = Client()
    assert browser.post("/accounts/login/", {"username": "olive", "password": "wrong"}).status_code == 200
    assert not is_logged_in(browser)
    browser = logged_in("olive")
    page = browser.get("/").content.decode()
    assert 'href="/settings/"' in page and ">olive</a>" in page
    assert 'action="/accounts/logout/"' in page


def test_logout_is_a_post_and_goes_to_browse(make_user):
    make_user("olive")
    browser = logged_in("olive")
    assert browser.get("/accounts/logout/").status_code == 405  # Django 5: no logout by a link
    assert is_logged_in(browser)
    resp = browser.post("/accounts/logout/")
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert not is_logged_in(browser)
    assert "Log in" in browser.get("/").content.decode()


def test_logout_needs_csrf(make_user):
    make_user("olive")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.get(username="olive"))
    assert browser.post("/accounts/logout/").status_code == 403
    assert is_logged_in(browser)


# ------------------------------------------------------------------------------ password
def test_password_change_needs_login():
    resp = Client().get("/accounts/password/")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")


def test_password_change_keeps_this_session_and_the_tokens(make_user, make_token):
    user = make_user("olive")
    raw = make_token(user)
    browser = logged_in("olive")
    elsewhere = logged_in("olive", addr="127.0.0.2")
    assert 'name="old_password"' in browser.get("/accounts/password/").content.decode()
    resp = browser.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                                "new_password2": NEW_PASSWORD})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/password/done/"
    assert "Password changed" in browser.get(resp["Location"]).content.decode()
    assert is_logged_in(browser)  # update_session_auth_hash
    assert not is_logged_in(elsewhere)  # other sessions end
    assert not Client().login(username="olive", password=PASSWORD)
    assert Client().login(username="olive", password=NEW_PASSWORD)
    # As on GitHub and Hugging Face, a password change does not revoke API tokens.
    assert me_status(raw) == 200


def test_password_change_with_a_wrong_current_password_changes_nothing(make_user):
    make_user("olive")
    browser = logged_in("olive")
    resp = browser.post("/accounts/password/", {"old_password": "not it", "new_password1": NEW_PASSWORD,
                                                "new_password2": NEW_PASSWORD})
    assert resp.status_code == 200
    assert "incorrectly" in resp.content.decode()
    assert User.objects.get(username="olive").check_password(PASSWORD)


# ------------------------------------------------------------------------------ account, tokens
@pytest.mark.parametrize("path", ["/settings/", "/settings/tokens"])
def test_account_pages_need_login(path):
    resp = Client().get(path)
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")


def test_account_page_links_tokens_and_password(make_user):
    make_user("olive", email="olive@example.com")
    page = logged_in("olive").get("/settings/").content.decode()
    assert "olive@example.com" in page
    assert 'href="/settings/tokens"' in page and 'href="/accounts/password/"' in page


def test_token_page_shows_a_new_token_once_and_it_works_until_revoked(make_user):
    user = make_user("olive")
    browser = logged_in("olive")
    resp = browser.post("/settings/tokens", {"name": "laptop", "scope": "write"})
    assert resp.status_code == 200
    assert "no-store" in resp["Cache-Control"]
    page = resp.content.decode()
    raw = TOKEN_RE.search(page).group(0)
    assert "shown only this once" in page
    token = ApiToken.objects.get(user=user)
    assert (token.name, token.scope, token.token_hash) == ("laptop", "write", ApiToken.hash_token(raw))
    # Nowhere else: not in the session, not on a reload (only the hint "dh_abcd…").
    assert raw not in repr(dict(browser.session.items()))
    reload = browser.get("/settings/tokens").content.decode()
    assert raw not in reload and not TOKEN_RE.search(reload)
    assert f"{raw[:7]}…" in reload and "laptop" in reload and "never" in reload
    assert me_status(raw) == 200
    assert "never" not in browser.get("/settings/tokens").content.decode()  # last used is shown

    resp = browser.post(f"/settings/tokens/{token.pk}/revoke")
    assert resp.status_code == 302 and resp["Location"] == "/settings/tokens"
    assert me_status(raw) == 401
    page = browser.get("/settings/tokens").content.decode()
    assert "revoked" in page and f"/settings/tokens/{token.pk}/revoke" not in page


def test_token_page_lists_only_the_callers_tokens(make_user, make_token):
    make_user("olive")
    otto = make_user("otto")
    otto_raw = make_token(otto)
    page = logged_in("olive").get("/settings/tokens").content.decode()
    assert otto_raw[:7] not in page and "No tokens yet" in page


def test_revoking_another_users_token_is_404(make_user, make_token):
    make_user("olive")
    otto = make_user("otto")
    otto_raw = make_token(otto)
    otto_token = ApiToken.objects.get(user=otto)
    browser = logged_in("olive")
    assert browser.post(f"/settings/tokens/{otto_token.pk}/revoke").status_code == 404
    assert browser.post("/settings/tokens/999999/revoke").status_code == 404
    assert browser.get(f"/settings/tokens/{otto_token.pk}/revoke").status_code == 405
    assert me_status(otto_raw) == 200


@pytest.mark.parametrize("data,field", [({"name": "", "scope": "read"}, "name"),
                                        ({"name": "ci", "scope": "admin"}, "scope")])
def test_token_form_needs_a_name_and_a_known_scope(make_user, data, field):
    make_user("olive")
    resp = logged_in("olive").post("/settings/tokens", data)
    assert resp.status_code == 200
    assert resp.context["form"].errors[field]
    assert not TOKEN_RE.search(resp.content.decode())
    assert not ApiToken.objects.exists()


def test_token_page_needs_csrf(make_user):
    make_user("olive")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.get(username="olive"))
    assert browser.post("/settings/tokens", {"name": "x", "scope": "read"}).status_code == 403
    assert not ApiToken.objects.exists()


# ------------------------------------------------------------------------------ sign-up
def test_signup_page_creates_and_logs_in():
    browser = Client()
    resp = browser.post("/accounts/signup/", {"username": "newbie", "password": PASSWORD})
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert is_logged_in(browser)


def test_signup_page_puts_password_problems_on_the_password_field():
    resp = Client().post("/accounts/signup/", {"username": "newbie", "password": "newbie123"})
    assert resp.status_code == 200
    assert resp.context["form"].errors["password"]
    assert not User.objects.filter(username="newbie").exists()


@override_settings(SIGNUP_OPEN=False)
def test_closed_signup_page_has_no_form_and_refuses_a_post():
    resp = Client().get("/accounts/signup/")
    assert resp.status_code == 403
    page = resp.content.decode()
    assert "Sign-up is closed" in page
    assert 'name="username"' not in page and 'name="password"' not in page
    resp = Client().post("/accounts/signup/", {"username": "late", "password": PASSWORD})
    assert resp.status_code == 403
    assert not User.objects.filter(username="late").exists()
    # Nothing links to it either.
    assert "/accounts/signup/" not in Client().get("/accounts/login/").content.decode()


@override_settings(SIGNUP_OPEN=False)
def test_closed_signup_api_is_403():
    resp = APIClient().post("/api/users", {"username": "late", "password": PASSWORD}, format="json")
    assert_error(resp, 403, "signup_closed")
    assert not User.objects.filter(username="late").exists()


# ------------------------------------------------------------------------------ rate limits
# Test rates use periods of hours: django-ratelimit's windows are fixed, and one ending in the
# middle of a test would reset its counter.
def test_login_page_is_limited_per_address_and_failures_count(make_user, settings):
    settings.LOGIN_RATE_PER_IP = "2/h"
    make_user("olive")
    browser = Client()
    for _ in range(2):
        assert browser.post("/accounts/login/", {"username": "olive", "password": "wrong"}).status_code == 200
    page = assert_page_rate_limited(browser.post("/accounts/login/", {"username": "olive", "password": PASSWORD}),
                                    3600)
    assert 'value="olive"' in page  # the form comes back with the username
    assert not is_logged_in(browser)
    # X-Forwarded-For is not trusted.
    resp = browser.post("/accounts/login/", {"username": "olive", "password": PASSWORD},
                        HTTP_X_FORWARDED_FOR="192.0.2.9")
    assert_page_rate_limited(resp, 3600)
    assert logged_in("olive", addr="127.0.0.3")  # another address


def test_login_limit_per_username_is_shared_by_the_page_and_the_api(make_user, settings):
    settings.LOGIN_RATE_PER_USERNAME = "2/h"
    make_user("olive")
    assert Client(REMOTE_ADDR="127.0.0.4").post("/accounts/login/",
                                                {"username": "olive", "password": "wrong"}).status_code == 200
    api = APIClient(REMOTE_ADDR="127.0.0.5")
    assert api.post("/api/token", {"username": "Olive", "password": "wrong"}, format="json").status_code == 401
    assert_page_rate_limited(Client(REMOTE_ADDR="127.0.0.6").post(
        "/accounts/login/", {"username": "olive", "password": PASSWORD}), 3600)
    resp = APIClient(REMOTE_ADDR="127.0.0.7").post("/api/token", {"username": "olive", "password": PASSWORD},
                                                    format="json")
    assert_error(resp, 429, "rate_limited")
    assert int(resp["Retry-After"]) >= 1


def test_signup_page_is_limited_per_address(settings):
    settings.SIGNUP_RATE_PER_IP = "1/10h"
    assert Client().post("/accounts/signup/", {"username": "first", "password": PASSWORD}).status_code == 302
    page = assert_page_rate_limited(
        Client().post("/accounts/signup/", {"username": "second", "password": PASSWORD}), 36000)
    assert 'value="second"' in page
    assert not User.objects.filter(username="second").exists()
    # The API call shares the counter.
    resp = APIClient().post("/api/users", {"username": "third", "password": PASSWORD}, format="json")
    assert_error(resp, 429, "rate_limited")
    assert Client(REMOTE_ADDR="127.0.0.8").post("/accounts/signup/",
                                                {"username": "fourth", "password": PASSWORD}).status_code == 302


def test_token_page_is_limited_per_user_with_the_api(make_user, settings):
    settings.TOKEN_CREATE_RATE_PER_USER = "1/h"
    make_user("olive")
    make_user("otto")
    browser = logged_in("olive")
    assert browser.post("/settings/tokens", {"name": "one", "scope": "read"}).status_code == 200
    page = assert_page_rate_limited(browser.post("/settings/tokens", {"name": "two", "scope": "read"}), 3600)
    assert not TOKEN_RE.search(page)
    assert 'value="two"' in page
    resp = APIClient(REMOTE_ADDR="127.0.0.9").post("/api/token", {"username": "olive", "password": PASSWORD},
                                                    format="json")
    assert_error(resp, 429, "rate_limited")
    assert list(ApiToken.objects.filter(user__username="olive").values_list("name", flat=True)) == ["one"]
    assert logged_in("otto").post("/settings/tokens", {"name": "mine", "scope": "read"}).status_code == 200
