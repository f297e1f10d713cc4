"""What the benchmarks rely on, since they drive the hub only over HTTP and by processes:
`manage.py seed_bench` (the data and who signs in), the bench headers (the hub's time and
its SQL queries per response, only with BENCH_HEADERS), BROWSE_PAGE_SIZE, and the SDK
versions bench/upload_to_live.py gives the stack it starts."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db import connection
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext

from spaces.models import Collaborator, Space
from tests.unit.test_proxy_secret import GOOD_DJANGO_KEY, GOOD_FERNET_KEY

ROOT = Path(__file__).resolve().parents[2]
BENCH_MIDDLEWARE = "hub.bench_headers.BenchHeadersMiddleware"


# ------------------------------------------------------------------------------ seed_bench
@pytest.mark.django_db(transaction=True)  # seed_demo ends with VACUUM, which runs outside a transaction
def test_seed_bench_seeds_and_prints_who_signs_in_with_a_fresh_password(api):
    def seed() -> dict:
        out = io.StringIO()
        call_command("seed_bench", spaces=60, comments=50, prefix="tb", stdout=out)
        return json.loads(out.getvalue().strip().splitlines()[-1])

    first = seed()
    member = first["member"]
    assert first["facts"]["spaces"] == Space.objects.filter(label__startswith="tb-s").count() == 60
    assert first["facts"]["member_private_spaces"] == Space.objects.filter(owner__username=member,
                                                                           visibility="private").count() > 0
    assert first["facts"]["member_collaborations"] == Collaborator.objects.filter(user__username=member).count() > 0
    owner_spaces = Space.objects.filter(owner__username=first["owner"]).count()
    assert owner_spaces == max(Space.objects.filter(owner=s.owner).count() for s in Space.objects.all())
    # The benchmark signs in with it over HTTP: the token endpoint takes it.
    r = api().post("/api/token", {"username": member, "password": first["password"], "scope": "read"},
                   format="json")
    assert r.status_code == 201, r.content
    # A rerun tops up nothing, and the old password no longer works.
    second = seed()
    assert second["member"] == member and second["facts"]["spaces"] == 60
    assert second["password"] != first["password"]
    assert authenticate(username=member, password=first["password"]) is None
    assert authenticate(username=member, password=second["password"]) is not None


@pytest.mark.django_db(transaction=True)
def test_seed_bench_says_when_there_is_nobody_to_sign_in_as():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="raise --spaces"):
        call_command("seed_bench", spaces=0, comments=0, prefix="tz", stdout=io.StringIO())


# ------------------------------------------------------------------------------ bench headers
@pytest.mark.django_db
@pytest.mark.usefixtures("hub")
def test_bench_headers_give_the_hubs_time_and_the_requests_own_query_count(settings, make_space, olive):
    for n in range(3):
        make_space(olive, f"demo{n}")
    assert "Server-Timing" not in Client().get("/api/spaces")  # off unless BENCH_HEADERS
    with override_settings(MIDDLEWARE=[BENCH_MIDDLEWARE, *settings.MIDDLEWARE]):
        client = Client()
        client.get("/api/spaces")  # the first request's one-off queries (none expected, but not measured)
        with CaptureQueriesContext(connection) as ctx:
            resp = client.get("/api/spaces")
        assert resp.status_code == 200
        assert int(resp["X-Demohub-Queries"]) == len(ctx.captured_queries) > 0
        assert re.fullmatch(r"app;dur=\d+\.\d\d", resp["Server-Timing"])
        # Under ASGI (as uvicorn runs the hub), the sync view runs in a thread: still counted.
        aresp = async_to_sync(AsyncClient().get)("/api/spaces")
        assert aresp.status_code == 200 and aresp["X-Demohub-Queries"] == resp["X-Demohub-Queries"]
        assert float(aresp["Server-Timing"].split("dur=")[1]) > 0


def probe_settings(**env) -> subprocess.CompletedProcess:
    """hub.settings in a fresh interpreter, as tests/unit/test_proxy_secret.py loads it (a
    developer's .env does not count): the first middleware and the browse page size."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "DEMOHUB_ENV_FILE", "BENCH_HEADERS", "BROWSE_PAGE_SIZE"))}
    clean.update({"DEMOHUB_ENV_FILE": "/dev/null", "DJANGO_SECRET_KEY": GOOD_DJANGO_KEY,
                  "SECRETS_ENCRYPTION_KEY": GOOD_FERNET_KEY, "PROXY_SHARED_SECRET": "s3cret", **env})
    return subprocess.run([sys.executable, "-c", "import hub.settings as s; print(s.MIDDLEWARE[0], s.BROWSE_PAGE_SIZE)"],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_bench_headers_only_when_asked_and_outermost():
    done = probe_settings()
    assert done.stdout.split() == ["django.middleware.security.SecurityMiddleware", "24"], done.stderr
    done = probe_settings(BENCH_HEADERS="true", BROWSE_PAGE_SIZE="10")
    assert done.stdout.split() == [BENCH_MIDDLEWARE, "10"], done.stderr


# ------------------------------------------------------------------------------ BROWSE_PAGE_SIZE
@pytest.mark.parametrize("value", ["0", "501", "many"])
def test_a_browse_page_size_out_of_range_is_refused_by_name(value):
    done = probe_settings(BROWSE_PAGE_SIZE=value)
    assert done.returncode != 0
    assert "BROWSE_PAGE_SIZE" in done.stderr


# ------------------------------------------------------------------------------ SDK versions
def test_upload_bench_starts_its_stack_with_the_hubs_default_sdk_versions():
    settings_py = (ROOT / "hub/settings.py").read_text()
    bench_py = (ROOT / "bench/upload_to_live.py").read_text()
    for sdk in ("GRADIO", "STREAMLIT"):
        hub_default = re.search(rf'env\.str\("DEFAULT_{sdk}_VERSION", default="([^"]+)"\)', settings_py).group(1)
        bench_default = re.search(rf'os\.environ\.get\("DEFAULT_{sdk}_VERSION"\) or "([^"]+)"', bench_py).group(1)
        assert bench_default == hub_default, f"bench/upload_to_live.py: DEFAULT_{sdk}_VERSION"
