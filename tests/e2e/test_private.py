"""Private spaces end to end: the real proxy's access gate, tickets, share links, tokens.

A private Gradio space and a private Streamlit space are built and run for real. They are
reached through the real nginx with gradio_client and plain HTTP (API tokens), and in
Chromium through the hub page's cross-site iframe (owner, viewer, share-link holder), with
screenshots in artifacts/screenshots/.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from .browser import PASSWORD, new_page, shot
from .stack import make_archive

pytestmark = [pytest.mark.e2e]

PRIVATE_GRADIO_APP = '''
import json

import gradio as gr


def reverse(text):
    return text[::-1]


def headers(request: gr.Request):
    # What the app receives: the proxy must have removed every hub credential.
    return json.dumps({k.lower(): v for k, v in request.headers.items()})


with gr.Blocks(title="Private reverser") as demo:
    text = gr.Textbox(label="Text")
    out = gr.Textbox(label="Reversed")
    gr.Button("Submit").click(reverse, text, out, api_name="reverse")
    seen = gr.Textbox(label="Headers", visible=False)
    gr.Button("Headers", visible=False).click(headers, None, seen, api_name="headers")
demo.launch()
'''

PRIVATE_STREAMLIT_APP = '''
import streamlit as st

st.title("Private notes")
name = st.text_input("Your name")
if name:
    st.write(f"Hello, {name}!")
'''


def gradio_repo() -> bytes:
    return make_archive({
        "README.md": "---\ntitle: Private reverser\nemoji: 🔒\nsdk: gradio\napp_file: app.py\n---\nPrivate.\n",
        "app.py": PRIVATE_GRADIO_APP,
    })


def streamlit_repo() -> bytes:
    return make_archive({
        "README.md": "---\ntitle: Private notes\nsdk: streamlit\napp_file: app.py\n---\nNotes.\n",
        "app.py": PRIVATE_STREAMLIT_APP,
    })


@pytest.fixture(scope="module")
def team(stack):
    """An owner, a viewer collaborator and a stranger, each with an API token and a password."""
    owner, owner_token = stack.new_user(password=PASSWORD)
    viewer, viewer_token = stack.new_user(password=PASSWORD)
    stranger, stranger_token = stack.new_user(password=PASSWORD)
    return {"owner": (owner, owner_token), "viewer": (viewer, viewer_token), "stranger": (stranger, stranger_token)}


def _private_space(stack, team, name: str, sdk: str, archive: bytes) -> dict:
    owner, token = team["owner"]
    stack.create_space(token, name, sdk, visibility="private")
    r = stack.api(token).post(f"{stack.hub_url}/api/spaces/{owner}/{name}/collaborators",
                              json={"username": team["viewer"][0], "role": "viewer"})
    assert r.status_code == 201, r.text
    r = stack.upload(token, owner, name, archive)
    assert r.status_code == 202, r.text
    return stack.wait_status(token, owner, name, "RUNNING", timeout=900)


@pytest.fixture(scope="module")
def private_gradio(stack, team):
    return _private_space(stack, team, "vault", "gradio", gradio_repo())


@pytest.fixture(scope="module")
def private_streamlit(stack, team):
    return _private_space(stack, team, "notes", "streamlit", streamlit_repo())


def missing_url(space: dict) -> str:
    """A host on the same apps domain that no space has."""
    parts = urlsplit(space["url"])
    return f"{parts.scheme}://nosuch-{uuid.uuid4().hex[:6]}.{parts.netloc.split('.', 1)[1]}/"


def get(url: str, path: str = "/", **headers) -> requests.Response:
    return requests.get(url.rstrip("/") + path, headers=headers, allow_redirects=False, timeout=15)


# ------------------------------------------------------------------------------ HTTP and API clients
def test_private_host_answers_like_a_missing_one(stack, team, private_gradio):
    url, nowhere = private_gradio["url"], missing_url(private_gradio)
    html = {"Accept": "text/html"}
    for target in (url, nowhere):
        label = urlsplit(target).hostname.split(".")[0]
        r = get(target, "/some/page", **html)
        assert r.status_code == 302, (target, r.status_code)
        assert r.headers["Location"] == f"{stack.hub_url}/go/{label}?next=/some/page"
    # anonymous API calls: 401 (gradio_client does not follow redirects for /config)
    a, b = get(url, "/config"), get(nowhere, "/config")
    assert a.status_code == b.status_code == 401 and a.json() == b.json()
    # a logged-in stranger: 404, the same body for both
    stranger = {"Authorization": f"Bearer {team['stranger'][1]}"}
    a, b = get(url, "/config", **stranger), get(nowhere, "/config", **stranger)
    assert a.status_code == b.status_code == 404 and a.json() == b.json()
    # the hub follows suit: login for anonymous, 404 for the stranger
    go = requests.get(f"{stack.hub_url}/go/{urlsplit(url).hostname.split('.')[0]}", allow_redirects=False)
    assert go.status_code == 302 and "/accounts/login/" in go.headers["Location"]


@pytest.mark.parametrize("who", ["owner", "viewer"])
@pytest.mark.parametrize("header", ["Authorization", "X-HF-Authorization"])
def test_tokens_open_the_private_app(team, private_gradio, who, header):
    r = get(private_gradio["url"], "/config", **{header: f"Bearer {team[who][1]}"})
    assert r.status_code == 200 and "components" in r.json()


def test_gradio_client_with_token_and_no_credential_reaches_the_app(stack, team, private_gradio):
    from gradio_client import Client

    url = private_gradio["url"]
    client = Client(url, token=team["viewer"][1], verbose=False,
                    headers={"Cookie": "demohub_space=forged-by-client; theme=dark",
                             "Authorization": f"Bearer {team['viewer'][1]}"})
    assert client.predict("private", api_name="/reverse") == "etavirp"
    seen = json.loads(client.predict(api_name="/headers"))
    assert "x-hf-authorization" not in seen
    assert "dh_" not in seen.get("authorization", "")
    assert "demohub_space" not in seen.get("cookie", "") and "theme=dark" in seen.get("cookie", "")
    assert not any(team["viewer"][1] in v for v in seen.values())
    # Without a token the client gets a clean authentication error, not a redirect page.
    with pytest.raises(Exception) as err:
        Client(url, verbose=False)
    assert type(err.value).__name__ == "AuthenticationError", repr(err.value)


def test_visibility_change_reaches_the_proxy_within_seconds(stack, team, private_gradio):
    owner, token = team["owner"]
    url = private_gradio["url"]
    api = f"{stack.hub_url}/api/spaces/{owner}/vault"
    try:
        assert stack.api(token).patch(api, json={"visibility": "public"}).status_code == 200
        t0 = time.monotonic()
        while get(url, "/config").status_code != 200:
            assert time.monotonic() - t0 < 10, "a public space still asks for credentials"
            time.sleep(0.1)
    finally:
        assert stack.api(token).patch(api, json={"visibility": "private"}).status_code == 200
    t0 = time.monotonic()
    while get(url, "/config").status_code != 401:
        assert time.monotonic() - t0 < 10, "the space went private but still answers anonymous calls"
        time.sleep(0.1)


def test_other_sites_cannot_read_the_private_app(team, private_gradio):
    token = {"Authorization": f"Bearer {team['owner'][1]}"}
    r = get(private_gradio["url"], "/config", Origin="http://evil.example", **token)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    assert "frame-ancestors" in r.headers.get("Content-Security-Policy", "")


# ------------------------------------------------------------------------------ in Chromium
def log_in(page, hub: str, username: str) -> None:
    page.goto(f"{hub}/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").first.click()
    page.wait_for_load_state()
    assert "/accounts/login" not in page.url, f"login failed for {username}"


def use_reverser(page, text: str) -> None:
    from playwright.sync_api import expect

    app = page.frame_locator("#app-frame")
    box = app.get_by_label("Text", exact=True)
    expect(box).to_be_visible(timeout=90_000)
    box.fill(text)
    app.get_by_role("button", name="Submit").click()
    expect(app.get_by_label("Reversed", exact=True)).to_have_value(text[::-1], timeout=60_000)


@pytest.mark.browser
@pytest.mark.parametrize("who", ["owner", "viewer"])
def test_private_gradio_in_the_hub_iframe(stack, browser, team, private_gradio, who):
    owner = team["owner"][0]
    ctx, page = new_page(browser)
    try:
        log_in(page, stack.hub_url, team[who][0])
        page.goto(f"{stack.hub_url}/spaces/{owner}/vault")
        use_reverser(page, f"hello {who}")
        shot(page, f"20-private-gradio-{who}.png")
    finally:
        ctx.close()


@pytest.mark.browser
def test_private_streamlit_in_the_hub_iframe(stack, browser, team, private_streamlit):
    from playwright.sync_api import expect

    ctx, page = new_page(browser)
    try:
        log_in(page, stack.hub_url, team["viewer"][0])
        page.goto(f"{stack.hub_url}/spaces/{team['owner'][0]}/notes")
        app = page.frame_locator("#app-frame")
        expect(app.get_by_role("heading", name="Private notes")).to_be_visible(timeout=90_000)
        box = app.get_by_label("Your name")
        box.fill("Ada")
        box.press("Enter")
        expect(app.get_by_text("Hello, Ada!")).to_be_visible(timeout=30_000)   # over the websocket
        shot(page, "21-private-streamlit-viewer.png")
    finally:
        ctx.close()


@pytest.mark.browser
def test_share_link_lets_a_visitor_in_until_revoked(stack, browser, team, private_gradio):
    from playwright.sync_api import expect

    owner, token = team["owner"]
    api = f"{stack.hub_url}/api/spaces/{owner}/vault/share-links"
    link = stack.api(token).post(api, json={"note": "for a reviewer", "expires_in_days": 2}).json()
    ctx, page = new_page(browser)
    try:
        page.goto(link["url"])
        page.wait_for_url(f"{stack.hub_url}/spaces/{owner}/vault")       # the token left the address bar
        use_reverser(page, "shared with you")
        shot(page, "22-share-link-visitor.png")
        assert stack.api(token).get(f"{api}/{link['id']}").json()["use_count"] == 1

        app_frame = next(f for f in page.frames if urlsplit(f.url).hostname == urlsplit(private_gradio["url"]).hostname)
        status = "fetch('/config', {credentials: 'include'}).then(r => r.status)"
        assert app_frame.evaluate(status) == 200                         # the iframe's own cookie works

        assert stack.api(token).delete(f"{api}/{link['id']}").status_code == 204
        # The open session loses the app within 60 s (at once: the access epoch moved on).
        t0 = time.monotonic()
        while app_frame.evaluate(status) == 200:
            assert time.monotonic() - t0 < 60, "the revoked link still opens the app"
            time.sleep(0.5)
        assert app_frame.evaluate(status) == 401
        app = page.frame_locator("#app-frame")
        app.get_by_label("Text", exact=True).fill("after revocation")
        app.get_by_role("button", name="Submit").click()
        expect(app.get_by_label("Reversed", exact=True)).not_to_have_value("noitacover retfa", timeout=10_000)
        page.reload()
        expect(page.locator("body")).to_contain_text(re.compile("not found|Not Found|404", re.I))
        shot(page, "23-share-link-revoked.png")
        # A new visitor with the same link is refused.
        page.goto(link["url"])
        expect(page.locator("#share-invalid")).to_be_visible()
    finally:
        ctx.close()
