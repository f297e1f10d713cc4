"""Taking access away ends it within seconds, on the real proxy (issue 15, findings 10-12).

One private static space (served by nginx itself) and one private `sdk: docker` app (a tiny
Python server FROM demohub/base:bookworm that echoes what it receives and prints a line a
second to its run log) are reached through the real nginx proxy of the session's stack. Each
test first makes the proxy cache an "allowed" answer (the gap the issue found: cached for
30 s), then takes access away through the hub's pages and API, and measures how long the
credential still opens the space.
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import requests

from .stack import ROOT, make_archive

pytestmark = [pytest.mark.e2e]

PASSWORD = "revocation-pass-77"
ENDS_WITHIN = 5.0          # seconds: "ends access within seconds"

ECHO_APP = '''
import http.server, json, threading, time


def tick():
    n = 0
    while True:
        n += 1
        print("tick", n, flush=True)
        time.sleep(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = json.dumps({"app": "echo", "method": self.command, "body": body.decode(),
                          "cookie": self.headers.get_all("Cookie") or [],
                          "authorization": self.headers.get("Authorization"),
                          "x-hf-authorization": self.headers.get("X-HF-Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = answer


threading.Thread(target=tick, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def team(stack):
    names = {}
    for role in ("owner", "editor", "viewer"):
        names[role] = stack.new_user(password=PASSWORD)
    return names


def _add(stack, token, owner, name, user, role):
    r = stack.api(token).post(f"{stack.hub_url}/api/spaces/{owner}/{name}/collaborators",
                              json={"username": user, "role": role})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def static_space(stack, team):
    owner, token = team["owner"]
    stack.create_space(token, "rv-static", "static", visibility="private")
    _add(stack, token, owner, "rv-static", team["editor"][0], "editor")
    _add(stack, token, owner, "rv-static", team["viewer"][0], "viewer")
    archive = make_archive({"README.md": "---\ntitle: Vault\nsdk: static\n---\n",
                            "index.html": "<h1>revocation marker</h1>"})
    assert stack.upload(token, owner, "rv-static", archive).status_code == 202
    return stack.wait_status(token, owner, "rv-static", "RUNNING", timeout=300)


@pytest.fixture(scope="module")
def echo_space(stack, team):
    owner, token = team["owner"]
    stack.create_space(token, "rv-echo", "docker", visibility="private")
    _add(stack, token, owner, "rv-echo", team["editor"][0], "editor")
    archive = make_archive({
        "README.md": "---\ntitle: Echo\nsdk: docker\napp_port: 7860\n---\n",
        "Dockerfile": 'FROM demohub/base:bookworm\nCOPY app.py /srv/app.py\nCMD ["python3", "/srv/app.py"]\n',
        "app.py": ECHO_APP,
    })
    assert stack.upload(token, owner, "rv-echo", archive).status_code == 202
    return stack.wait_status(token, owner, "rv-echo", "RUNNING", timeout=600)


def space_get(space: dict, **headers) -> requests.Response:
    return requests.get(space["url"], headers=headers, allow_redirects=False, timeout=15)


def cached_allow(space: dict, **headers) -> None:
    """Open the space a few times: the proxy now holds an "allowed" answer for the credential."""
    for _ in range(3):
        r = space_get(space, **headers)
        assert r.status_code == 200, (r.status_code, r.text[:300])


def seconds_until_refused(space: dict, *, limit: float = 40.0, **headers) -> float:
    """How long the credential still opens the space (polled every 0.2 s, up to `limit`)."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        r = space_get(space, **headers)
        if r.status_code != 200:
            return time.monotonic() - began
        time.sleep(0.2)
    return limit


def new_token(stack, username: str, scope: str = "write") -> tuple[int, str]:
    r = requests.post(f"{stack.hub_url}/api/token", json={"username": username, "password": PASSWORD,
                                                          "name": f"rv-{time.monotonic_ns()}", "scope": scope})
    assert r.status_code == 201, r.text
    raw = r.json()["token"]
    tokens = stack.api(raw).get(f"{stack.hub_url}/api/tokens").json()["results"]
    return max(t["id"] for t in tokens if raw.startswith(t["hint"]) and t["revoked_at"] is None), raw


def browser_login(stack, username: str, password: str = PASSWORD, path: str = "/accounts/login/"
                  ) -> requests.Session:
    """A browser session on the hub, logged in through the login page (CSRF and all)."""
    s = requests.Session()
    page = s.get(f"{stack.hub_url}{path}", timeout=15)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = s.post(f"{stack.hub_url}{path}", data={"csrfmiddlewaretoken": csrf, "username": username,
                                                 "password": password},
               headers={"Referer": f"{stack.hub_url}{path}"}, allow_redirects=False, timeout=15)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    return s


