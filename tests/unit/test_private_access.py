"""Private spaces on their own host: share links, collaborators, tickets, the space cookie and
the proxy's access check (spaces/access/services.py, spaces/access/proxy_gate.py; design.md §3, §4, §6).

The proxy's side (nginx asking /internal/proxy/auth and caching the answer) is tested with a
real nginx in test_proxy.py and end to end in tests/e2e; here the hub's answers are checked.
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from spaces.access import proxy_gate as proxy_access
from spaces.access import services as access
from spaces.access.models import ShareLink
from spaces.records.models import Space
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


@pytest.fixture
def private(people, make_space):
    return make_space(people["owner"], "secret", visibility="private", editors=[people["editor"]],
                      viewers=[people["viewer"]])


def browser(user=None) -> Client:
    c = Client()
    if user is not None:
        c.force_login(user)
    return c


def space_host(space) -> str:
    return urlsplit(space.url).netloc


def proxy_call(settings, path, space, uri="/", *, cookie="", headers=None):
    """What nginx sends the hub for a request to the space's host (runner/proxy.py)."""
    h = {"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "X-Demohub-Host": space_host(space),
         "X-Demohub-Uri": uri, "X-Demohub-Space-Cookie": cookie, "Accept": "text/html", **(headers or {})}
    return Client().get(path, headers=h)


def auth(settings, space, **kw) -> int:
    return proxy_call(settings, "/internal/proxy/auth", space, **kw).status_code


def enter(settings, client, space, next_path="/") -> str:
    """A browser's way in: hub /go/<label> -> ticket -> the space host sets the cookie.
    Returns the cookie value (what nginx would forward)."""
    resp = client.get(f"/go/{space.label}?next={next_path}")
    assert resp.status_code == 302, resp
    target = urlsplit(resp["Location"])
    assert target.netloc == space_host(space) and target.path == "/.demohub/session"
    resp = proxy_call(settings, "/internal/proxy/session", space, uri=f"{target.path}?{target.query}")
    assert resp.status_code == 302 and resp["Location"] == next_path
    set_cookie = resp["Set-Cookie"]
    name, _, rest = set_cookie.partition("=")
    assert name == proxy_access.cookie_name()
    return rest.split(";", 1)[0]


