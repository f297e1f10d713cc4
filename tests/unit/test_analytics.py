"""Owner analytics (spaces/analytics): the rollup of the proxy's access log, the figures of the
API and the tab, lifecycle events, pruning, and what the raw log keeps."""
from __future__ import annotations

import os
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from spaces.analytics import selectors, services
from spaces.analytics.models import (AnalyticsCursor, AnalyticsEvent, AnalyticsHour, AnalyticsMinute, AnalyticsSalt,
                                     AnalyticsVisitor)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


def line(space, *, at=None, status=200, seconds=0.012, kind="page", ip="203.0.113.7", uri="/", sent=1234) -> str:
    at = time.time() if at is None else at
    return f"{at:.3f}\t{space.label}.spaces.localhost\t{status}\t{seconds:.3f}\t{sent}\t{kind}\t{ip}\t{uri}\n"


def append(text: str) -> None:
    path = services.log_path()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


@pytest.fixture
def space(people, make_space):
    return make_space(people["owner"], "counted", visibility="private", editors=[people["editor"]],
                      viewers=[people["viewer"]])


def test_the_rollup_counts_requests_pages_api_calls_errors_latency_and_visitors(space, api, people):
    now = time.time()
    append("".join([
        line(space, at=now, kind="page", ip="198.51.100.1", seconds=0.004),
        line(space, at=now, kind="page", ip="198.51.100.2", seconds=0.040),
        line(space, at=now, kind="api", ip="198.51.100.1", status=404, seconds=0.200, uri="/gradio_api/info"),
        line(space, at=now, kind="api", ip="198.51.100.3", status=502, seconds=2.0, uri="/run/predict"),
        line(space, at=now, kind="other", ip="198.51.100.1", seconds=0.007, uri="/assets/app.js"),
        "garbage without tabs\n",
        f"{now:.3f}\tno-such-space.spaces.localhost\t200\t0.001\t1\tpage\t1.2.3.4\t/\n",
    ]))
    result = services.rollup()
    assert (result.lines, result.counted, result.skipped) == (7, 5, 2)

    body = api(people["owner"]).get(f"/api/spaces/olive/counted/analytics", {"period": "hour"}).json()
    totals = body["totals"]
    assert (totals["requests"], totals["page_views"], totals["api_calls"]) == (5, 2, 2)
    assert (totals["client_errors"], totals["server_errors"]) == (1, 1)
    assert totals["bytes_sent"] == 5 * 1234
    # 5 samples: 4, 7, 40, 200, 2000 ms -> the median falls into the 25-50 ms bucket, p95 into 1000-2500
    assert 25 <= totals["latency_median_ms"] <= 50 and 1000 <= totals["latency_p95_ms"] <= 2500
    assert body["unique_visitors"] == {"count": 3, "counting": "distinct", "label": "unique visitors"}
    assert len(body["series"]) == 60 and body["series"][-1]["requests"] == 5
    assert body["period"] == "hour" and body["bucket"] == "minute"

    day = api(people["editor"]).get(f"/api/spaces/olive/counted/analytics?period=7d").json()
    assert day["totals"]["requests"] == 5 and len(day["series"]) == 168
    assert day["unique_visitors"]["counting"] == "sum_of_daily_uniques"
    assert "sum of daily uniques" in day["unique_visitors"]["label"]
    assert [d["count"] for d in day["daily_unique_visitors"]] == [3]
    month = api(people["owner"]).get(f"/api/spaces/olive/counted/analytics?period=30d").json()
    assert len(month["series"]) == 30 and month["series"][-1]["requests"] == 5


def test_no_address_stays_in_the_log_or_the_database(space):
    append(line(space, ip="192.0.2.44") * 3)
    os.chmod(services.log_path(), 0o644)             # as nginx makes a file it has to create
    services.rollup()
    assert os.stat(services.log_path()).st_mode & 0o777 == 0o600
    raw = services.log_path().read_bytes()
    assert b"192.0.2.44" not in raw and raw.strip(b"\0") == b""
    assert os.stat(services.log_path()).st_size == len(raw)      # nginx appends behind the hole
    stored = [str(v) for v in AnalyticsVisitor.objects.values_list("visitor", flat=True)]
    assert len(stored) == 1 and "192.0.2.44" not in "".join(stored)
    # The next lines are read from the cursor on, once.
    append(line(space, ip="192.0.2.45"))
    assert services.rollup().counted == 1
    assert services.rollup().lines == 0
    assert AnalyticsMinute.objects.get(space=space).requests == 4


def test_a_half_written_line_waits_for_its_end(space):
    text = line(space)
    append(text[:20])
    assert services.rollup().lines == 0
    append(text[20:])
    assert services.rollup().counted == 1


def test_a_truncated_or_replaced_log_is_read_from_its_start(space):
    path = services.log_path()
    append(line(space) * 100)
    assert services.rollup().counted == 100
    with open(path, "r+b") as fh:                     # truncated under the cursor, then grown past it
        fh.truncate(0)
    append(line(space) * 120)
    assert services.rollup().counted == 120
    path.unlink()
    append(line(space) * 2)                          # a new file (its inode may be the old one's)
    assert services.rollup().counted == 2
    assert AnalyticsHour.objects.get(space=space).requests == 222
    assert AnalyticsCursor.objects.get(name="proxy").offset == path.stat().st_size


def test_visitors_are_hashed_with_a_daily_salt_and_old_salts_are_deleted(space):
    now = time.time()
    append(line(space, at=now, ip="198.51.100.9") + line(space, at=now - 86400, ip="198.51.100.9")
           + line(space, at=now - 3 * 86400, ip="198.51.100.9"))
    services.rollup()
    rows = list(AnalyticsVisitor.objects.order_by("day").values_list("day", "visitor"))
    # today and yesterday, with different hashes; three days ago has no salt any more (counted, not hashed)
    assert len(rows) == 2 and rows[0][1] != rows[1][1]
    assert AnalyticsHour.objects.filter(space=space).count() == 3
    services.prune(now=timezone.now() + timedelta(days=2))
    assert not AnalyticsSalt.objects.filter(day__lt=timezone.now().date() + timedelta(days=1)).exists()


