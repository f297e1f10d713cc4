"""Fixtures for the hub's unit tests (tests.settings: real Postgres and Redis, eager Celery, the
fake runner backend).

Nothing here is autouse: test_archive.py and test_proxy.py in this directory are plain pytest
and must not pick up Django state. Hub tests ask for the `hub` fixture (usually through
`pytestmark = pytest.mark.usefixtures("hub")`), which gives every test its own data
directories, a loopback spaces subnet (so the health probe never leaves the machine) and a
clean fake backend.
"""
from __future__ import annotations

import itertools
import os
import random
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from spaces.accounts.services import token_create
from spaces.catalog.services import revision_create, space_create
from tests.archives import make_archive

PASSWORD = "correct horse battery staple 42"
# A different client address per client: the sign-up and token endpoints are rate limited per
# IP in the (shared, persistent) Redis cache, so runs must not share a counter.
_ips = itertools.count(random.randrange(1, 2**20) * 64)


def next_ip() -> str:
    # Never an address ending in .0: mapping it to .1 gave two clients in a row one address,
    # and a per-address limit then counted both (test_revocation's per-name-and-address test
    # failed so in CI runs here).
    n = next(_ips) % (2**24)
    while n & 255 == 0:
        n = next(_ips) % (2**24)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


# ------------------------------------------------------------------------------ environment
@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database of this run's own (test_demohub_<pid>), created and dropped by the run.

    Several people run tests/unit on this machine at once; with the shared default name one
    run's setup drops the database another run is using.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    test = db.setdefault("TEST", {})
    test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}_{os.getpid()}"


@pytest.fixture
def fake_backend():
    from runner.backends.fake import FakeBackend
    from spaces.lifecycle.engine import get_backend

    backend = get_backend()
    assert isinstance(backend, FakeBackend), "unit tests must run on the fake backend"

    def reset():
        backend.containers.clear()
        backend.images.clear()
        backend.builds.clear()
        backend.build_steps.clear()
        for store in (backend.image_parents, backend.layers, backend.image_created):
            store.clear()
        backend.fail_build = ""
        backend.fail_start = False

    reset()
    yield backend
    reset()


@pytest.fixture
def hub(db, settings, tmp_path, fake_backend, monkeypatch):
    """Per-test files and settings for the hub."""
    from runner import proxy
    from spaces.lifecycle import redeploy

    # No nginx behind these routes (a proxy that applied everything, below): a slot switch is
    # seen at once and no connection is left to drain, so a start or redeploy does not wait out
    # a worker's flag cache (up to 1.05 s, runner/proxy.wait_applied) or a drain's quiet time.
    # Tests of those waits run a real nginx or a routes dir of their own, without this fixture.
    monkeypatch.setattr(proxy, "SLOT_FLAG_CACHE_SECONDS", 0)
    monkeypatch.setattr(redeploy, "DRAIN_SETTLE", 0.0)
    settings.SNAPSHOTS_DIR = tmp_path / "snapshots"
    settings.REPOS_DIR = tmp_path / "repos"
    settings.SITES_DIR = tmp_path / "sites"
    settings.PROXY_ROUTES_DIR = tmp_path / "proxy" / "routes"
    settings.PROXY_ROUTES_DIR.mkdir(parents=True)
    # Pretend a proxy has loaded every generation, so publishing a route does not wait 5 s.
    (tmp_path / "proxy" / "applied").write_text("1000000000\n")
    # Slot addresses on loopback: a health probe of a fake container is refused locally.
    settings.SPACES_SUBNET = "127.77.0.0/16"
    settings.SPACE_STARTUP_TIMEOUT = 1
    settings.SIGNUP_OPEN = True
    # A fresh installation id per test: live logs in Redis (keyed by instance and row id) never
    # meet those of an earlier run or of a concurrent one, whose row ids start at 1 as well.
    settings.DEMOHUB_INSTANCE = f"unit-{uuid.uuid4().hex[:10]}"
    # Rate-limit counters of this test only (django-ratelimit keys in the cache). Not
    # cache.clear(): that flushes the Redis db that concurrent runs use as well.
    settings.RATELIMIT_CACHE_PREFIX = f"rl:{settings.DEMOHUB_INSTANCE}:"
    yield SimpleNamespace(settings=settings, tmp=tmp_path, backend=fake_backend)
    from spaces.lifecycle import logs

    redis = logs.client()
    stale = list(redis.scan_iter(match=f"demohub:{settings.DEMOHUB_INSTANCE}:*", count=1000))
    stale += redis.scan_iter(match=f"*:{settings.RATELIMIT_CACHE_PREFIX}*", count=1000)
    if stale:
        redis.delete(*stale)