def enter_space(stack, session: requests.Session, space: dict) -> dict:
    """The browser's way into a private space: hub /go/<label> -> ticket -> space cookie.
    Returns the Cookie header to send to the space host. (By hand: on *.localhost the cookie
    is Secure, which browsers send over http to localhost but Python's cookie jar does not.)"""
    label = urlsplit(space["url"]).hostname.split(".")[0]
    r = session.get(f"{stack.hub_url}/go/{label}", allow_redirects=False, timeout=15)
    assert r.status_code == 302 and "/.demohub/session?ticket=" in r.headers["Location"], r.text[:300]
    r = requests.get(r.headers["Location"], allow_redirects=False, timeout=15)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    assert cookie.startswith("demohub_space="), cookie
    return {"Cookie": cookie}


def hub_post(stack, session: requests.Session, path: str, data: dict | None = None) -> requests.Response:
    return session.post(f"{stack.hub_url}{path}", data={**(data or {}),
                                                        "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                        headers={"Referer": stack.hub_url + path}, allow_redirects=False, timeout=15)


# ------------------------------------------------------------------------------ finding 10
def test_logout_ends_that_sessions_space_cookie_within_seconds(stack, team, static_space):
    viewer = team["viewer"][0]
    leaving, staying = browser_login(stack, viewer), browser_login(stack, viewer)
    cookies = {}
    for name, s in (("leaving", leaving), ("staying", staying)):
        cookies[name] = enter_space(stack, s, static_space)
        cached_allow(static_space, **cookies[name])
    assert hub_post(stack, leaving, "/accounts/logout/").status_code in (200, 302)
    took = seconds_until_refused(static_space, **cookies["leaving"])
    assert took < ENDS_WITHIN, f"the space cookie still worked {took:.1f} s after logout"
    r = space_get(static_space, Accept="text/html", **cookies["leaving"])
    assert r.status_code == 302 and "/go/" in r.headers["Location"]     # sent back to the hub
    assert space_get(static_space, **cookies["staying"]).status_code == 200   # the other session stays in


def test_revoking_a_token_ends_access_within_seconds(stack, team, static_space):
    token_id, raw = new_token(stack, team["viewer"][0])
    for header in ("Authorization", "X-HF-Authorization"):
        cached_allow(static_space, **{header: f"Bearer {raw}"})
    r = stack.api(raw).delete(f"{stack.hub_url}/api/tokens/{token_id}")
    assert r.status_code == 204, r.text
    for header in ("Authorization", "X-HF-Authorization"):
        took = seconds_until_refused(static_space, **{header: f"Bearer {raw}"})
        assert took < ENDS_WITHIN, f"a revoked token still opened the space {took:.1f} s later ({header})"


class _Form(HTMLParser):
    """The fields of the admin's user form, as a browser would post them."""

    def __init__(self):
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((name, a.get("value") or ("on" if a.get("type") == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def test_deactivating_a_user_in_the_admin_ends_access_within_seconds(stack, team, static_space):
    # A user whose browser cookie and token both hold an "allowed" answer at the proxy.
    user, _ = stack.new_user(password=PASSWORD)
    owner, owner_token = team["owner"]
    _add(stack, owner_token, owner, "rv-static", user, "viewer")
    _, raw = new_token(stack, user)
    cookie = enter_space(stack, browser_login(stack, user), static_space)
    cached_allow(static_space, **cookie)
    cached_allow(static_space, Authorization=f"Bearer {raw}")

    # The operator deactivates them on the admin site (a real superuser, made by manage.py).
    admin_name = f"root{time.monotonic_ns() % 10**8}"
    made = subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", admin_name,
                           "--email", "root@example.com"], cwd=ROOT, capture_output=True, text=True,
                          env={**stack.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}, timeout=120)
    assert made.returncode == 0, made.stderr
    admin = browser_login(stack, admin_name, path="/admin/login/")
    listing = admin.get(f"{stack.hub_url}/admin/auth/user/", params={"q": user}, timeout=15).text
    user_id = re.search(r'href="/admin/auth/user/(\d+)/change/', listing).group(1)
    path = f"/admin/auth/user/{user_id}/change/"
    form = _Form()
    form.feed(admin.get(stack.hub_url + path, timeout=15).text)
    fields = [(k, v) for k, v in form.fields if k not in ("is_active", "csrfmiddlewaretoken")]
    r = admin.post(stack.hub_url + path, data=fields + [("csrfmiddlewaretoken", admin.cookies["csrftoken"])],
                   headers={"Referer": stack.hub_url + path}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:2000]

    took_cookie = seconds_until_refused(static_space, **cookie)
    took_token = seconds_until_refused(static_space, Authorization=f"Bearer {raw}")
    assert took_cookie < ENDS_WITHIN and took_token < ENDS_WITHIN, (took_cookie, took_token)


def test_a_removed_editors_open_log_stream_ends(stack, team, echo_space):
    owner, owner_token = team["owner"]
    editor, editor_token = team["editor"]
    events: list[str] = []
    ended = threading.Event()

    def follow():
        with requests.get(f"{stack.hub_url}/api/spaces/{owner}/rv-echo/logs/run", stream=True, timeout=60,
                          headers={"Authorization": f"Bearer {editor_token}", "Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines(decode_unicode=True):
                events.append(line)
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not any(line.startswith("event: log") for line in events) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any(line.startswith("event: log") for line in events), events[-5:]   # it streams
    r = stack.api(owner_token).delete(f"{stack.hub_url}/api/spaces/{owner}/rv-echo/collaborators/{editor}")
    assert r.status_code == 204, r.text
    removed = time.monotonic()
    assert ended.wait(15), "the removed editor's log stream was still open 15 s later"
    took = time.monotonic() - removed
    tail = "\n".join(events[-4:])
    assert "event: end" in tail and "access_revoked" in tail, tail
    assert took < 10, took   # ACCESS_RECHECK_SECONDS (5) and a poll


# ------------------------------------------------------------------------------ findings 11 and 12
def test_every_copy_of_the_space_cookie_is_cut_and_no_token_reaches_the_app(stack, team, echo_space):
    _, raw = new_token(stack, team["owner"][0])
    s = requests.Session()
    req = requests.Request("GET", echo_space["url"], headers={"Authorization": f"Bearer {raw}"}).prepare()
    # Several copies, under several spellings, in one header: all of them go.
    req.headers["Cookie"] = ("app=1; demohub_space=a; demohub_space=b; __Host-demohub_space=c; "
                             "DEMOHUB_SPACE=d; demohub%5Fspace=e; other=2")
    r = s.send(req, allow_redirects=False, timeout=15)
    assert r.status_code == 200, r.text[:300]
    seen = r.json()
    assert seen["cookie"] == ["app=1; other=2"]
    assert seen["authorization"] is None and seen["x-hf-authorization"] is None


def test_read_token_calls_a_private_app_but_cannot_write_to_the_hub(stack, team, echo_space):
    """Scope is about the hub's API: as on Hugging Face, a read token may call a private app
    (gradio_client's predict is a POST); it can change nothing on the hub."""
    owner = team["owner"][0]
    _, read = new_token(stack, owner, scope="read")
    for header in ("Authorization", "X-HF-Authorization"):
        r = requests.post(echo_space["url"].rstrip("/") + "/run/predict", data=b'{"data": [1]}',
                          headers={header: f"Bearer {read}"}, allow_redirects=False, timeout=15)
        assert r.status_code == 200 and r.json()["method"] == "POST", (r.status_code, r.text[:200])
    api = stack.api(read)
    r = api.patch(f"{stack.hub_url}/api/spaces/{owner}/rv-echo", json={"title": "changed"})
    assert r.status_code == 403, r.text
    r = api.post(f"{stack.hub_url}/api/spaces/{owner}/rv-echo/restart")
    assert r.status_code == 403, r.text
    assert stack.space(read, owner, "rv-echo")["title"] == "Echo"


def test_the_proxys_access_cache_holds_no_token(stack, team, static_space):
    _, raw = new_token(stack, team["viewer"][0])
    cached_allow(static_space, **{"X-HF-Authorization": f"Bearer {raw}"})
    cache_dir = stack.data_dir / "proxy" / "run" / "cache" / "auth"
    deadline = time.monotonic() + 5
    files = []
    while time.monotonic() < deadline:
        files = [f for f in cache_dir.rglob("*") if f.is_file()]
        if files:
            break
        time.sleep(0.2)
    assert files, f"nothing cached under {cache_dir}"
    secret = raw.encode()
    for f in files:
        data = f.read_bytes()
        leaked = secret in data or b"dh_" in data       # (not asserted inline: pytest would print it)
        assert not leaked, f"{f} holds an API token"
