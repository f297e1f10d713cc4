"""The hub in a real browser: a new visitor signs up, creates a Gradio space from an archive,
watches it build, uses the app inside the space page's iframe, and everyone can browse it.

Chromium (Debian's, driven by Playwright) against the real stack of conftest.py. Screenshots go
to artifacts/screenshots/ so a person can look at what the pages really look like.
"""
from __future__ import annotations

import io
import re
import tarfile
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin

import pytest

from .browser import PASSWORD, new_page, shot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

BUILD_TIMEOUT_MS = 10 * 60 * 1000   # the first Gradio SDK image build takes a minute or two

# The app takes a few seconds to start, like one that loads a model: long enough to see the
# proxy's "starting" page even when the SDK image is cached and the build takes two seconds.
APP_V1 = '''
import time

import gradio as gr

print("loading the model...", flush=True)
time.sleep(12)


def reverse(text):
    return text[::-1]


demo = gr.Interface(fn=reverse, inputs=gr.Textbox(label="Text"), outputs=gr.Textbox(label="Reversed"),
                    title="Reverser", api_name="reverse")
demo.launch()
'''

# Revision 2, uploaded from the settings page: same interface, louder answer.
APP_V2 = APP_V1.replace("return text[::-1]", "return text[::-1].upper()")


def write_repo(path: Path, app: str, title: str = "Reverser") -> Path:
    """A .tar.gz repo on disk, as a user would pick it in the file chooser."""
    readme = (f"---\ntitle: {title}\nemoji: 🔁\nsdk: gradio\napp_file: app.py\n"
              "short_description: Reverses text\n---\n# Reverser\nType some text, get it back reversed.\n")
    with tarfile.open(path, "w:gz") as tf:
        for name, content in {"README.md": readme, "app.py": app}.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tf.addfile(info, io.BytesIO(data))
    return path


def api_space(page, hub: str, owner: str, name: str) -> dict:
    r = page.request.get(f"{hub}/api/spaces/{owner}/{name}", headers={"Accept": "application/json"})
    assert r.ok, r.text()
    return r.json()


