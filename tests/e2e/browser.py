"""Chromium for the browser tests: Debian's build driven by Playwright (its own download does not
work here), pages with a fixed size, and screenshots under artifacts/screenshots/ for people
to look at. The `browser` fixture is in conftest.py."""
from __future__ import annotations

from pathlib import Path

from .stack import ARTIFACTS

SHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--no-proxy-server"]
PASSWORD = "correct-horse-battery-9"


def new_page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    ctx.set_default_timeout(30_000)
    return ctx, ctx.new_page()


def shot(page, name: str, *, full_page: bool = False) -> Path:
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
