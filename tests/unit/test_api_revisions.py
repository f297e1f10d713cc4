"""POST/GET /api/spaces/<owner>/<name>/revisions, the build and start that follow (eager Celery,
fake backend), README front matter errors, refused archives, and /logs/build|run.
"""
from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from spaces.accounts.services import token_create
from spaces.lifecycle import logs
from spaces.lifecycle.routes import container_name
from spaces.records.models import Revision
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

REVISION_FIELDS = {"number", "status", "content_hash", "commit", "message", "error", "created_by", "created_at", "started_at",
                   "finished_at"}






def detail(api, user, path="olive/demo") -> dict:
    resp = api(user).get(f"/api/spaces/{path}")
    assert resp.status_code == 200, resp.content
    return resp.json()


# ------------------------------------------------------------------------------ static: no container
def test_static_upload_runs(api, olive, make_space, upload, repo, settings):
    space = make_space(olive, "demo", sdk="static")
    resp = upload(api(olive), space, repo.static)
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert REVISION_FIELDS <= set(body)
    assert body["number"] == 1
    assert body["created_by"] == "olive"
    assert re.fullmatch(r"[0-9a-f]{64}", body["content_hash"])
    assert body["error"] == ""
    assert resp["Location"].endswith("/api/spaces/olive/demo/revisions/1")

    rev = api(olive).get(resp["Location"]).json()
    assert rev["status"] == "succeeded"
    assert rev["started_at"] and rev["finished_at"]
    space_body = detail(api, olive)
    assert space_body["status"] == "RUNNING"
    assert space_body["revision"] == 1 and space_body["running_revision"] == 1
    assert space_body["error"] == ""
    # README wins: title, emoji and tags come from the front matter.
    assert space_body["title"] == "Static demo"
    assert space_body["emoji"] == "🌍"
    assert space_body["tags"] == ["web", "demo"]
    # The proxy serves the files: the site link points at the snapshot, the route is static.
    site = settings.SITES_DIR / space.label
    assert (site / "index.html").read_text() == "<h1>hello</h1>\n"
    route = (settings.PROXY_ROUTES_DIR / f"{space.label}.conf").read_text()
    assert str(site) in route
    # The revision list shows it.
    listing = api(olive).get("/api/spaces/olive/demo/revisions").json()
    assert listing["count"] == 1 and listing["results"][0]["number"] == 1


def test_static_second_upload_replaces_the_site(api, olive, make_space, upload, repo, settings):
    space = make_space(olive, "demo", sdk="static")
    assert upload(api(olive), space, repo.static).status_code == 202
    files = dict(repo.static, **{"index.html": "<h1>v2</h1>\n"})
    resp = upload(api(olive), space, files)
    assert resp.json()["number"] == 2
    body = detail(api, olive)
    assert body["status"] == "RUNNING" and body["running_revision"] == 2
    assert (settings.SITES_DIR / space.label / "index.html").read_text() == "<h1>v2</h1>\n"
    numbers = [r["number"] for r in api(olive).get("/api/spaces/olive/demo/revisions").json()["results"]]
    assert numbers == [2, 1]


def test_same_content_same_hash(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="static")
    first = upload(api(olive), space, repo.static).json()
    second = upload(api(olive), space, repo.static).json()
    assert first["content_hash"] == second["content_hash"]
    assert second["number"] == 2


def test_upload_wrapped_in_a_top_level_folder(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="static")
    files = {f"demo-main/{k}": v for k, v in repo.static.items()}
    assert upload(api(olive), space, files).status_code == 202
    assert detail(api, olive)["status"] == "RUNNING"


def test_upload_zip(api, olive, make_space, upload, repo):
    import io
    import zipfile

    space = make_space(olive, "demo", sdk="static")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in repo.static.items():
            zf.writestr(name, content)
    assert upload(api(olive), space, buf.getvalue(), filename="repo.zip").status_code == 202
    assert detail(api, olive)["status"] == "RUNNING"