def test_rollups_are_pruned_after_their_retention(space, settings):
    now = time.time()
    append(line(space, at=now - 3 * 86400) + line(space, at=now))
    services.rollup()
    assert AnalyticsMinute.objects.count() == 1 and AnalyticsHour.objects.count() == 2
    services.record_event(space.pk, "sleep")
    services.prune(now=timezone.now() + timedelta(days=settings.ANALYTICS_HOUR_DAYS + 1))
    assert not AnalyticsHour.objects.exists() and not AnalyticsEvent.objects.exists()
    assert not AnalyticsMinute.objects.exists()


def test_lifecycle_events_are_counted(space, api, people):
    services.record_event(space.pk, "wake", duration_ms=120)
    services.record_event(space.pk, "wake", duration_ms=80)
    services.record_event(space.pk, "sleep")
    services.record_event(space.pk, "restart")
    services.record_event(space.pk, "crash")
    services.record_event(space.pk, "crash")
    life = api(people["owner"]).get("/api/spaces/olive/counted/analytics?period=day").json()["lifecycle"]
    assert life == {"wakes": 2, "wake_median_ms": 120.0, "wake_p95_ms": 120.0, "sleeps": 1, "restarts": 1,
                    "crashes": 2}


def test_sleeps_wakes_with_their_latency_and_restarts_are_recorded(serving, olive, run_on_commit):
    from spaces.lifecycle import services as space_services, sleep
    from tests.unit.helpers import fresh

    assert sleep.space_sleep(serving.pk, sleep.FROZEN)
    assert sleep.space_sleep(serving.pk, sleep.STOPPED)   # frozen, then stopped: one sleep
    assert sleep.wake_requested(serving.pk)          # eager: the wake task runs here
    assert fresh(serving).status == "RUNNING"
    with run_on_commit():
        space_services.space_restart(space=fresh(serving), by=olive)
    events = list(AnalyticsEvent.objects.filter(space=serving).order_by("at").values_list("kind", "duration_ms"))
    assert [k for k, _ in events] == ["sleep", "wake", "restart"]
    assert events[1][1] is not None and 0 <= events[1][1] < 10_000


def test_a_bad_period_is_a_400_naming_it(space, api, people):
    r = api(people["owner"]).get("/api/spaces/olive/counted/analytics?period=year")
    assert r.status_code == 400 and r.json()["detail"].startswith("period: period must be one of hour, day, 7d, 30d")
    from django.test import Client

    browser = Client()
    browser.force_login(people["owner"])
    page = browser.get("/spaces/olive/counted/analytics?period=year")
    assert page.status_code == 400 and b"period must be one of" in page.content


def test_the_tab_shows_the_figures_and_charts_as_svg(space, people):
    from django.test import Client

    append(line(space, kind="page") * 3 + line(space, kind="api", status=500))
    services.rollup()
    browser = Client()
    browser.force_login(people["editor"])
    html = browser.get("/spaces/olive/counted/analytics?period=day").content.decode()
    assert 'id="fig-requests"><b>4</b>' in html and 'id="fig-5xx"><b>1</b>' in html
    assert html.count("<svg") >= 3 and "kozea.github.io" not in html and "<script" not in html.split("</header>")[1]
    assert "unique visitors (sum of daily uniques)" in html
    assert 'id="analytics-tab"' in html


def test_the_owner_sees_a_sparkline_on_their_own_cards_only(space, people, make_space):
    from django.test import Client

    public = make_space(people["owner"], "shown")
    append(line(public) * 2)
    services.rollup()
    browser = Client()
    browser.force_login(people["owner"])
    html = browser.get("/users/olive").content.decode()
    assert html.count('class="card-spark"') == 2 and "2 requests / 14 days" in html
    browser.force_login(people["stranger"])
    assert 'class="card-spark"' not in browser.get("/users/olive").content.decode()
    assert 'class="card-spark"' not in Client().get("/").content.decode()


def test_the_api_answers_503_with_retry_after_when_the_database_is_down(space, api, people):
    client = api(people["owner"])
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("gone")):
        r = client.get("/api/spaces/olive/counted/analytics")
    assert r.status_code == 503 and r["Retry-After"] == "5" and r.json()["code"] == "unavailable"
    from django.test import Client

    browser = Client()
    browser.force_login(people["owner"])
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("gone")):
        page = browser.get("/spaces/olive/counted/analytics")
    assert page.status_code == 503 and page["Retry-After"] == "5"


def test_quantiles_of_the_histogram():
    hist = [0] * 13
    assert selectors.quantile(hist, 0.5) is None
    hist[4] = 10            # all in 50-100 ms
    assert selectors.quantile(hist, 0.5) == 75.0
    hist = [0] * 12 + [1]   # beyond the last bound
    assert selectors.quantile(hist, 0.95) == 30000.0


def test_the_openapi_schema_describes_the_endpoint(client):
    schema = client.get("/api/schema", {"format": "json"}).json()
    op = schema["paths"]["/api/spaces/{owner}/{name}/analytics"]["get"]
    period = next(p for p in op["parameters"] if p["name"] == "period")
    assert sorted(period["schema"]["enum"]) == ["30d", "7d", "day", "hour"]
    props = schema["components"]["schemas"]["AnalyticsOut"]["properties"]
    assert {"totals", "unique_visitors", "lifecycle", "series"} <= set(props)
