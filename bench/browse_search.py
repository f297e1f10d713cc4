#!/usr/bin/env python3
"""Browse and search: the space lists of a hub with 10,000 spaces and 100,000 comments, over HTTP.

Seeding is a process of its own: `manage.py seed_bench` (seed_demo under the prefix "bench",
then a password for the user the bench signs in as) on a database of its own
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/demohub_bench), created and
migrated when missing; a rerun finds it seeded and only tops up. It never touches a hub's
database.

Measuring uses only HTTP: the bench starts the hub's web process (uvicorn, as
tests/e2e/stack.py starts it; no workers and no beat, which would reconcile the seeded spaces)
on that database with BENCH_HEADERS=true, so that every response says how long the hub took
(`Server-Timing: app;dur=`, from the outermost middleware: every middleware, session or token,
the SQL, serializing or rendering) and how many SQL queries it ran (`X-Demohub-Queries`). It
signs in like a user: the login page for the browser cases, POST /api/token for the API ones.

Cases: the browse page (anonymous, and a user who owns and collaborates on private spaces),
a profile page, GET /api/spaces with realistic searches, each sort, filters, page 1 and deep
pages. Each case is requested --requests times (default 200) after a warm-up. Reported: p50,
p95 and max of the hub's time (the figure the target p95 <= 50 ms is judged on: the span the
in-process version timed with Django's test Client, exactly so with --server wsgi) and p50
and p95 of the whole HTTP round trip on loopback (the hub's time plus the web server and the
socket). SQL queries of page 1 are counted at page size 10 and 100 (the web
process restarted with BROWSE_PAGE_SIZE=10, then 100, for the pages; ?page_size for the API):
they must be equal (no per-row queries).

With --server wsgi the web process is Django's own WSGI server (runserver --noreload) instead
of uvicorn: each request runs through the synchronous handler in one thread, the path the
in-process version timed. Under uvicorn a sync view and every sync middleware hook hop
between the event loop and a worker thread; on a quiet machine that costs little, on a
loaded one each hop waits for a CPU, and the hub's time grows with the load.

Usage:  .venv/bin/python bench/browse_search.py [--requests N] [--spaces N] [--comments N]
                                                [--only SUBSTRING] [--server asgi|wsgi]
Prints one line per case, then one JSON line. Exits 0 whatever the figures are (a
measurement, not a test); 1 only when the database or the hub could not be used.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench._common import ROOT, final_json, log, machine, sigterm_raises, start_stack  # noqa: E402
from tests.e2e.stack import wait_http  # noqa: E402

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/demohub_bench")
TARGET_P95_MS = 50.0
PREFIX = "bench"
TOKEN_NAME = "bench-browse-search"


def ensure_database(url: str) -> None:
    """CREATE DATABASE when it does not exist (connecting to the server's `postgres` database)."""
    import psycopg2
    from psycopg2 import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                            password=parts.password, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                log(f"creating database {name}")
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def manage(stack, *args: str, timeout: float = 900) -> str:
    """`manage.py <args>` as a process of its own, with the bench hub's settings."""
    proc = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def seed(stack, spaces: int, comments: int) -> dict:
    """Migrate and seed the bench database; who signs in, and facts about the data."""
    manage(stack, "migrate", "--noinput")
    t = time.monotonic()
    out = manage(stack, "seed_bench", "--spaces", str(spaces), "--comments", str(comments), "--prefix", PREFIX)
    lines = out.strip().splitlines()
    for line in lines[:-1]:
        log(f"  {line}")
    log(f"seed_bench (top-up and refresh) took {time.monotonic() - t:.1f} s")
    return json.loads(lines[-1])


def http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never via an HTTP proxy from the environment
    return s


def sign_in(hub: str, username: str, password: str) -> tuple[requests.Session, requests.Session]:
    """A browser session (the login page, with its CSRF token) and an API session (a read
    token from POST /api/token)."""
    browser = http()
    browser.get(f"{hub}/accounts/login/", timeout=30).raise_for_status()
    r = browser.post(f"{hub}/accounts/login/", timeout=30, allow_redirects=False,
                     data={"username": username, "password": password,
                           "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    if r.status_code != 302 or "sessionid" not in browser.cookies:
        raise RuntimeError(f"login as {username}: HTTP {r.status_code} {r.text[:300]}")
    r = http().post(f"{hub}/api/token", timeout=30,
                    json={"username": username, "password": password, "name": TOKEN_NAME, "scope": "read"})
    if r.status_code != 201:
        raise RuntimeError(f"POST /api/token: HTTP {r.status_code} {r.text[:300]}")
    api = http()
    api.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return browser, api


def revoke_tokens(hub: str, browser: requests.Session) -> None:
    """Revoke this bench's tokens (a read token may not revoke; the browser session may)."""
    listed = browser.get(f"{hub}/api/tokens?page_size=100", timeout=30).json().get("results", [])
    for token in listed:
        if token["name"] == TOKEN_NAME and not token["revoked_at"]:
            browser.delete(f"{hub}/api/tokens/{token['id']}", timeout=30,
                           headers={"X-CSRFToken": browser.cookies["csrftoken"], "Referer": hub + "/"})


def cases(member: str, owner: str) -> list[tuple[str, str, str]]:
    """(name, who, path): who is anon, session (browser logged in) or token (API)."""
    api = "/api/spaces"
    return [
        ("browse anonymous", "anon", "/"),
        ("browse logged-in", "session", "/"),
        ("browse search", "anon", "/?search=image+classifier"),
        ("browse search logged-in", "session", "/?search=speech"),
        ("browse sdk+tag+likes", "anon", "/?sdk=gradio&tag=vision&sort=likes"),
        ("browse deep page 200", "anon", "/?page=200"),
        ("profile anonymous", "anon", f"/users/{owner}"),
        ("profile logged-in", "session", f"/users/{member}"),
        ("api list (trending)", "anon", api),
        ("api list logged-in", "token", api),
        ("api sort=likes", "anon", f"{api}?sort=likes"),
        ("api sort=recent", "anon", f"{api}?sort=recent"),
        ("api sort=trending", "token", f"{api}?sort=trending"),
        ("api search cat", "anon", f"{api}?search=cat"),
        ("api search 'speech recognition'", "anon", f"{api}?search=speech+recognition"),
        ("api search prefix 'classif'", "anon", f"{api}?search=classif"),
        ("api search phrase -negation", "anon", f'{api}?search=%22object+detector%22+-car'),
        ("api search README words", "token", f"{api}?search=adamw+learning+rate"),
        ("api search owner", "anon", f"{api}?search={owner}"),
        ("api search + sort=likes", "anon", f"{api}?search=dog&sort=likes"),
        ("api filter sdk+tag", "anon", f"{api}?sdk=gradio&tag=vision"),
        ("api filter status+sdk", "token", f"{api}?status=running&sdk=streamlit&sort=recent"),
        ("api filter author", "anon", f"{api}?author={owner}"),
        ("api deep page 100", "anon", f"{api}?page=100"),
        ("api deep page 80 size 100", "anon", f"{api}?page=80&page_size=100"),
        ("api search deep page", "anon", f"{api}?search=demo&page=50"),
    ]


def first_page(path: str, size: int | None) -> str:
    """`path` on page 1, with ?page_size=size (API) when given."""
    parts = urlparse(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("page", "page_size")]
    if size is not None:
        query.append(("page_size", str(size)))
    return f"{parts.path}?{urlencode(query)}" if query else parts.path


def get(client: requests.Session, url: str) -> requests.Response:
    resp = client.get(url, timeout=60, allow_redirects=False)
    if resp.status_code != 200:
        raise RuntimeError(f"{urlparse(url).path}: HTTP {resp.status_code}")
    if "X-Demohub-Queries" not in resp.headers:
        raise RuntimeError("the hub sends no X-Demohub-Queries: BENCH_HEADERS is not on")
    return resp


def server_ms(resp: requests.Response) -> float:
    """The hub's own time from `Server-Timing: app;dur=<ms>`."""
    return float(resp.headers["Server-Timing"].split("dur=")[1].split(",")[0])


def measure(client: requests.Session, url: str, n: int) -> tuple[list[float], list[float]]:
    """(hub times, round-trip times) in ms of n requests, after 5 warm-up requests (compiled
    templates, the database connection, the buffer cache, the keep-alive connection)."""
    for _ in range(5):
        get(client, url)
    hub, trip = [], []
    for _ in range(n):
        t = time.perf_counter()
        resp = get(client, url)
        trip.append((time.perf_counter() - t) * 1000)
        hub.append(server_ms(resp))
    return hub, trip


def count_queries(client: requests.Session, hub: str, path: str, size: int) -> int:
    """SQL queries of page 1 at page size `size` (the pages: the web process's BROWSE_PAGE_SIZE)."""
    url = hub + first_page(path, size if path.startswith("/api/") else None)
    get(client, url)  # so a once-a-minute write (a token's last use) falls outside
    return int(get(client, url).headers["X-Demohub-Queries"])


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def start_web(stack, server: str, extra_env: dict[str, str] | None = None) -> None:
    """The hub's web process (again), with `extra_env` over the bench settings: uvicorn as the
    stack runs it (asgi), or Django's own WSGI server (wsgi: `runserver --noreload`, each
    request through the synchronous handler in one thread, as the in-process bench ran it)."""
    if server == "asgi":
        stack.restart_web(extra_env)
        return
    stack.stop("web")
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    out = open(stack.log_dir / "web.log", "ab")
    stack.procs["web"] = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{stack.hub_port}", "--noreload"], cwd=ROOT,
        env={**stack.env, **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(stack.hub_url + "/api/spaces", timeout=60)


def stop(stack) -> None:
    """The web process, this instance's Redis keys and its data dir (nothing else was started)."""
    for name in list(stack.procs):
        stack.stop(name)
    try:
        stack.forget_redis_keys()
    except Exception as exc:  # noqa: BLE001
        log(f"could not forget the Redis keys of {stack.instance}: {exc}")
    shutil.rmtree(stack.data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spaces", type=int, default=10_000)
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--server", choices=("asgi", "wsgi"), default="asgi",
                        help="asgi: uvicorn, as the hub runs (default); wsgi: runserver, the in-process bench's path")
    args = parser.parse_args()
    sigterm_raises()

    stack = start_stack()
    # This stack is only a web process on the bench database, with the bench headers.
    stack.settings.update({"DATABASE_URL": BENCH_DATABASE_URL, "BENCH_HEADERS": "true", "DJANGO_DEBUG": "false"})
    hub = stack.hub_url
    try:
        ensure_database(BENCH_DATABASE_URL)
        seeded = seed(stack, args.spaces, args.comments)
        start_web(stack, args.server)
        browser, api = sign_in(hub, seeded["member"], seeded["password"])
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        log("browse_search: the bench database or its hub could not be prepared")
        stop(stack)
        return 1

    member, owner, facts = seeded["member"], seeded["owner"], seeded["facts"]
    by_who = {"anon": http(), "session": browser, "token": api}
    chosen = [c for c in cases(member, owner) if not args.only or args.only in c[0]]
    log(f"data: {facts}; web server: {args.server}")
    log(f"target: p95 <= {TARGET_P95_MS:.0f} ms per request in the hub; {args.requests} requests per case\n")
    results: dict[str, dict] = {}
    queries: dict[str, dict[int, int]] = {}
    try:
        # Queries per page at two page sizes first: the web process with each size for the pages.
        for size in (10, 100):
            start_web(stack, args.server, {"BROWSE_PAGE_SIZE": str(size)})
            for name, who, path in chosen:
                try:
                    queries.setdefault(name, {})[size] = count_queries(by_who[who], hub, path, size)
                except RuntimeError as exc:
                    queries.setdefault(name, {})[size] = -1
                    log(f"{name}: queries at page size {size} not counted: {exc}")
        start_web(stack, args.server)  # the pages as served: BROWSE_PAGE_SIZE's default
        log(f"{'case':<36} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'http p50':>8} {'http p95':>8}"
            f"  queries@10/100  met")
        for name, who, path in chosen:
            try:
                hub_ms, trip_ms = measure(by_who[who], hub + path, args.requests)
            except RuntimeError as exc:  # e.g. a deep page beyond a smaller --spaces
                log(f"{name:<36} skipped: {exc}")
                continue
            q10, q100 = queries[name][10], queries[name][100]
            r = results[name] = {
                "path": path, "who": who, "p50_ms": round(statistics.median(hub_ms), 2),
                "p95_ms": round(percentile(hub_ms, 95), 2), "max_ms": round(max(hub_ms), 2),
                "http_p50_ms": round(statistics.median(trip_ms), 2), "http_p95_ms": round(percentile(trip_ms, 95), 2),
                "queries_page_size_10": q10, "queries_page_size_100": q100}
            r["met"] = r["p95_ms"] <= TARGET_P95_MS and q10 == q100 >= 0
            log(f"{name:<36} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} {r['max_ms']:7.1f} {r['http_p50_ms']:8.1f} "
                f"{r['http_p95_ms']:8.1f}  {q10:>6}/{q100:<6}  {'yes' if r['met'] else 'NO'}")
    except BaseException as exc:  # noqa: BLE001 - report what was measured so far
        traceback.print_exc()
        log(f"browse_search stopped: {type(exc).__name__}: {exc}")
    finally:
        try:
            revoke_tokens(hub, browser)
        except Exception as exc:  # noqa: BLE001
            log(f"could not revoke the bench's token: {exc}")
        stop(stack)
    worst = max(results.values(), key=lambda r: r["p95_ms"]) if results else None
    all_met = bool(results) and all(r["met"] for r in results.values())
    log(f"\nworst p95: {worst['p95_ms'] if worst else '-'} ms; all met: {'yes' if all_met else 'NO'}")
    final_json({"benchmark": "browse_search", "target_p95_ms": TARGET_P95_MS, "requests_per_case": args.requests,
                "data": facts, "machine": machine(), "cases": results, "all_met": all_met,
                "server": args.server,
                "timing": "hub time from Server-Timing (p*_ms) and HTTP round trip on loopback (http_p*_ms)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
