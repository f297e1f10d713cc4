"""/internal/proxy/fallback: the proxy's callback for hosts it cannot serve (design.md §3).

A host that does not exist and a private host the caller may not see answer the same way: an
anonymous browser goes to the hub's login page, an anonymous API call gets 401, a caller with a
valid token 404. A visible space that is not serving answers 503 with Retry-After.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from spaces.records.models import Space

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]
URL = "/internal/proxy/fallback"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def ask(settings, host: str, uri: str = "/", *, accept: str = BROWSER, key: str | None = None,
        token: str | None = None, token_header: str = "Authorization", method: str = "get"):
    headers = {"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET if key is None else key,
               "X-Demohub-Host": host, "X-Demohub-Uri": uri}
    if accept:
        headers["Accept"] = accept
    if token:
        headers[token_header] = f"Bearer {token}"
    return getattr(Client(), method)(URL, headers=headers)


def host_of(space, settings) -> str:
    return f"{space.label}.{settings.SPACES_DOMAIN}:{settings.SPACES_PORT}"




# ------------------------------------------------------------------------------ the key
@pytest.mark.parametrize("key", ["wrong", "", "unit-proxy-key-but-longer"])
def test_wrong_proxy_key_is_403(settings, key, olive, make_space):
    space = make_space(olive, "demo")
    resp = ask(settings, host_of(space, settings), key=key)
    assert resp.status_code == 403
    assert resp.json()["code"] == "forbidden"


def test_missing_proxy_key_header_is_403(settings):
    resp = Client().get(URL, headers={"X-Demohub-Host": f"x.{settings.SPACES_DOMAIN}"})
    assert resp.status_code == 403


# ------------------------------------------------------------------------------ hidden hosts
def test_unknown_host_anonymous_browser_goes_to_login(settings):
    # The space host sends the browser to the hub's /go/<label> (which would let an allowed
    # user in with a ticket) ...
    resp = ask(settings, f"nosuch.{settings.SPACES_DOMAIN}:8080", "/some/page")
    assert resp.status_code == 302
    target = urlsplit(resp["Location"])
    assert f"{target.scheme}://{target.netloc}" == settings.HUB_URL
    assert target.path == "/go/nosuch"
    assert parse_qs(target.query)["next"] == ["/some/page"]
    # ... and the hub asks an anonymous visitor to log in first.
    resp = Client().get(f"{target.path}?{target.query}")
    assert resp.status_code == 302
    login = urlsplit(resp["Location"])
    assert login.path == settings.LOGIN_URL
    assert parse_qs(login.query)["next"] == ["/go/nosuch?next=/some/page"]


@pytest.mark.parametrize("uri,accept", [("/config", BROWSER), ("/gradio_api/info", BROWSER),
                                        ("/", "application/json"), ("/queue/join", "")])
def test_unknown_host_anonymous_api_call_is_401(settings, uri, accept):
    resp = ask(settings, f"nosuch.{settings.SPACES_DOMAIN}", uri, accept=accept)
    assert resp.status_code == 401
    assert resp.json()["code"] == "not_authenticated"
    assert resp["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Authorization", "X-HF-Authorization"])
def test_unknown_host_with_valid_token_is_404(settings, olive, make_token, header):
    resp = ask(settings, f"nosuch.{settings.SPACES_DOMAIN}", "/config", token=make_token(olive),
               token_header=header)
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Not found.", "code": "not_found"}


def test_host_outside_the_spaces_domain_is_hidden(settings, olive, make_token):
    assert ask(settings, "evil.example.com").status_code == 302
    assert ask(settings, "a.b.spaces.localhost", "/config").status_code == 401
    assert ask(settings, "evil.example.com", token=make_token(olive)).status_code == 404


def test_invalid_token_counts_as_anonymous(settings):
    resp = ask(settings, f"nosuch.{settings.SPACES_DOMAIN}", "/config", token="dh_invalid")
    assert resp.status_code == 401


@pytest.mark.parametrize("uri,accept", [("/", BROWSER), ("/config", BROWSER), ("/x", "application/json")])
def test_private_space_answers_like_a_missing_host(settings, olive, make_user, make_space, make_token, uri,
                                                   accept):
    space = make_space(olive, "secret", visibility="private")
    Space.objects.filter(pk=space.pk).update(status="BUILDING")
    stranger = make_token(make_user("stan"))
    missing_host = f"nosuch.{settings.SPACES_DOMAIN}"
    for token in (None, stranger):
        hidden = ask(settings, host_of(space, settings), uri, accept=accept, token=token)
        missing = ask(settings, missing_host, uri, accept=accept, token=token)
        assert hidden.status_code == missing.status_code
        assert hidden.status_code in (302, 401, 404)
        if hidden.status_code == 302:
            # Only the label (to come back to after login) differs.
            assert hidden["Location"].replace(space.label, "L") == missing["Location"].replace("nosuch", "L")
        else:
            assert hidden.content == missing.content


# ------------------------------------------------------------------------------ visible, not serving
def test_public_building_space_api_call_is_503_json(settings, olive, make_space):
    space = make_space(olive, "demo", sdk="gradio")
    Space.objects.filter(pk=space.pk).update(status="BUILDING")
    resp = ask(settings, host_of(space, settings), "/config")
    assert resp.status_code == 503
    assert resp["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["code"] == "unavailable"
    assert body["status"] == "BUILDING"
    assert "olive/demo" in body["detail"] and "building" in body["detail"]
    assert int(resp["Retry-After"]) > 0


def test_public_building_space_browser_gets_a_status_page(settings, olive, make_space):
    space = make_space(olive, "demo", sdk="gradio")
    Space.objects.filter(pk=space.pk).update(status="BUILDING")
    resp = ask(settings, host_of(space, settings), "/")
    assert resp.status_code == 503
    assert resp["Content-Type"].startswith("text/html")
    assert int(resp["Retry-After"]) > 0
    assert resp["Cache-Control"] == "no-store"
    assert b"BUILDING" in resp.content and b'http-equiv="refresh"' in resp.content
    assert f"{settings.HUB_URL}/spaces/olive/demo".encode() in resp.content


@pytest.mark.parametrize("status,transient", [("NO_APP_FILE", False), ("CONFIG_ERROR", False),
                                              ("BUILD_ERROR", False), ("RUNTIME_ERROR", False),
                                              ("PAUSED", False), ("APP_STARTING", True), ("SLEEPING", True),
                                              ("RUNNING", True)])
def test_other_states(settings, olive, make_space, status, transient):
    space = make_space(olive, "demo", sdk="gradio")
    Space.objects.filter(pk=space.pk).update(status=status)
    api_resp = ask(settings, host_of(space, settings), "/gradio_api/info")
    assert api_resp.status_code == 503 and api_resp.json()["status"] == status
    assert api_resp["Retry-After"]
    page = ask(settings, host_of(space, settings), "/")
    assert page.status_code == 503
    assert (b'http-equiv="refresh"' in page.content) is transient


def test_private_space_visible_to_a_viewer_token(settings, olive, make_user, make_space, make_token):
    viewer = make_user("vera")
    space = make_space(olive, "secret", visibility="private", viewers=[viewer])
    Space.objects.filter(pk=space.pk).update(status="APP_STARTING")
    resp = ask(settings, host_of(space, settings), "/config", token=make_token(viewer),
               token_header="X-HF-Authorization")
    assert resp.status_code == 503
    assert resp.json()["status"] == "APP_STARTING"


def test_deleting_space_is_hidden(settings, olive, make_space):
    space = make_space(olive, "demo")
    Space.objects.filter(pk=space.pk).update(status="DELETING")
    assert ask(settings, host_of(space, settings), "/config").status_code == 401


def test_post_is_answered_too(settings):
    resp = ask(settings, f"nosuch.{settings.SPACES_DOMAIN}", "/gradio_api/queue/join", method="post")
    assert resp.status_code == 401  # no CSRF failure: the proxy's callback is exempt