# ------------------------------------------------------------------------------ container SDKs
def test_gradio_upload_builds_and_runs_when_healthy(api, olive, make_space, upload, repo, app_server, hub):
    space = make_space(olive, "demo", sdk="gradio")
    port = app_server(space.slot_address("a"))
    files = dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", title="Healthy", app_port=port)})
    resp = upload(api(olive), space, files)
    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "queued"
    rev = Revision.objects.get(space=space, number=1)
    assert rev.status == "succeeded" and rev.image
    assert rev.image in hub.backend.images
    assert [b.app_port for b in hub.backend.builds] == [port]
    body = detail(api, olive)
    assert body["status"] == "RUNNING", body
    assert body["running_revision"] == 1
    assert body["title"] == "Healthy"
    container = hub.backend.containers[container_name(space, "a")]
    env = container["spec"].env
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert env.get("SYSTEM") != "spaces"
    assert container["spec"].labels["demohub.space"] == "olive/demo"
    assert container["spec"].labels["demohub.revision"] == "1"


def test_gradio_upload_without_answering_app_is_runtime_error(api, olive, make_space, upload, repo, settings):
    settings.SPACE_STARTUP_TIMEOUT = 1
    space = make_space(olive, "demo", sdk="gradio")
    assert upload(api(olive), space, repo.gradio).status_code == 202
    assert Revision.objects.get(space=space).status == "succeeded"
    body = detail(api, olive)
    assert body["status"] == "RUNTIME_ERROR"
    assert "startup timeout" in body["error"]
    assert body["running_revision"] is None