def wait_api(page, hub, owner, name, pred, *, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        s = api_space(page, hub, owner, name)
        if not seen or seen[-1] != s["status"]:
            seen.append(s["status"])
        if pred(s):
            return s
        time.sleep(1)
    raise AssertionError(f"{owner}/{name}: {what} did not happen; statuses seen: {seen}")


def assert_styled(page) -> None:
    """The hub's stylesheet really applies (it is served, and it is hub.css)."""
    display = page.evaluate("getComputedStyle(document.querySelector('header.topbar')).display")
    css = page.request.get(urljoin(page.url, "/static/hub.css"))
    assert display == "flex" and css.ok, (
        f"the page is unstyled: /static/hub.css answered {css.status} (the hub serves static files with "
        "WhiteNoise from STATIC_ROOT, which needs collectstatic)")


def use_app(page, text: str, expected: str) -> None:
    """Type into the Gradio app inside the space page's iframe and read the answer."""
    from playwright.sync_api import expect

    app = page.frame_locator("#app-frame")
    box = app.get_by_label("Text", exact=True)
    expect(box).to_be_visible(timeout=90_000)   # the Gradio front end loads after the container answers
    box.fill(text)
    app.get_by_role("button", name="Submit").click()
    expect(app.get_by_label("Reversed", exact=True)).to_have_value(expected, timeout=60_000)


def test_signup_create_watch_build_use_and_browse(stack, browser, tmp_path):
    from playwright.sync_api import expect

    hub = stack.hub_url
    user, space_name = f"v{uuid.uuid4().hex[:7]}", "reverser"
    space_path = f"/spaces/{user}/{space_name}"
    repo_v1 = write_repo(tmp_path / "reverser.tar.gz", APP_V1)
    repo_v2 = write_repo(tmp_path / "reverser-v2.tar.gz", APP_V2)

    ctx, page = new_page(browser)
    anon_ctx, anon = new_page(browser)
    try:
        # -- sign up ------------------------------------------------------------------------
        page.goto(f"{hub}/accounts/signup/")
        expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
        assert_styled(page)
        shot(page, "00-signup.png")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        page.wait_for_url(f"{hub}/")
        expect(page.locator(".topbar .who")).to_have_text(user)

        # -- create the space with its repo --------------------------------------------------
        page.get_by_role("link", name="+ New space").click()
        page.wait_for_url(f"{hub}/new")
        page.get_by_label("Name", exact=True).fill(space_name)
        page.get_by_label("SDK", exact=True).select_option("gradio")
        page.get_by_label("Repo archive").set_input_files(str(repo_v1))
        shot(page, "01-new-space-form.png", full_page=True)
        page.get_by_role("button", name="Create space").click()
        page.wait_for_url(f"{hub}{space_path}")

        # -- the build, live: status and build log on the space page -------------------------
        expect(page.locator("#not-serving")).to_be_visible()
        expect(page.locator("#app-frame-wrap")).to_be_hidden()
        expect(page.locator("#build-log")).to_contain_text("--> building", timeout=BUILD_TIMEOUT_MS)
        expect(page.locator("#space-status")).to_have_text(re.compile(r"^(BUILDING|APP_STARTING)$"))
        expect(page.locator("#status-line")).to_contain_text(re.compile(r"Reverser is (building|starting)"))
        shot(page, "02-space-building.png")
        space_url = page.get_by_role("link", name="Open ↗").get_attribute("href")
        assert space_url and ".spaces.localhost" in space_url, space_url

        # The space's own address before it serves: the proxy's status page, which reloads itself.
        status_now = api_space(page, hub, user, space_name)["status"]
        assert status_now in {"BUILDING", "APP_STARTING"}, f"too late to see the status page: {status_now}"
        resp = anon.goto(space_url)
        assert resp is not None and resp.status == 503, resp and resp.status
        expect(anon.get_by_role("heading", name="Reverser")).to_be_visible()
        expect(anon.locator("body")).to_contain_text(re.compile(r"This space is (building|starting)\."))
        expect(anon.locator('meta[http-equiv="refresh"]')).to_have_count(1)
        expect(anon.get_by_role("link", name=f"Open {user}/{space_name} on the hub")).to_have_attribute(
            "href", f"{hub}{space_path}")
        shot(anon, "03-space-url-while-starting.png")

        # -- the running app, in the iframe ----------------------------------------------------
        expect(page.locator("#app-frame-wrap")).to_be_visible(timeout=BUILD_TIMEOUT_MS)
        expect(page.locator("#not-serving")).to_be_hidden()
        use_app(page, "hello demohub", "buhomed olleh")
        expect(page.locator("#space-status")).to_have_text("RUNNING")
        expect(page.locator("#space-status")).to_have_class(re.compile(r"\bstatus-running\b"))
        shot(page, "04-space-running.png")
        # The proxy's status page went away by itself: the same tab now shows the app.
        expect(anon.get_by_role("button", name="Submit")).to_be_visible(timeout=60_000)

        # -- logs page: the build log and the container's log both stream in -----------------
        page.get_by_role("link", name="Logs", exact=True).click()
        page.wait_for_url(f"{hub}{space_path}/logs")
        expect(page.locator("#log-build")).to_contain_text("--> building")
        expect(page.locator("#log-build")).to_contain_text(re.compile(r"— [A-Z_]+ —"))
        expect(page.locator("#log-run")).to_contain_text("loading the model...", timeout=30_000)
        expect(page.locator("#log-run")).to_contain_text("Running on local URL", timeout=30_000)
        shot(page, "05-logs.png")

        # -- settings: upload revision 2 with the form; revision 1 serves until 2 is ready ----
        page.get_by_role("link", name="Settings", exact=True).click()
        page.wait_for_url(f"{hub}{space_path}/settings")
        expect(page.get_by_role("heading", name="Upload a new revision")).to_be_visible()
        shot(page, "06-settings.png", full_page=True)
        page.get_by_label("Repo archive").set_input_files(str(repo_v2))
        page.get_by_role("button", name="Upload and build").click()
        page.wait_for_url(f"{hub}{space_path}")
        expect(page.locator(".flash")).to_contain_text("Revision 2 uploaded.")
        expect(page.locator("#app-frame-wrap")).to_be_visible()   # still serving revision 1
        expect(page.locator("#space-status")).to_have_text(re.compile(r"^RUNNING_(BUILDING|APP_STARTING)$"))
        use_app(page, "still one", "eno llits")
        shot(page, "07-space-new-revision-starting.png")
        wait_api(page, hub, user, space_name, lambda s: s["running_revision"] == 2 and s["status"] == "RUNNING",
                 timeout=BUILD_TIMEOUT_MS / 1000, what="revision 2 running")
        page.reload()
        use_app(page, "abc", "CBA")
        page.goto(f"{hub}{space_path}/settings")
        expect(page.locator("table.revisions tr", has_text="serving")).to_contain_text("succeeded")
        expect(page.locator("table.revisions tr", has_text="serving").locator("td").first).to_contain_text("2")

        # -- browse: signed in, then anonymous -----------------------------------------------
        page.goto(f"{hub}/")
        card = page.locator(f'.space-card[data-space="{user}/{space_name}"]')
        expect(card).to_be_visible()
        expect(card).to_contain_text("Reverser")
        expect(card).to_contain_text("Reverses text")
        expect(card.locator(".badge")).to_have_text("RUNNING")
        shot(page, "08-browse.png")

        anon.goto(f"{hub}/")
        expect(anon.get_by_role("link", name="Log in")).to_be_visible()
        card = anon.locator(f'.space-card[data-space="{user}/{space_name}"]')
        expect(card).to_be_visible()
        expect(card).to_contain_text("Reverser")
        shot(anon, "09-browse-anonymous.png")
        card.click()
        anon.wait_for_url(f"{hub}{space_path}")
        expect(anon.get_by_role("link", name="Logs", exact=True)).to_have_count(0)
        expect(anon.get_by_role("link", name="Settings", exact=True)).to_have_count(0)
        use_app(anon, "level", "LEVEL")

        # -- the login page: a wrong password, then the right one --------------------------------
        anon.goto(f"{hub}/accounts/login/")
        expect(anon.get_by_role("heading", name="Log in")).to_be_visible()
        anon.get_by_label("Username").fill(user)
        anon.get_by_label("Password").fill("not-the-password")
        anon.get_by_role("button", name="Log in").click()
        expect(anon.locator(".errorlist")).to_be_visible()
        shot(anon, "10-login-error.png")
        anon.get_by_label("Password").fill(PASSWORD)
        anon.get_by_role("button", name="Log in").click()
        anon.wait_for_url(f"{hub}/")
        expect(anon.locator(".topbar .who")).to_have_text(user)
    except Exception:
        for name, p in (("FAILED-owner.png", page), ("FAILED-anon.png", anon)):
            try:
                shot(p, name, full_page=True)
            except Exception:
                pass
        raise
    finally:
        ctx.close()
        anon_ctx.close()


def test_status_page_shows_inside_the_hubs_app_frame(stack, browser, alice):
    """A space that does not serve answers its iframe on the hub with the status page, not a browser error."""
    from playwright.sync_api import expect

    owner, token = alice
    space = stack.create_space(token, "frame-me", "gradio")   # no upload: NO_APP_FILE
    ctx, page = new_page(browser)
    try:
        page.goto(f"{stack.hub_url}/")
        # The same embedding as the space page's #app-frame: the hub's origin framing the space's.
        page.evaluate("""(src) => {
            const f = document.createElement("iframe");
            f.id = "app-frame"; f.src = src; f.style.width = "800px"; f.style.height = "400px";
            document.querySelector("main").prepend(f);
        }""", space["url"])
        frame = page.frame_locator("#app-frame")
        expect(frame.locator("body")).to_contain_text("This space has no app yet", timeout=15_000)
    finally:
        shot(page, "11-status-page-in-frame.png")
        ctx.close()