def share(api, space, **body) -> dict:
    resp = api(space.owner).post(f"/api/spaces/{space.owner.username}/{space.name}/share-links", body,
                                 format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()


# ------------------------------------------------------------------------------ tickets and cookies
def test_viewer_enters_a_private_space_with_a_ticket_and_a_host_only_cookie(settings, people, private):
    resp = browser(people["viewer"]).get(f"/go/{private.label}?next=/gradio_api/info%3Fx%3D1")
    assert resp.status_code == 302
    assert resp["Referrer-Policy"] == "no-referrer"
    target = urlsplit(resp["Location"])
    assert parse_qs(target.query)["next"] == ["/gradio_api/info?x=1"]
    resp = proxy_call(settings, "/internal/proxy/session", private, uri=f"{target.path}?{target.query}")
    assert resp.status_code == 302 and resp["Location"] == "/gradio_api/info?x=1"   # the ticket is gone
    attrs = [a.strip() for a in resp["Set-Cookie"].split(";")]
    assert attrs[0].startswith("demohub_space=")
    # Works in the hub's cross-site iframe (spaces.localhost is a secure context) and only on this host.
    for attr in ("Path=/", "HttpOnly", "Secure", "SameSite=None", "Partitioned"):
        assert attr in attrs
    assert not any(a.lower().startswith("domain=") for a in attrs)
    cookie = attrs[0].split("=", 1)[1]
    assert auth(settings, private, cookie=cookie) == 204


def test_https_uses_the_host_prefix(settings, people, private):
    settings.SPACES_SCHEME = "https"
    assert proxy_access.cookie_name() == "__Host-demohub_space"
    header = proxy_access.space_cookie_header("v", max_age=10)
    assert header.startswith("__Host-demohub_space=v;") and "Secure" in header and "Domain" not in header


def test_plain_http_on_a_real_domain_falls_back_to_lax(settings):
    settings.SPACES_DOMAIN = "apps.example.org"
    header = proxy_access.space_cookie_header("v", max_age=10)
    assert "SameSite=Lax" in header and "Secure" not in header and "Partitioned" not in header


def test_a_ticket_works_once(settings, people, private):
    resp = browser(people["viewer"]).get(f"/go/{private.label}")
    target = urlsplit(resp["Location"])
    uri = f"{target.path}?{target.query}"
    assert proxy_call(settings, "/internal/proxy/session", private, uri=uri).status_code == 302
    replay = proxy_call(settings, "/internal/proxy/session", private, uri=uri)
    assert replay.status_code == 302 and "Set-Cookie" not in replay
    assert urlsplit(replay["Location"]).path == f"/go/{private.label}"   # the hidden answer: back to the hub


def test_a_ticket_is_for_one_host_only(settings, people, private, make_space):
    other = make_space(people["owner"], "other", visibility="private", viewers=[people["viewer"]])
    target = urlsplit(browser(people["viewer"]).get(f"/go/{private.label}")["Location"])
    resp = proxy_call(settings, "/internal/proxy/session", other, uri=f"{target.path}?{target.query}")
    assert "Set-Cookie" not in resp
    # and a cookie of one space does not open another
    cookie = enter(settings, browser(people["viewer"]), private)
    assert auth(settings, other, cookie=cookie) == 401


@pytest.mark.parametrize("bad", ["", "garbage", "a:b:c"])
def test_forged_tickets_and_cookies_are_refused(settings, private, bad):
    resp = proxy_call(settings, "/internal/proxy/session", private, uri=f"/.demohub/session?ticket={bad}&next=/")
    assert "Set-Cookie" not in resp
    assert auth(settings, private, cookie=bad) == 401


def test_an_expired_ticket_is_refused(settings, people, private, monkeypatch):
    target = urlsplit(browser(people["viewer"]).get(f"/go/{private.label}")["Location"])
    monkeypatch.setattr(proxy_access, "TICKET_MAX_AGE", -1)
    resp = proxy_call(settings, "/internal/proxy/session", private, uri=f"{target.path}?{target.query}")
    assert "Set-Cookie" not in resp


@pytest.mark.parametrize("next_path, expected", [
    ("/ok?x=1", "/ok?x=1"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("", "/"), ("relative", "/"),
])
def test_next_stays_on_the_space_host(settings, people, private, next_path, expected):
    from urllib.parse import quote
    target = urlsplit(browser(people["viewer"]).get(f"/go/{private.label}?next={quote(next_path)}")["Location"])
    resp = proxy_call(settings, "/internal/proxy/session", private, uri=f"{target.path}?{target.query}")
    assert resp["Location"] == expected


def test_the_session_path_needs_the_proxy_key(settings, private):
    resp = Client().get("/internal/proxy/session", headers={"X-Demohub-Host": space_host(private),
                                                            "X-Demohub-Uri": "/.demohub/session"})
    assert resp.status_code == 403
    resp = Client().get("/internal/proxy/auth", headers={"X-Demohub-Host": space_host(private),
                                                         "X-Demohub-Proxy-Key": "wrong"})
    assert resp.status_code == 403


def test_empty_proxy_key_setting_trusts_nobody(settings, private):
    settings.PROXY_SHARED_SECRET = ""
    resp = Client().get("/internal/proxy/auth", headers={"X-Demohub-Host": space_host(private),
                                                         "X-Demohub-Proxy-Key": ""})
    assert resp.status_code == 403


# ------------------------------------------------------------------------------ the access check
def test_cookie_from_another_site_is_not_a_credential(settings, people, private):
    cookie = enter(settings, browser(people["viewer"]), private)
    origin = private.url.rstrip("/")
    assert auth(settings, private, cookie=cookie, headers={"Origin": origin}) == 204
    assert auth(settings, private, cookie=cookie, headers={"Origin": "http://evil.example"}) == 401
    assert auth(settings, private, cookie=cookie, headers={"Origin": "null"}) == 401


@pytest.mark.parametrize("header", ["Authorization", "X-HF-Authorization"])
def test_api_tokens_at_the_proxy(settings, people, private, make_token, header):
    for who, expected in [("owner", 204), ("editor", 204), ("viewer", 204), ("stranger", 401)]:
        token = make_token(people[who], "read")
        assert auth(settings, private, headers={header: f"Bearer {token}"}) == expected, who
    assert auth(settings, private, headers={header: "Bearer dh_not-a-token"}) == 401
    assert auth(settings, private) == 401


def test_removing_a_collaborator_ends_their_access(settings, people, private, api, run_on_commit):
    cookie = enter(settings, browser(people["viewer"]), private)
    epoch = private.access_epoch
    with run_on_commit():
        resp = api(people["owner"]).delete(f"/api/spaces/olive/secret/collaborators/{people['viewer'].username}")
    assert resp.status_code == 204
    assert auth(settings, private, cookie=cookie) == 401
    private.refresh_from_db()
    assert private.access_epoch == epoch + 1
    route = (settings.PROXY_ROUTES_DIR / f"{private.label}.conf").read_text()
    assert f'"{private.label}|{epoch + 1}|' in route                      # the proxy's cache key moved on


def test_changing_the_password_ends_cookie_grants(settings, people, private):
    cookie = enter(settings, browser(people["viewer"]), private)
    people["viewer"].set_password("a-new-long-password-1")
    people["viewer"].save()
    assert auth(settings, private, cookie=cookie) == 401


def test_visibility_change_reaches_the_route(settings, people, private, api, run_on_commit):
    path = settings.PROXY_ROUTES_DIR / f"{private.label}.conf"
    with run_on_commit():
        resp = api(people["owner"]).patch("/api/spaces/olive/secret", {"visibility": "public"}, format="json")
    assert resp.status_code == 200
    assert "auth_request" not in path.read_text()
    assert auth(settings, private) == 204                                 # anyone, now
    with run_on_commit():
        api(people["owner"]).patch("/api/spaces/olive/secret", {"visibility": "private"}, format="json")
    assert "auth_request /.demohub/auth;" in path.read_text()
    assert auth(settings, private) == 401


# ------------------------------------------------------------------------------ share links
def test_share_link_lifecycle(settings, people, private, api, run_on_commit):
    link = share(api, private, note="for the reviewer", expires_in_days=7, max_uses=5)
    assert set(link) >= {"id", "url", "note", "expires_at", "max_uses", "use_count", "last_used_at"}
    assert link["url"].startswith(f"{settings.HUB_URL}/s/dhs_") and link["use_count"] == 0
    token = link["url"].rsplit("/", 1)[1]
    assert not ShareLink.objects.filter(token_hash=token).exists()         # only a hash is stored

    listed = api(people["owner"]).get("/api/spaces/olive/secret/share-links").json()
    assert listed["count"] == 1 and "url" not in listed["results"][0]

    visitor = browser()
    assert visitor.get("/spaces/olive/secret").status_code == 404
    resp = visitor.get(f"/s/{token}")
    assert resp.status_code == 302 and resp["Location"] == "/spaces/olive/secret"
    assert resp["Referrer-Policy"] == "no-referrer"
    page = visitor.get("/spaces/olive/secret")
    assert page.status_code == 200
    assert f"/go/{private.label}?next=/" in page.content.decode()          # the iframe goes through the hub
    assert visitor.get("/spaces/olive/secret/settings").status_code in (403, 404)
    assert visitor.get("/api/spaces/olive/secret/comments").status_code == 401   # page and app, not comments
    cookie = enter(settings, visitor, private)
    assert auth(settings, private, cookie=cookie) == 204

    got = api(people["owner"]).get(f"/api/spaces/olive/secret/share-links/{link['id']}").json()
    assert got["use_count"] == 1 and got["last_used_at"]

    with run_on_commit():
        resp = api(people["owner"]).delete(f"/api/spaces/olive/secret/share-links/{link['id']}")
    assert resp.status_code == 204
    assert auth(settings, private, cookie=cookie) == 401                   # open sessions: cut
    assert visitor.get("/spaces/olive/secret").status_code == 404          # the page too
    newcomer = browser()
    resp = newcomer.get(f"/s/{token}")
    assert resp.status_code == 404 and b"does not work" in resp.content    # new visitors: refused
    assert newcomer.get("/spaces/olive/secret").status_code == 404


def test_share_link_use_limit_and_expiry(settings, people, private, api):
    token = share(api, private, max_uses=1)["url"].rsplit("/", 1)[1]
    assert browser().get(f"/s/{token}").status_code == 302
    assert browser().get(f"/s/{token}").status_code == 404                 # used up
    expiring = share(api, private, expires_in_days=1)
    token = expiring["url"].rsplit("/", 1)[1]
    holder = browser()
    assert holder.get(f"/s/{token}").status_code == 302
    cookie = enter(settings, holder, private)
    ShareLink.objects.filter(pk=expiring["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert browser().get(f"/s/{token}").status_code == 404
    assert auth(settings, private, cookie=cookie) == 401
    assert holder.get("/spaces/olive/secret").status_code == 404


def test_expired_links_bump_the_epoch_in_the_sweep(people, private, api, run_on_commit):
    link = share(api, private, expires_in_days=1)
    ShareLink.objects.filter(pk=link["id"]).update(expires_at=timezone.now() - timedelta(seconds=5))
    before = Space.objects.get(pk=private.pk).access_epoch
    with run_on_commit():
        assert access.share_links_expired_sweep() == 1
    assert Space.objects.get(pk=private.pk).access_epoch == before + 1
    with run_on_commit():
        assert access.share_links_expired_sweep() == 0                   # once per expiry


@pytest.mark.parametrize("body, field", [
    ({"expires_in_days": 0}, "expires_in_days"), ({"expires_in_days": -1}, "expires_in_days"),
    ({"expires_in_days": "soon"}, "expires_in_days"), ({"expires_in_days": 366}, "expires_in_days"),
    ({"max_uses": 0}, "max_uses"), ({"max_uses": 1.5}, "max_uses"), ({"note": "x" * 201}, "note"),
])
def test_share_link_bad_input_names_the_field(people, private, api, body, field):
    resp = api(people["owner"]).post("/api/spaces/olive/secret/share-links", body, format="json")
    assert assert_error(resp, 400)["detail"].startswith(f"{field}:")
    assert ShareLink.objects.count() == 0


@pytest.mark.parametrize("who, status", [("editor", 403), ("viewer", 403), ("stranger", 404), ("anonymous", 404)])
def test_only_the_owner_manages_access(people, private, api, who, status):
    client = api(people[who])
    for method, path, body in [
        ("get", "/api/spaces/olive/secret/share-links", None),
        ("post", "/api/spaces/olive/secret/share-links", {}),
        ("get", "/api/spaces/olive/secret/collaborators", None),
        ("post", "/api/spaces/olive/secret/collaborators", {"username": "stan", "role": "viewer"}),
        ("delete", "/api/spaces/olive/secret/collaborators/vera", None),
    ]:
        resp = getattr(client, method)(path, body, format="json")
        assert resp.status_code == status, (who, method, path, resp.content)


def test_forged_share_tokens(people, private):
    for bad in ["dhs_nothing", "x" * 300, "dh_abc", "%00"]:
        assert browser().get(f"/s/{bad}").status_code == 404


# ------------------------------------------------------------------------------ collaborators
def test_collaborators_api(people, private, api, make_user):
    owner = api(people["owner"])
    make_user("newbie")
    resp = owner.post("/api/spaces/olive/secret/collaborators", {"username": "newbie", "role": "viewer"},
                      format="json")
    assert resp.status_code == 201 and resp.json()["role"] == "viewer"
    resp = owner.post("/api/spaces/olive/secret/collaborators", {"username": "NEWBIE", "role": "editor"},
                      format="json")
    assert resp.status_code == 200 and resp.json() == {**resp.json(), "username": "newbie", "role": "editor"}
    names = [c["username"] for c in owner.get("/api/spaces/olive/secret/collaborators").json()["results"]]
    assert names == ["eddie", "newbie", "vera"]
    assert api(people["stranger"]).get("/api/spaces/olive/secret").status_code == 404
    for body, code in [({"username": "ghost", "role": "viewer"}, "unknown_user"),
                       ({"username": "olive", "role": "viewer"}, "is_owner"),
                       ({"username": "newbie", "role": "admin"}, None)]:
        assert_error(owner.post("/api/spaces/olive/secret/collaborators", body, format="json"), 400, code)
    assert owner.delete("/api/spaces/olive/secret/collaborators/newbie").status_code == 204
    assert_error(owner.delete("/api/spaces/olive/secret/collaborators/newbie"), 404)


def test_owner_page_manages_links_and_collaborators(people, private):
    owner = browser(people["owner"])
    page = owner.get("/spaces/olive/secret/access")
    assert page.status_code == 200
    resp = owner.post("/spaces/olive/secret/access", {"what": "share-link", "l-note": "customer",
                                                      "l-expires_in_days": "3", "l-max_uses": ""})
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "shown only once" in html and "/s/dhs_" in html
    link = ShareLink.objects.get(space=private)
    assert link.note == "customer" and link.expires_at and link.max_uses is None
    assert "/s/dhs_" not in owner.get("/spaces/olive/secret/access").content.decode()
    resp = owner.post("/spaces/olive/secret/access", {"what": "revoke", "link_id": link.pk})
    assert resp.status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None
    resp = owner.post("/spaces/olive/secret/access", {"what": "collaborator", "c-username": "stan",
                                                      "c-role": "viewer"})
    assert resp.status_code == 302
    assert browser(people["stranger"]).get("/spaces/olive/secret").status_code == 200
    for who in ("editor", "viewer"):
        assert browser(people[who]).get("/spaces/olive/secret/access").status_code == 403


# ------------------------------------------------------------------ share-link ids (issue 15, finding 9)
def test_a_share_link_id_grants_nothing_without_the_hubs_key(settings, people, private, api):
    """Share-link ids are sequential and a space cookie names one in its (readable, signed)
    payload: what makes it safe is that only a cookie signed with SECRET_KEY counts. A cookie
    naming a live link, forged with another key (the old public default, say), gets 401; the
    same payload signed with the hub's own key enters."""
    from django.core import signing

    link = share(api, private)
    payload = {"l": private.label, "s": link["id"]}
    forged = signing.dumps(payload, key="dev-insecure-change-me", salt=proxy_access.COOKIE_SALT, compress=True)
    assert auth(settings, private, cookie=forged) == 401
    genuine = signing.dumps(payload, salt=proxy_access.COOKIE_SALT, compress=True)
    assert auth(settings, private, cookie=genuine) == 204
    # Nor does the id alone open anything on the hub: the API behind it is the owner's only.
    url = f"/api/spaces/{private.owner.username}/{private.name}/share-links/{link['id']}"
    assert api(people["stranger"]).delete(url).status_code == 404
    assert api(people["viewer"]).delete(url).status_code == 403