def test_gradio_app_that_exits_is_runtime_error(api, olive, make_space, upload, repo, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    upload(api(olive), space, repo.gradio)
    body = detail(api, olive)
    assert body["status"] == "RUNTIME_ERROR"
    assert "exited with code 1" in body["error"]


def test_build_failure_is_build_error(api, olive, make_space, upload, repo, hub):
    hub.backend.fail_build = "pip could not install numpy"
    space = make_space(olive, "demo", sdk="gradio")
    assert upload(api(olive), space, repo.gradio).status_code == 202
    rev = api(olive).get("/api/spaces/olive/demo/revisions/1").json()
    assert rev["status"] == "failed"
    assert "pip could not install numpy" in rev["error"]
    assert rev["finished_at"]
    body = detail(api, olive)
    assert body["status"] == "BUILD_ERROR"
    assert "pip could not install numpy" in body["error"]
    log = Client().get("/api/spaces/olive/demo/logs/build", headers=auth(api, olive))
    assert b"pip could not install numpy" in log.content


def test_docker_without_dockerfile_is_no_app_file(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="docker")
    upload(api(olive), space, {"README.md": repo.readme(sdk="docker"), "app.py": "x\n"})
    assert Revision.objects.get(space=space).status == "failed"
    body = detail(api, olive)
    assert body["status"] == "NO_APP_FILE"
    assert "Dockerfile" in body["error"]


# ------------------------------------------------------------------------------ README errors
def test_sdk_mismatch_is_config_error_naming_sdk(api, olive, make_space, upload, repo, hub):
    space = make_space(olive, "demo", sdk="static")
    resp = upload(api(olive), space, repo.gradio)  # README says sdk: gradio
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["status"] == "failed"
    assert "sdk" in body["error"]
    assert Revision.objects.get(space=space).status == "failed"
    space_body = detail(api, olive)
    assert space_body["status"] == "CONFIG_ERROR"
    assert "`sdk`" in space_body["error"]
    assert space_body["sdk"] == "static"
    assert space_body["revision"] == 1 and space_body["running_revision"] is None
    assert hub.backend.builds == []  # the build never started


def test_bad_color_is_config_error_naming_colorfrom(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="static")
    files = dict(repo.static, **{"README.md": repo.readme(sdk="static", colorFrom="chartreuse")})
    resp = upload(api(olive), space, files)
    assert resp.status_code == 202
    assert "colorFrom" in resp.json()["error"]
    body = detail(api, olive)
    assert body["status"] == "CONFIG_ERROR" and "colorFrom" in body["error"]


def test_missing_app_file_is_no_app_file(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="gradio")
    resp = upload(api(olive), space, {"README.md": repo.readme(sdk="gradio"), "main.py": "print(1)\n"})
    assert resp.status_code == 202
    assert resp.json()["status"] == "failed"
    body = detail(api, olive)
    assert body["status"] == "NO_APP_FILE"
    assert "app.py" in body["error"]


def test_config_error_log_is_readable(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="static")
    upload(api(olive), space, repo.gradio)
    log = Client().get("/api/spaces/olive/demo/logs/build", headers=auth(api, olive))
    assert log.status_code == 200
    assert b"sdk" in log.content


def test_bad_upload_keeps_the_serving_revision(api, olive, make_space, upload, repo, settings):
    space = make_space(olive, "demo", sdk="static")
    upload(api(olive), space, repo.static)
    assert detail(api, olive)["status"] == "RUNNING"
    resp = upload(api(olive), space, dict(repo.static, **{"README.md": repo.readme(sdk="static", colorTo="nope")}))
    assert resp.json()["status"] == "failed"
    body = detail(api, olive)
    assert body["status"] == "RUNNING"
    assert body["running_revision"] == 1 and body["revision"] == 2
    assert "revision 2" in body["error"] and "colorTo" in body["error"]
    assert (settings.SITES_DIR / space.label / "index.html").is_file()


# ------------------------------------------------------------------------------ refused archives
@pytest.mark.parametrize("data", [b"this is not an archive at all", b"\x1f\x8b\x08garbage-gzip", b"PK\x03\x04junk",
                                  b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4], ids=["text", "gzip", "zip", "png"])
def test_garbage_archive_is_422_and_leaves_nothing(api, olive, make_space, upload, data, settings):
    space = make_space(olive, "demo", sdk="static")
    resp = upload(api(olive), space, data)
    assert resp.json() == {"detail": resp.json()["detail"], "code": "not_an_archive"}
    assert resp.status_code == 422
    assert "archive" in resp.json()["detail"]
    assert not Revision.objects.exists()
    space.refresh_from_db()
    assert space.status == "NO_APP_FILE" and space.latest_revision_id is None
    snaps = settings.SNAPSHOTS_DIR
    assert not snaps.exists() or not any(snaps.iterdir())


def test_unsafe_archive_is_422(api, olive, make_space, upload):
    import io
    import tarfile

    space = make_space(olive, "demo", sdk="static")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    assert_error(upload(api(olive), space, buf.getvalue()), 422, "unsafe_path")
    assert not Revision.objects.exists()


def test_upload_without_archive_is_400(api, olive, make_space):
    make_space(olive, "demo")
    body = assert_error(api(olive).post("/api/spaces/olive/demo/revisions", {}, format="multipart"), 400)
    assert "archive" in body["detail"]


def test_revision_detail_404(api, olive, make_space):
    make_space(olive, "demo")
    assert_error(api(olive).get("/api/spaces/olive/demo/revisions/7"), 404, "not_found")


# ------------------------------------------------------------------------------ logs
def auth(api, user, scope="write") -> dict:

    _, raw = token_create(user=user, scope=scope)
    return {"Authorization": f"Bearer {raw}"}


def test_build_log_text(api, olive, make_space, upload, repo, hub):
    hub.backend.fail_start = True  # no 1 s startup timeout
    space = make_space(olive, "demo", sdk="gradio")
    upload(api(olive), space, repo.gradio)
    resp = Client().get("/api/spaces/olive/demo/logs/build", headers=auth(api, olive))
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/plain")
    text = resp.content.decode()
    assert "FAKE build" in text and "build succeeded" in text
    # A read token is enough to read logs.
    assert Client().get("/api/spaces/olive/demo/logs/build", headers=auth(api, olive, "read")).status_code == 200


def test_build_log_of_a_space_without_revision_is_empty(api, olive, make_space):
    make_space(olive, "demo")
    resp = Client().get("/api/spaces/olive/demo/logs/build", headers=auth(api, olive))
    assert resp.status_code == 200 and resp.content == b""


def test_run_log_text(api, olive, make_space, upload, repo, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    upload(api(olive), space, repo.gradio)
    resp = Client().get("/api/spaces/olive/demo/logs/run", headers=auth(api, olive))
    assert resp.status_code == 200
    assert f"fake {container_name(space, 'a')} started".encode() in resp.content


def test_unknown_log_kind_is_404(api, olive, make_space):
    make_space(olive, "demo")
    resp = Client().get("/api/spaces/olive/demo/logs/other", headers=auth(api, olive))
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"


def test_logs_bad_token_is_401(make_user, make_space):
    make_space(make_user("olive"), "demo")
    resp = Client().get("/api/spaces/olive/demo/logs/build", headers={"Authorization": "Bearer dh_nope"})
    assert_error(resp, 401)


def test_logs_with_session_login(olive, make_space):
    make_space(olive, "demo", visibility="private")
    client = Client()
    client.force_login(olive)
    assert client.get("/api/spaces/olive/demo/logs/build").status_code == 200


def _sse(path: str, headers: dict) -> tuple[int, str, bytes]:
    async def go():
        resp = await AsyncClient().get(path, headers=headers)
        body = b"".join([chunk async for chunk in resp.streaming_content])
        return resp.status_code, resp["Content-Type"], body

    return async_to_sync(go)()


def _events(raw: bytes) -> list[dict]:
    out = []
    for block in raw.decode().split("\n\n"):
        ev = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            ev[key] = ev[key] + "\n" + value if key in ev else value
        if "event" in ev:
            out.append(ev)
    return out


@pytest.fixture
def same_thread_db(monkeypatch):
    """Run the stream's `thread_sensitive=False` reads on the test's thread.

    Off the test's thread they would open a second connection, which sees none of the test's
    (uncommitted) rows and stays open after the test, blocking the test database's teardown.
    """
    from spaces.lifecycle import streams, waits

    real = streams.sync_to_async
    for module in (streams, waits):  # the stream's reads, and the board's (its own thread)
        monkeypatch.setattr(module, "sync_to_async",
                            lambda fn, thread_sensitive=True, **kw: real(fn, thread_sensitive=True))


def test_build_log_event_stream(api, olive, make_space, upload, repo, hub, same_thread_db):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    upload(api(olive), space, repo.gradio)
    headers = dict(auth(api, olive), Accept="text/event-stream")
    status, ctype, raw = _sse("/api/spaces/olive/demo/logs/build", headers)
    assert status == 200 and ctype.startswith("text/event-stream")
    events = _events(raw)
    assert [e["event"] for e in events][-1] == "end"
    log_events = [e for e in events if e["event"] == "log"]
    assert log_events and "FAKE build" in "".join(e["data"] for e in log_events)
    end = json.loads(events[-1]["data"])
    assert end["status"] == "succeeded"
    # Resume from the last id: nothing more to send but the end.
    last_id = log_events[-1]["id"]
    rev = Revision.objects.get(space=space)
    assert int(last_id) == len(logs.read(logs.build_key(rev.pk))[0])
    _, _, raw2 = _sse("/api/spaces/olive/demo/logs/build", dict(headers, **{"Last-Event-ID": last_id}))
    assert [e["event"] for e in _events(raw2)] == ["end"]
    # Resume from the middle: the rest of the text.
    _, _, raw3 = _sse("/api/spaces/olive/demo/logs/build", dict(headers, **{"Last-Event-ID": "5"}))
    full = logs.read(logs.build_key(rev.pk))[0].decode()
    assert "".join(e["data"] for e in _events(raw3) if e["event"] == "log").replace("\n", "") == \
        full[5:].replace("\n", "")


def test_event_stream_bad_last_event_id_is_400(api, olive, make_space):
    make_space(olive, "demo")
    headers = dict(auth(api, olive), Accept="text/event-stream", **{"Last-Event-ID": "abc"})
    resp = Client().get("/api/spaces/olive/demo/logs/build", headers=headers)
    assert_error(resp, 400)


def test_event_stream_of_expired_build_log_serves_the_stored_copy(api, olive, make_space, upload, repo, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    upload(api(olive), space, repo.gradio)
    rev = Revision.objects.get(space=space)
    logs.reset(logs.build_key(rev.pk))  # the live copy expired
    assert "FAKE build" in rev.build_log
    status, _, raw = _sse("/api/spaces/olive/demo/logs/build", dict(auth(api, olive), Accept="text/event-stream"))
    events = _events(raw)
    assert [e["event"] for e in events] == ["log", "end"]
    assert "FAKE build" in events[0]["data"]
    plain = Client().get("/api/spaces/olive/demo/logs/build", headers=auth(api, olive))
    assert b"FAKE build" in plain.content


# ------------------------------------------------------------------------------ restart / pause
def test_restart_and_pause_cycle(api, olive, make_space, upload, repo, run_on_commit):
    space = make_space(olive, "demo", sdk="static")
    upload(api(olive), space, repo.static)
    with run_on_commit():
        resp = api(olive).post("/api/spaces/olive/demo/pause")
    assert resp.status_code == 202 and resp.json()["status"] == "PAUSED"
    assert detail(api, olive)["status"] == "PAUSED"
    with run_on_commit():
        resp = api(olive).post("/api/spaces/olive/demo/restart")
    assert resp.status_code == 202, resp.content
    assert detail(api, olive)["status"] == "RUNNING"


def test_restart_without_revision_is_409(api, olive, make_space):
    make_space(olive, "demo")
    assert_error(api(olive).post("/api/spaces/olive/demo/restart"), 409, "no_revision")


def test_factory_restart_makes_a_new_revision(api, olive, make_space, upload, repo, run_on_commit, hub):
    hub.backend.fail_start = True
    space = make_space(olive, "demo", sdk="gradio")
    upload(api(olive), space, repo.gradio)  # ends in RUNTIME_ERROR: the app exits
    with run_on_commit():
        resp = api(olive).post("/api/spaces/olive/demo/restart?factory=1")
    assert resp.status_code == 202
    revs = list(Revision.objects.filter(space=space).order_by("number"))
    assert [r.number for r in revs] == [1, 2]
    assert revs[1].factory and revs[1].content_hash == revs[0].content_hash
    assert hub.backend.builds[-1].no_cache is True


def test_newer_upload_cancels_a_queued_build(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="gradio")
    first = upload(api(olive), space, repo.gradio, run=False)  # queued, the build not run
    assert first.json()["status"] == "queued"
    assert detail(api, olive)["status"] == "BUILDING"
    upload(api(olive), space, dict(repo.gradio, **{"app.py": "print(2)\n"}), run=False)
    statuses = dict(Revision.objects.filter(space=space).values_list("number", "status"))
    assert statuses == {1: "cancelled", 2: "queued"}
    assert "superseded" in Revision.objects.get(space=space, number=1).error


# ------------------------------------------------------------------------------ commits (issue 10)
def test_an_upload_is_a_commit_with_its_message(api, olive, make_space, upload, repo, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from spaces.repos import store

    space = make_space(olive, "demo", sdk="static")
    resp = upload(api(olive), space, repo.static, filename="site.tar.gz")
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["commit"] == store.head(space) and body["message"] == "Upload site.tar.gz"
    archive = SimpleUploadedFile("x.tar.gz", repo.targz(repo.static), content_type="application/gzip")
    resp = api(olive).post("/api/spaces/olive/demo/revisions", {"archive": archive, "message": "Second try"},
                           format="multipart")
    assert resp.status_code == 202 and resp.json()["message"] == "Second try"
    schema = client.get("/api/schema", {"format": "json"}).json()
    assert {"commit", "message"} <= set(schema["components"]["schemas"]["RevisionOut"]["properties"])
    op = schema["paths"]["/api/spaces/{owner}/{name}/revisions"]["post"]
    assert "RevisionUploadIn" in str(op["requestBody"])
    assert {"archive", "message"} <= set(schema["components"]["schemas"]["RevisionUploadIn"]["properties"])


def test_the_build_log_names_the_commit(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="gradio")
    resp = upload(api(olive), space, repo.gradio)
    assert resp.status_code == 202, resp.content
    text = api(olive).get("/api/spaces/olive/demo/logs/build").content.decode()
    assert text.startswith(f"==> commit {resp.json()['commit']}: Upload repo.tar.gz\n"), text[:300]
