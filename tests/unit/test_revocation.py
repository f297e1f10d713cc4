"""Taking access away ends it at once (issue 15, findings 10 and 12): logout, deactivation,
password change and token revocation bump the access epoch of the private spaces concerned
(the proxy forgets its cached answers) and the hub refuses the credential; the login limits
work per user name and address, the admin's login page included.

The proxy's side (the epoch as part of the nginx cache key) is in test_proxy.py; end to end
on the real proxy in tests/e2e/test_revocation.py.
"""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from spaces.access.services import collaborator_remove
from spaces.lifecycle import streams
from spaces.lifecycle.tasks import publish_route_task
from spaces.records.models import Space
from tests.unit.helpers import assert_error
from tests.unit.test_private_access import auth, enter

from .conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


@pytest.fixture
def spaces(people, make_space):
    """A private space where the viewer and the editor are collaborators, another private one
    the viewer has no part in, and a public one."""
    return {
        "private": make_space(people["owner"], "secret", visibility="private", editors=[people["editor"]],
                              viewers=[people["viewer"]]),
        "other": make_space(people["stranger"], "elsewhere", visibility="private"),
        "public": make_space(people["owner"], "open", viewers=[people["viewer"]]),
    }


def epochs(spaces) -> dict[str, int]:
    return {k: Space.objects.get(pk=s.pk).access_epoch for k, s in spaces.items()}


def logged_in_browser(username: str, addr: str) -> Client:
    c = Client(REMOTE_ADDR=addr)
    resp = c.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert resp.status_code == 302, resp.content[:300]
    return c


# ------------------------------------------------------------------------------ finding 10
def test_logout_ends_the_space_cookies_of_that_session_only(settings, people, spaces, run_on_commit):
    space = spaces["private"]
    first, second = logged_in_browser("vera", "10.250.0.1"), logged_in_browser("vera", "10.250.0.2")
    cookie_1, cookie_2 = enter(settings, first, space), enter(settings, second, space)
    assert auth(settings, space, cookie=cookie_1) == auth(settings, space, cookie=cookie_2) == 204
    before = epochs(spaces)
    with run_on_commit():
        assert first.post("/accounts/logout/").status_code in (200, 302)
    assert auth(settings, space, cookie=cookie_1) == 401                  # that session's cookie
    assert auth(settings, space, cookie=cookie_2) == 204                  # another session's: still in
    after = epochs(spaces)
    assert after["private"] == before["private"] + 1                      # the proxy forgets its answers
    assert after["other"] == before["other"] and after["public"] == before["public"]


@pytest.mark.parametrize("change", ["deactivate", "password", "delete"])
def test_losing_the_account_bumps_every_private_space_of_the_user(settings, people, spaces, run_on_commit,
                                                                   change):
    cookie = enter(settings, logged_in_browser("vera", "10.250.0.3"), spaces["private"])
    before = epochs(spaces)
    viewer = User.objects.get(username="vera")
    with run_on_commit():
        if change == "deactivate":
            viewer.is_active = False
            viewer.save()
        elif change == "password":
            viewer.set_password("another password 77")
            viewer.save()
        else:
            viewer.delete()
    after = epochs(spaces)
    assert after["private"] == before["private"] + 1
    assert after["other"] == before["other"] and after["public"] == before["public"]
    assert auth(settings, spaces["private"], cookie=cookie) == 401


def test_other_saves_of_a_user_bump_nothing(people, spaces, run_on_commit):
    before = epochs(spaces)
    with run_on_commit():
        viewer = User.objects.get(username="vera")
        viewer.email = "vera@example.com"
        viewer.save()
    assert epochs(spaces) == before


def test_revoking_a_token_bumps_the_private_spaces_of_its_user(settings, people, spaces, api, make_token,
                                                               run_on_commit):
    raw = make_token(people["editor"])
    headers = {"Authorization": f"Bearer {raw}"}
    assert auth(settings, spaces["private"], headers=headers) == 204
    client = api(token=raw)
    token_id = client.get("/api/tokens").json()["results"][0]["id"]
    before = epochs(spaces)
    with run_on_commit():
        assert client.delete(f"/api/tokens/{token_id}").status_code == 204
    after = epochs(spaces)
    assert after["private"] == before["private"] + 1 and after["other"] == before["other"]
    assert auth(settings, spaces["private"], headers=headers) == 401
    with run_on_commit():                                                 # again: no change, no bump
        assert api(people["editor"]).delete(f"/api/tokens/{token_id}").status_code == 204
    assert epochs(spaces) == after