# ------------------------------------------------------------------------------ people
@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username: str, password: str = PASSWORD, **kw):
        return get_user_model().objects.create_user(username=username, password=password, **kw)

    return make


@pytest.fixture
def make_token(db):

    def make(user, scope: str = "write") -> str:
        _, raw = token_create(user=user, name="test", scope=scope)
        return raw

    return make


@pytest.fixture
def api(make_token):
    """api(user=None, scope="write") -> an APIClient sending that user's Bearer token."""

    def client(user=None, scope: str = "write", token: str | None = None) -> APIClient:
        c = APIClient(REMOTE_ADDR=next_ip())
        if token is None and user is not None:
            token = make_token(user, scope)
        if token is not None:
            c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return c

    return client


@pytest.fixture
def people(make_user):
    """owner, editor, viewer, stranger (users) and anonymous (None)."""
    return {"owner": make_user("olive"), "editor": make_user("eddie"), "viewer": make_user("vera"),
            "stranger": make_user("stan"), "anonymous": None}


@pytest.fixture
def make_space(db):
    from spaces.access.models import Collaborator

    def make(owner, name: str = "demo", *, sdk: str = "static", visibility: str = "public",
             editors=(), viewers=(), **kw):
        space = space_create(owner=owner, name=name, sdk=sdk, visibility=visibility, **kw)
        for u in editors:
            Collaborator.objects.create(space=space, user=u, role=Collaborator.Role.EDITOR)
        for u in viewers:
            Collaborator.objects.create(space=space, user=u, role=Collaborator.Role.VIEWER)
        return space

    return make


# ------------------------------------------------------------------------------ archives
def targz_bytes(files: dict[str, str | bytes]) -> bytes:
    return make_archive(files)


def readme(**front) -> str:
    lines = ["---"] + [f"{k}: {v}" for k, v in front.items()] + ["---", "", "# A demo", ""]
    return "\n".join(lines)


STATIC_REPO = {"README.md": readme(title="Static demo", sdk="static", emoji="🌍", tags="[web, demo]"),
               "index.html": "<h1>hello</h1>\n"}
GRADIO_REPO = {"README.md": readme(title="Gradio demo", sdk="gradio", colorFrom="red"),
               "app.py": "import gradio as gr\n", "requirements.txt": "numpy\n"}


@pytest.fixture
def repo():
    """Archive helpers: repo.targz(files) -> bytes, repo.readme(**front), ready-made trees."""
    return SimpleNamespace(targz=targz_bytes, readme=readme, static=dict(STATIC_REPO), gradio=dict(GRADIO_REPO))


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """upload(client, space_or_path, files|bytes) -> response; runs the queued work (eager Celery)."""

    def do(client, space, files, *, run: bool = True, filename: str = "repo.tar.gz"):
        path = space if isinstance(space, str) else f"{space.owner.username}/{space.name}"
        data = files if isinstance(files, bytes) else targz_bytes(files)
        archive = SimpleUploadedFile(filename, data, content_type="application/gzip")
        with django_capture_on_commit_callbacks(execute=run):
            return client.post(f"/api/spaces/{path}/revisions", {"archive": archive}, format="multipart")

    return do


@pytest.fixture
def push(repo, run_on_commit):
    """push(space, files, by, run=True) -> the new Revision (as stored); with run, the queued
    build and start run inline (eager Celery)."""
    import io


    def do(space, files, by, *, run=True):
        data = io.BytesIO(repo.targz(files))
        if not run:
            return revision_create(space=space, archive=data, created_by=by)
        with run_on_commit():
            rev = revision_create(space=space, archive=data, created_by=by)
        rev.refresh_from_db()
        return rev

    return do


@pytest.fixture
def serving(olive, make_space, push, repo, app_server):
    """A gradio space RUNNING revision 1 on slot a, with a healthy app on both slot addresses
    (`.port` is the app's port)."""
    from tests.unit.helpers import fresh, gradio_files

    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    app_server(space.slot_address("b"), port)
    push(space, gradio_files(repo, port, "1"), olive)
    s = fresh(space)
    assert (s.status, s.running_revision.number, s.active_slot) == ("RUNNING", 1, "a")
    s.port = port
    return s


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """with run_on_commit(): ...  runs what the block queued for after commit (eager tasks)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)



# ------------------------------------------------------------------------------ a healthy app
class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def app_server():
    """serve(address, port=0) -> port: an HTTP app answering 200 on a loopback slot address."""
    servers = []

    def serve(address: str, port: int = 0) -> int:
        server = ThreadingHTTPServer((address, port), _Ok)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def olive(make_user):
    return make_user("olive")


# ------------------------------------------------------------------------------ repositories
from tests.unit.repo_fixtures import repo_space  # noqa: E402,F401 - a space with a bare repository
