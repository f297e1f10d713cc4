#!/usr/bin/env python3
"""Browse and search: server time of the space lists on a hub with 10,000 spaces and
100,000 comments.

In-process, with Django's test Client (no network, no web server): the time of one request
is everything the hub does for it (middleware, session or token, the SQL, serializing or
rendering), which is what the database size changes. The data lives in a database of its own
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/demohub_bench), created and
migrated when missing and filled by `manage.py seed_demo --prefix bench` (a rerun finds it
seeded and only tops up). It never touches the hub's own database.

Cases: the browse page (anonymous, and a user who owns and collaborates on private spaces),
a profile page, GET /api/spaces with realistic searches, each sort, filters, page 1 and deep
pages. Each case is requested --requests times (default 200) after a warm-up; p50 and p95
are reported against the target p95 <= 50 ms. SQL queries per request are counted at page
size 10 and 100 (they must be equal: no per-row queries).

Usage:  .venv/bin/python bench/browse_search.py [--requests N] [--spaces N] [--comments N]
                                                [--explain] [--only SUBSTRING]
Prints one line per case, then one JSON line. Exits 0 whatever the figures are (a
measurement, not a test); 1 only when the database could not be used.
"""
from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

from spaces.accounts.services import token_create

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/demohub_bench")
# Before Django reads its settings: this process only ever talks to the bench database.
os.environ["DATABASE_URL"] = BENCH_DATABASE_URL
os.environ["DJANGO_SETTINGS_MODULE"] = "hub.settings"
os.environ.setdefault("DEMOHUB_INSTANCE", "bench-browse")
os.environ.setdefault("DJANGO_DEBUG", "false")
# Production settings want the proxy's key; nothing here talks to a proxy.
os.environ.setdefault("PROXY_SHARED_SECRET", "bench-browse-search-no-proxy")
# ... and real keys (hub/settings.py refuses published ones); nothing here keeps them.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(48))
os.environ.setdefault("SECRETS_ENCRYPTION_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())

from bench._common import final_json, log, machine  # noqa: E402

TARGET_P95_MS = 50.0
PREFIX = "bench"


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


def prepare(spaces: int, comments: int) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    t = time.monotonic()
    call_command("seed_demo", spaces=spaces, comments=comments, prefix=PREFIX)
    log(f"seed_demo (top-up and refresh) took {time.monotonic() - t:.1f} s")


def people():
    """A user who owns and collaborates on private spaces (the visibility filter's worst case),
    an owner with many spaces for the profile page, and an API token of the former."""
    from django.contrib.auth import get_user_model
    from django.db.models import Count, Q

    from spaces.access.models import Collaborator

    User = get_user_model()
    seeded = User.objects.filter(username__startswith=f"{PREFIX}-")
    member = (seeded.annotate(collabs=Count("collaborations", distinct=True),
                              private=Count("spaces", filter=Q(spaces__visibility="private"), distinct=True))
              .filter(collabs__gt=0, private__gt=0).order_by("-collabs", "pk").first())
    owner = seeded.annotate(n=Count("spaces")).order_by("-n", "pk").first()
    _, token = token_create(user=member, name="bench-browse-search", scope="read")
    return member, owner, token, Collaborator.objects.filter(user=member).count()


def cases(member, owner) -> list[tuple[str, str, str]]:
    """(name, who, path): who is anon, session (browser logged in) or token (API)."""
    api = "/api/spaces"
    return [
        ("browse anonymous", "anon", "/"),
        ("browse logged-in", "session", "/"),
        ("browse search", "anon", "/?search=image+classifier"),
        ("browse search logged-in", "session", "/?search=speech"),
        ("browse sdk+tag+likes", "anon", "/?sdk=gradio&tag=vision&sort=likes"),
        ("browse deep page 200", "anon", "/?page=200"),
        ("profile anonymous", "anon", f"/users/{owner.username}"),
        ("profile logged-in", "session", f"/users/{member.username}"),
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
        ("api search owner", "anon", f"{api}?search={owner.username}"),
        ("api search + sort=likes", "anon", f"{api}?search=dog&sort=likes"),
        ("api filter sdk+tag", "anon", f"{api}?sdk=gradio&tag=vision"),
        ("api filter status+sdk", "token", f"{api}?status=running&sdk=streamlit&sort=recent"),
        ("api filter author", "anon", f"{api}?author={owner.username}"),
        ("api deep page 100", "anon", f"{api}?page=100"),
        ("api deep page 80 size 100", "anon", f"{api}?page=80&page_size=100"),
        ("api search deep page", "anon", f"{api}?search=demo&page=50"),
    ]


def clients(member, token):
    from django.test import Client

    anon = Client(HTTP_HOST="localhost")
    session = Client(HTTP_HOST="localhost")
    session.force_login(member)
    bearer = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {token}")
    return {"anon": anon, "session": session, "token": bearer}


def first_page(path: str, size: int | None) -> str:
    """`path` on page 1, with ?page_size=size (API) when given."""
    parts = urlparse(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("page", "page_size")]
    if size is not None:
        query.append(("page_size", str(size)))
    return f"{parts.path}?{urlencode(query)}" if query else parts.path


def count_queries(client, path: str) -> dict[int, int]:
    """SQL queries of one request for page 1 at page size 10 and 100 (the browse and profile
    pages take theirs from views_discovery.PAGE_SIZE, patched here)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from spaces.catalog import pages_browse as views_discovery

    counts = {}
    page_size = views_discovery.PAGE_SIZE
    for size in (10, 100):
        views_discovery.PAGE_SIZE = size
        try:
            url = first_page(path, size if path.startswith("/api/") else None)
            client.get(url)  # so a once-a-minute write (a token's last use) falls outside
            with CaptureQueriesContext(connection) as ctx:
                resp = client.get(url)
            if resp.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {resp.status_code}")
            counts[size] = len(ctx.captured_queries)
        finally:
            views_discovery.PAGE_SIZE = page_size
    return counts


def explain(client, path: str) -> None:
    """EXPLAIN ANALYZE of the slowest query of one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(path)
    slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
        plan = "\n".join(row[0] for row in cur.fetchall())
    log(f"    slowest query ({float(slowest['time']) * 1000:.1f} ms):\n    {slowest['sql'][:600]}\n{plan}\n")


def measure(client, path: str, n: int) -> list[float]:
    for _ in range(5):  # warm-up: compiled templates, the connection, the buffer cache
        client.get(path)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        resp = client.get(path)
        samples.append((time.perf_counter() - t) * 1000)
        if resp.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status_code}")
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spaces", type=int, default=10_000)
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each case's slowest query")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    args = parser.parse_args()

    try:
        ensure_database(BENCH_DATABASE_URL)
        import django

        django.setup()
        prepare(args.spaces, args.comments)
        member, owner, token, collaborations = people()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        log("browse_search: the bench database could not be prepared")
        return 1

    from django.db import connection

    from spaces.accounts.models import ApiToken
    from spaces.community.models import Comment
    from spaces.records.models import Space

    facts = {"spaces": Space.objects.filter(label__startswith=f"{PREFIX}-s").count(),
             "public": Space.objects.filter(label__startswith=f"{PREFIX}-s", visibility="public").count(),
             "comments": Comment.objects.count(), "member": member.username,
             "member_collaborations": collaborations,
             "member_private_spaces": Space.objects.filter(owner=member, visibility="private").count(),
             "postgres": connection.cursor().connection.server_version}
    log(f"data: {facts}")
    log(f"target: p95 <= {TARGET_P95_MS:.0f} ms per request; {args.requests} requests per case\n")
    log(f"{'case':<36} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}  queries@10/100  met")
    by_who = clients(member, token)
    results = {}
    try:
        for name, who, path in cases(member, owner):
            if args.only and args.only not in name:
                continue
            client = by_who[who]
            try:
                samples = measure(client, path, args.requests)
            except RuntimeError as exc:  # e.g. a deep page beyond a smaller --spaces
                log(f"{name:<36} skipped: {exc}")
                continue
            queries = count_queries(client, path)
            p50, p95 = statistics.median(samples), percentile(samples, 95)
            met = p95 <= TARGET_P95_MS and queries[10] == queries[100]
            results[name] = {"path": path, "who": who, "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                             "max_ms": round(max(samples), 2), "queries_page_size_10": queries[10],
                             "queries_page_size_100": queries[100], "met": met}
            log(f"{name:<36} {p50:7.1f} {p95:7.1f} {max(samples):7.1f}  {queries[10]:>6}/{queries[100]:<6}  "
                f"{'yes' if met else 'NO'}")
            if args.explain:
                explain(client, path)
    finally:
        ApiToken.objects.filter(name="bench-browse-search").delete()
    worst = max(results.values(), key=lambda r: r["p95_ms"]) if results else None
    all_met = all(r["met"] for r in results.values())
    log(f"\nworst p95: {worst['p95_ms'] if worst else '-'} ms; all met: {'yes' if all_met else 'NO'}")
    final_json({"benchmark": "browse_search", "target_p95_ms": TARGET_P95_MS, "requests_per_case": args.requests,
                "data": facts, "machine": machine(), "cases": results, "all_met": all_met})
    return 0


if __name__ == "__main__":
    sys.exit(main())