def test_an_open_log_stream_rechecks_its_follower(people, spaces, make_token, run_on_commit):
    space = spaces["private"]
    raw = make_token(people["editor"])
    follower = dict(raw_token=raw, user_id=None, session_key=None, share_link_ids=[], space_id=space.pk)
    assert streams._still_allowed(**follower)
    with run_on_commit():
        collaborator_remove(space=space, username="eddie")      # what the API's DELETE calls
    assert not streams._still_allowed(**follower)


def test_a_session_follower_is_refused_once_logged_out(people, spaces):
    browser = logged_in_browser("olive", "10.250.0.4")
    key = browser.session.session_key
    follower = dict(raw_token=None, user_id=people["owner"].pk, session_key=key, share_link_ids=[],
                    space_id=spaces["private"].pk)
    assert streams._still_allowed(**follower)
    browser.post("/accounts/logout/")
    assert not streams._still_allowed(**follower)


# ------------------------------------------------------------------------------ finding 12: logins
def _login(addr: str, username: str, password: str, path: str = "/accounts/login/"):
    return Client(REMOTE_ADDR=addr).post(path, {"username": username, "password": password})


def test_a_stranger_cannot_lock_the_owner_out(settings, make_user):
    settings.LOGIN_RATE_PER_USERNAME_AND_IP = "2/h"
    settings.LOGIN_RATE_PER_USERNAME = "4/h"
    make_user("olive")
    assert _login("10.251.0.9", "olive", PASSWORD).status_code == 302      # the owner's usual address
    for _ in range(2):
        assert _login("10.251.0.1", "olive", "wrong").status_code == 200
    assert _login("10.251.0.1", "olive", PASSWORD).status_code == 429      # this address, this name
    # (that refusal counted nowhere else: the name's counter stands at 3 of 4)
    assert _login("10.251.0.2", "olive", "wrong").status_code == 200       # the name's limit reached
    assert _login("10.251.0.3", "olive", PASSWORD).status_code == 429      # a new address: limited
    assert _login("10.251.0.9", "olive", PASSWORD).status_code == 302      # the owner's: never locked out


def test_the_admin_login_is_rate_limited(settings, make_user):
    settings.LOGIN_RATE_PER_IP = "2/h"
    make_user("root", is_staff=True, is_superuser=True)
    admin = Client(REMOTE_ADDR="10.251.1.1")
    for _ in range(2):
        assert admin.post("/admin/login/", {"username": "root", "password": "wrong"}).status_code == 200
    resp = admin.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert resp.status_code == 429 and 1 <= int(resp["Retry-After"]) <= 3600
    assert "Too many attempts" in resp.content.decode()
    assert admin.get("/admin/").status_code == 302                       # not logged in
    # The admin page and the hub's share the counters: the hub's login page is limited too.
    assert Client(REMOTE_ADDR="10.251.1.1").post("/accounts/login/", {"username": "root",
                                                                     "password": PASSWORD}).status_code == 429
    assert _login("10.251.1.2", "root", PASSWORD, "/admin/login/?next=/admin/").status_code == 302


def test_the_api_counts_per_name_and_address_too(settings, make_user, api):
    settings.LOGIN_RATE_PER_USERNAME_AND_IP = "1/h"
    make_user("olive")
    client = api()
    assert client.post("/api/token", {"username": "olive", "password": "wrong"}, format="json").status_code == 401
    assert_error(client.post("/api/token", {"username": "olive", "password": PASSWORD}, format="json"),
                 429, "rate_limited")
    assert api().post("/api/token", {"username": "olive", "password": PASSWORD}, format="json").status_code == 201


# Real autocommit (not a test transaction): after-commit work runs at once, as in production.
@pytest.mark.django_db(transaction=True)
def test_logout_and_revocation_succeed_while_the_broker_is_down(settings, people, spaces, make_token, api,
                                                                 monkeypatch):
    from kombu.exceptions import OperationalError


    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    browser = logged_in_browser("vera", "10.250.0.5")
    cookie = enter(settings, browser, spaces["private"])
    raw = make_token(people["viewer"])
    token_id = api(token=raw).get("/api/tokens").json()["results"][0]["id"]
    before = epochs(spaces)
    monkeypatch.setattr(publish_route_task, "delay", broker_down)
    assert browser.post("/accounts/logout/").status_code in (200, 302)
    assert api(token=make_token(people["viewer"])).delete(f"/api/tokens/{token_id}").status_code == 204
    # The epochs moved (reconciliation republishes the routes), and the credentials are refused.
    assert epochs(spaces)["private"] == before["private"] + 2
    assert auth(settings, spaces["private"], cookie=cookie) == 401
    assert auth(settings, spaces["private"], headers={"Authorization": f"Bearer {raw}"}) == 401
