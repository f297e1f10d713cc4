"""Owner analytics on the real stack: requests through the real proxy (nginx from run.sh) are
written to its access log, rolled up by the real beat and lifecycle worker, and show up with
the right counts in the API and in the Analytics tab (Chromium, screenshots under
artifacts/screenshots/). A static space keeps it quick (nginx serves it, no build)."""
from __future__ import annotations

import http.client
import os
import stat
import time
import uuid

import pytest

from .browser import PASSWORD, new_page, shot
from .stack import make_archive

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def wait_for(fetch, done, *, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_proxy_traffic_shows_up_in_the_api_and_the_analytics_tab(stack, browser):
    from playwright.sync_api import expect

    hub = stack.hub_url
    owner, token = stack.new_user(f"a{uuid.uuid4().hex[:7]}", password=PASSWORD)
    stranger, stranger_token = stack.new_user(password=PASSWORD)
    space = stack.deploy(token, owner, "counted", "static", make_archive({
        "README.md": "---\ntitle: Counted\nsdk: static\n---\n", "index.html": "<h1>Counted</h1>",
        "style.css": "h1{color:teal}"}), visibility="private")
    # A private space: the proxy asks the hub about each request; the owner's token passes.
    host = space["url"].split("//", 1)[1].split(":", 1)[0]
    api = stack.api(token)

    def get(path: str, accept: str, source: str = "127.0.0.1") -> int:
        """One GET through the proxy from `source` (another loopback address: another visitor)."""
        c = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10, source_address=(source, 0))
        try:
            c.request("GET", path, headers={"Host": host, "Accept": accept, "Authorization": f"Bearer {token}"})
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    before = api.get(f"{hub}/api/spaces/{owner}/counted/analytics?period=hour").json()["totals"]["requests"]
    statuses = [get("/?ticket=in-the-query", "text/html,application/xhtml+xml") for _ in range(4)]
    statuses += [get("/", "text/html", source="127.0.0.2") for _ in range(2)]
    statuses += [get("/api/predict", "application/json") for _ in range(3)]       # 404 from the static site
    statuses += [get("/style.css", "text/css") for _ in range(5)]
    assert statuses == [200] * 6 + [404] * 3 + [200] * 5, statuses
    expected = before + 14

    # The beat (ANALYTICS_INTERVAL=3 in the test stack) sends the rollup to the lifecycle worker.
    def figures():
        r = api.get(f"{hub}/api/spaces/{owner}/counted/analytics", params={"period": "hour"})
        assert r.status_code == 200, r.text
        return r.json()

    data = wait_for(figures, lambda d: d["totals"]["requests"] >= expected)
    totals = data["totals"]
    assert totals["requests"] == expected, data
    assert totals["page_views"] >= 6 and totals["api_calls"] >= 3 and totals["client_errors"] >= 3, totals
    assert data["unique_visitors"]["count"] >= 2
    assert totals["latency_median_ms"] is not None and totals["latency_p95_ms"] is not None
    day = api.get(f"{hub}/api/spaces/{owner}/counted/analytics?period=30d").json()
    assert day["totals"]["requests"] == expected and day["unique_visitors"]["counting"] == "sum_of_daily_uniques"
    bad = api.get(f"{hub}/api/spaces/{owner}/counted/analytics?period=week")
    assert bad.status_code == 400 and "period" in bad.json()["detail"]
    assert stack.api(stranger_token).get(f"{hub}/api/spaces/{owner}/counted/analytics").status_code == 404
    assert stack.api().get(f"{hub}/api/spaces/{owner}/counted/analytics").status_code == 404

    # What the raw log keeps: 0600, nothing of what was read (addresses, paths), no query strings.
    log = stack.data_dir / "proxy" / "analytics.log"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    raw = log.read_bytes()
    assert b"127.0.0.2" not in raw and b"ticket" not in raw and b"in-the-query" not in raw

    # The tab in Chromium: the owner sees the figures and charts; a stranger gets the 404 page.
    ctx, page = new_page(browser)
    sctx, spage = new_page(browser)
    try:
        log_in(page, hub, owner)
        page.goto(f"{hub}/spaces/{owner}/counted")
        page.locator("#analytics-tab").click()
        page.wait_for_url(f"{hub}/spaces/{owner}/counted/analytics")
        expect(page.locator("#fig-requests b")).to_have_text(str(expected))
        expect(page.locator(".period.active")).to_have_text("Last day")
        expect(page.locator("#chart-traffic svg")).to_be_visible()
        assert page.locator("#chart-latency svg").count() == 1 and page.locator("#chart-errors svg").count() == 1
        shot(page, "60-analytics-day.png", full_page=True)
        page.locator(".period[data-period=hour]").click()
        page.wait_for_url(f"{hub}/spaces/{owner}/counted/analytics?period=hour")
        expect(page.locator("#fig-4xx b")).to_have_text(str(totals["client_errors"]))
        shot(page, "61-analytics-hour.png", full_page=True)
        page.locator(".period[data-period='30d']").click()
        expect(page.locator("#fig-visitors span")).to_have_text("unique visitors (sum of daily uniques)")
        expect(page.locator("#chart-visitors svg")).to_be_visible()
        shot(page, "62-analytics-30d.png", full_page=True)
        # The owner's sparkline on their profile's cards.
        page.goto(f"{hub}/users/{owner}")
        expect(page.locator(f"[data-space='{owner}/counted'] .card-spark svg")).to_be_visible()
        shot(page, "63-analytics-sparkline.png")

        log_in(spage, hub, stranger)
        response = spage.goto(f"{hub}/spaces/{owner}/counted/analytics")
        assert response.status == 404
        spage.goto(f"{hub}/users/{owner}")
        assert spage.locator(".card-spark").count() == 0
    finally:
        ctx.close()
        sctx.close()


def log_in(page, hub: str, username: str) -> None:
    page.goto(f"{hub}/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()
    assert "/accounts/login" not in page.url, f"login failed for {username}"
