"""Issue 14 on the real stack: signed webhooks to a loopback receiver (with a retry after a 500
and refused private targets), the status badge following live status, README
`disable_embedding` enforced by the real proxy (frame-ancestors), and the embed dialog in
Chromium, framed by the hub and refused by another site. Static spaces keep it quick."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from .browser import PASSWORD, new_page, shot
from .stack import make_archive

pytestmark = pytest.mark.e2e


def static_repo(title: str, *, disable_embedding: bool = False) -> bytes:
    extra = "disable_embedding: true\n" if disable_embedding else ""
    return make_archive({"README.md": f"---\ntitle: {title}\nsdk: static\n{extra}---\n# {title}\n",
                         "index.html": f"<h1 id='hello'>{title}</h1>"})


class Receiver:
    """A webhook receiver on 127.0.0.1 answering from `answers` in turn (the last repeats)."""

    def __init__(self, answers=(200,)):
        self.requests, self.answers = [], list(answers)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
                status = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/demohub"

    def wait(self, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.requests


def signed_by(secret: str, request: dict) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"].get("X-Demohub-Signature", ""))


def test_signed_webhook_retried_after_a_500_and_private_targets_refused(stack, alice):
    owner, token = alice
    api, base = stack.api(token), f"{stack.hub_url}/api/spaces/{owner}/hooked"
    stack.create_space(token, "hooked", "static")
    for url in ("http://10.216.0.1/hook", "http://192.168.1.10/hook", "http://169.254.169.254/latest"):
        r = api.post(f"{base}/webhooks", json={"url": url})
        assert r.status_code == 400 and r.json()["code"] == "webhook_address_refused", r.text
    rcv = Receiver(answers=(500, 200))
    try:
        r = api.post(f"{base}/webhooks", json={"url": rcv.url, "events": ["revision.built"]})
        assert r.status_code == 201, r.text
        hook = r.json()
        assert stack.upload(token, owner, "hooked", static_repo("Hooked")).status_code == 202
        first, second = rcv.wait(2)[:2]
        for request in (first, second):
            assert signed_by(hook["secret"], request), request["headers"]
            assert request["headers"]["X-Demohub-Event"] == "revision.built"
        assert first["headers"]["X-Demohub-Delivery"] == second["headers"]["X-Demohub-Delivery"]
        assert first["body"] == second["body"]
        assert 0.8 <= second["at"] - first["at"] <= 15             # WEBHOOK_RETRY_BASE_SECONDS=1, then the queue
        payload = json.loads(second["body"])
        assert payload["revision"]["number"] == 1 and payload["space"]["name"] == "hooked"
        log = api.get(f"{base}/webhooks/{hook['id']}/deliveries").json()["results"]
        assert [(d["attempt"], d["outcome"], d["status_code"]) for d in reversed(log)] == [
            (1, "retrying", 500), (2, "delivered", 200)]
    finally:
        rcv.server.shutdown()


def test_badge_follows_live_status_and_private_answers_as_missing(stack, alice):
    owner, token = alice
    stack.deploy(token, owner, "badged", "static", static_repo("Badged"), wanted="RUNNING", timeout=60)
    badge = stack.api().get(f"{stack.hub_url}/spaces/{owner}/badged/badge.svg")
    assert badge.status_code == 200 and badge.headers["Content-Type"] == "image/svg+xml"
    assert f"{owner}/badged: running" in badge.text
    assert stack.api(token).post(f"{stack.hub_url}/api/spaces/{owner}/badged/pause").status_code == 202
    stack.wait_status(token, owner, "badged", "PAUSED", timeout=60)
    assert f"{owner}/badged: paused" in stack.api().get(f"{stack.hub_url}/spaces/{owner}/badged/badge.svg").text
    assert stack.api(token).patch(f"{stack.hub_url}/api/spaces/{owner}/badged",
                                  json={"visibility": "private"}).status_code == 200
    hidden = stack.api(token).get(f"{stack.hub_url}/spaces/{owner}/badged/badge.svg")
    missing = stack.api(token).get(f"{stack.hub_url}/spaces/{owner}/no-such-space/badge.svg")
    assert hidden.status_code == missing.status_code == 404


def _frame_policy(stack, space: dict) -> str | None:
    deadline = time.monotonic() + 10
    while True:
        r = stack.get_app(space["url"])
        if r.status_code == 200 or time.monotonic() > deadline:
            return r.headers.get("Content-Security-Policy")
        time.sleep(0.3)


@pytest.mark.browser
def test_disable_embedding_refuses_other_sites_while_the_hub_frames_it(stack, alice, browser):
    from playwright.sync_api import expect

    owner, token = alice
    hub_origin = "{0.scheme}://{0.netloc}".format(urlsplit(stack.hub_url))
    open_space = stack.deploy(token, owner, "embed-me", "static", static_repo("Embed me"), timeout=60)
    closed = stack.deploy(token, owner, "no-embed", "static", static_repo("No embed", disable_embedding=True),
                          timeout=60)
    assert _frame_policy(stack, open_space) is None                       # anyone may frame it
    assert _frame_policy(stack, closed) == f"frame-ancestors 'self' {hub_origin}"

    # Another site: a page on a loopback port of its own (another origin) framing both apps.
    other = ThreadingHTTPServer(("127.0.0.1", 0), _framer(open_space["url"], closed["url"]))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    ctx, page = new_page(browser)
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        expect(page.frame_locator("#open").locator("#hello")).to_have_text("Embed me", timeout=15_000)
        blocked = page.frame(name="closed")
        deadline = time.monotonic() + 15
        while blocked.url in ("", "about:blank") and time.monotonic() < deadline:
            time.sleep(0.2)
        # Chromium refused to render it: its error page instead of the app.
        assert blocked.url.startswith("chrome-error://"), blocked.url
        assert "No embed" not in blocked.content()
        shot(page, "70-other-site-frames-only-the-open-space.png")

        # The hub's own page still frames the closed one, and offers the embed dialog.
        page.goto(f"{stack.hub_url}/spaces/{owner}/no-embed")
        expect(page.frame_locator("#app-frame").locator("#hello")).to_have_text("No embed", timeout=15_000)
        page.get_by_role("button", name="Embed this space").click()
        dialog = page.locator("#embed-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#embed-disabled")).to_contain_text("disable_embedding: true")
        expect(dialog.locator("#embed-badge-md")).to_have_value(
            f"[![{owner}/no-embed]({stack.hub_url}/spaces/{owner}/no-embed/badge.svg)]"
            f"({stack.hub_url}/spaces/{owner}/no-embed)")
        shot(page, "71-embed-dialog-embedding-disabled.png")
        page.get_by_role("button", name="Close").click()

        page.goto(f"{stack.hub_url}/spaces/{owner}/embed-me")
        page.get_by_role("button", name="Embed this space").click()
        expect(page.locator("#embed-iframe")).to_have_value(
            f'<iframe src="{open_space["url"]}" title="Embed me" frameborder="0" width="850" height="450" '
            f'allow="clipboard-write"></iframe>')
        badge = page.locator("#embed-badge-preview")
        expect(badge).to_be_visible()
        assert page.evaluate("document.getElementById('embed-badge-preview').naturalWidth") > 50
        shot(page, "72-embed-dialog.png")
    finally:
        ctx.close()
        other.shutdown()


def _framer(open_url: str, closed_url: str):
    html = (f"<!doctype html><title>another site</title><h1>Another site</h1>"
            f"<iframe id='open' name='open' src='{open_url}' width='600' height='200'></iframe>"
            f"<iframe id='closed' name='closed' src='{closed_url}' width='600' height='200'></iframe>").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    return Handler


@pytest.mark.browser
def test_webhooks_page_adds_tests_and_shows_the_log(stack, browser):
    from playwright.sync_api import expect

    hub, user = stack.hub_url, f"w{uuid.uuid4().hex[:7]}"
    rcv = Receiver()
    ctx, page = new_page(browser)
    try:
        page.goto(f"{hub}/accounts/signup/")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        page.wait_for_url(f"{hub}/")
        token = stack.api().post(f"{hub}/api/token", json={"username": user, "password": PASSWORD}).json()["token"]
        stack.create_space(token, "hooks-page", "static")
        page.goto(f"{hub}/spaces/{user}/hooks-page")
        page.locator("#webhooks-tab").click()
        page.get_by_label("Payload URL").fill("http://10.216.0.9/hook")
        page.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#webhook-form")).to_contain_text("private address")
        shot(page, "73-webhook-private-address-refused.png")
        page.get_by_label("Payload URL").fill(rcv.url)
        page.get_by_label("Secret").fill("a-shared-secret-of-the-receiver")
        page.get_by_role("button", name="Add webhook").click()
        expect(page.locator(".flash.success")).to_contain_text("shown only now")
        page.get_by_role("button", name="Send a test").click()
        assert rcv.wait(1)[0]["headers"]["X-Demohub-Event"] == "ping"
        assert signed_by("a-shared-secret-of-the-receiver", rcv.requests[0])
        page.reload()
        row = page.locator("tr.delivery").first
        expect(row).to_contain_text("ping")
        expect(row).to_contain_text("Delivered")
        expect(row).to_contain_text("200")
        shot(page, "74-webhooks-page-log.png", full_page=True)
    finally:
        ctx.close()
        rcv.server.shutdown()
