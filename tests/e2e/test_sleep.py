"""Sleep and wake on the real stack: an idle Gradio space is frozen, then stopped, and woken
by a gradio_client call and by a browser; an owner's pause blocks waking; restart resumes.

The stack (stack.py) freezes after 4 idle seconds and checks every second; the test gives
the space `sleep_after` = 8 s through the API. Idle is what the real proxy saw.
"""
from __future__ import annotations

import time

import pytest
import requests

from .browser import new_page, shot
from .stack import make_archive

pytestmark = [pytest.mark.e2e]

APP = '''
import gradio as gr


def double(text):
    return text + text


demo = gr.Interface(fn=double, inputs=gr.Textbox(label="Text"), outputs=gr.Textbox(label="Doubled"),
                    api_name="double", title="Doubler")
demo.launch()
'''


@pytest.fixture(scope="module")
def sleepy(stack):
    owner, token = stack.new_user()
    space = stack.deploy(token, owner, "sleepy", "gradio", make_archive({
        "README.md": "---\ntitle: Doubler\nsdk: gradio\napp_file: app.py\n---\n", "app.py": APP}), timeout=900)
    r = stack.api(token).patch(f"{stack.hub_url}/api/spaces/{owner}/sleepy", json={"sleep_after": 8})
    assert r.status_code == 200 and r.json()["sleep_after"] == 8, r.text
    return owner, token, space


def wait_sleep(stack, owner, token, mode: str, timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        s = stack.space(token, owner, "sleepy")
        seen.append((s["status"], s["sleep_mode"]))
        if s["status"] == "SLEEPING" and s["sleep_mode"] == mode:
            return s
        time.sleep(0.5)
    raise AssertionError(f"never {mode}: {seen[-5:]}")


def predict(url: str) -> tuple[str, float]:
    from gradio_client import Client

    t0 = time.monotonic()
    # The proxy holds the client's first request while the space wakes. gradio_client reads
    # with httpx's default 5 s timeout, and a Gradio start from stopped on a busy 2-core CI
    # machine can take longer than that; the wait itself is what this test is about, so the
    # client is given the patience a person would have (bench/wake_latency.py measures the time).
    out = Client(url, verbose=False, httpx_kwargs={"timeout": 60}).predict("zz", api_name="/double")
    return out, time.monotonic() - t0


def test_frozen_then_stopped_and_woken_by_gradio_client(stack, sleepy):
    owner, token, space = sleepy
    wait_sleep(stack, owner, token, "frozen")
    out, took = predict(space["url"])                   # the client's first request wakes it
    assert out == "zzzz"
    assert stack.space(token, owner, "sleepy")["status"] == "RUNNING"
    wait_sleep(stack, owner, token, "stopped")          # idle for sleep_after: memory freed
    out, took = predict(space["url"])                   # held while the container starts
    assert out == "zzzz", out
    assert stack.space(token, owner, "sleepy")["status"] == "RUNNING"
    # Owner analytics (spaces/analytics): both sleeps (a freeze, then after the wake a freeze
    # that became a stop) and both wakes with their latency; the client's calls through the
    # proxy once the beat's rollup read them.
    deadline = time.monotonic() + 30
    while True:
        data = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/sleepy/analytics?period=hour").json()
        life = data["lifecycle"]
        if (life["wakes"] >= 2 and data["totals"]["api_calls"]) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert life["wakes"] == 2 and life["sleeps"] >= 2 and life["crashes"] == 0, life  # (and maybe frozen again since)
    assert life["wake_median_ms"] is not None and 0 <= life["wake_median_ms"] <= life["wake_p95_ms"] < 120_000, life
    assert data["totals"]["api_calls"] > 0 and data["totals"]["requests"] >= data["totals"]["api_calls"], data


def test_api_call_to_a_sleeping_space_is_held_not_refused(stack, sleepy):
    owner, token, space = sleepy
    wait_sleep(stack, owner, token, "stopped", timeout=60)
    r = requests.get(space["url"].rstrip("/") + "/config", timeout=40)
    assert r.status_code == 200 and "components" in r.json()


@pytest.mark.browser
def test_browser_sees_waking_page_then_the_app(stack, browser, sleepy):
    from playwright.sync_api import expect

    owner, token, space = sleepy
    wait_sleep(stack, owner, token, "stopped", timeout=60)
    ctx, page = new_page(browser)
    try:
        page.goto(space["url"])
        # Either the waking page first (the usual case for a stopped app) or already the app.
        if page.locator("#space-unavailable").count():
            expect(page.locator("body")).to_contain_text("waking up")
            shot(page, "30-waking-up.png")
        expect(page.get_by_role("button", name="Submit")).to_be_visible(timeout=60_000)
        page.get_by_label("Text", exact=True).fill("ab")
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_label("Doubled", exact=True)).to_have_value("abab", timeout=30_000)
        shot(page, "31-woken-app.png")
    finally:
        ctx.close()


def test_pause_blocks_waking_and_restart_resumes(stack, sleepy):
    owner, token, space = sleepy
    api = f"{stack.hub_url}/api/spaces/{owner}/sleepy"
    wait_sleep(stack, owner, token, "frozen", timeout=60)
    assert stack.api(token).post(f"{api}/pause").status_code == 202
    stack.wait_status(token, owner, "sleepy", "PAUSED", timeout=30)
    time.sleep(1)
    r = requests.get(space["url"].rstrip("/") + "/config", timeout=40)
    assert r.status_code == 503 and r.json()["status"] == "PAUSED" and r.headers["Retry-After"]
    page = requests.get(space["url"], headers={"Accept": "text/html"}, timeout=40)
    assert page.status_code == 503 and "paused by its owner" in page.text
    assert stack.space(token, owner, "sleepy")["status"] == "PAUSED"     # visitors did not wake it
    assert stack.api(token).post(f"{api}/restart").status_code == 202
    stack.wait_status(token, owner, "sleepy", "RUNNING", timeout=120)
    out, _ = predict(space["url"])
    assert out == "zzzz"
