"""Variables and secrets of a space (design.md §4 last row, §6 "variables/secrets" editor+).

The API and the settings page for every persona, validation, secrets never shown back, the
run-time environment (and never the build), masking in the stored logs, and a change
restarting a running app while a paused one just keeps the values.
"""
from __future__ import annotations

import dataclasses
import io
import time

import pytest
from django.test import Client

from spaces.catalog.services import revision_create
from spaces.lifecycle import logs, variables
from spaces.lifecycle.models import SpaceVariable
from spaces.lifecycle.routes import container_name
from spaces.lifecycle.run_logs import run_log_copy
from spaces.lifecycle.services import space_pause, space_restart
from spaces.lifecycle.starts import run_env
from spaces.lifecycle.variables import stored_value
from spaces.records.errors import ServiceError
from spaces.records.models import Revision, Space

from .helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

SECRET = "s3cr3t-VALUE-4242"
PERSONAS = ["owner", "editor", "viewer", "stranger", "anonymous"]


# ------------------------------------------------------------------------------ helpers
def fresh(space) -> Space:
    return Space.objects.select_related("owner", "running_revision", "latest_revision").get(pk=space.pk)


def base(space) -> str:
    return f"/api/spaces/{space.owner.username}/{space.name}"


def gradio_files(repo, port: int) -> dict:
    return dict(repo.gradio, **{"README.md": repo.readme(sdk="gradio", app_port=port)})


@pytest.fixture
def running(olive, make_space, repo, app_server, run_on_commit, hub):
    """running(secrets={}, variables={}) -> a RUNNING gradio space of olive's, with those set first."""

    def make(name="demo", *, secrets=None, variables_=None):
        space = make_space(olive, name, sdk="gradio")
        for key, value in (variables_ or {}).items():
            variables.variable_set(space=space, key=key, value=value, secret=False, by=olive)
        for key, value in (secrets or {}).items():
            variables.variable_set(space=space, key=key, value=value, secret=True, by=olive)
        # Both slots answer, so the test holds whichever slot a restart uses.
        port = app_server(space.slot_address("a"))
        app_server(space.slot_address("b"), port)
        with run_on_commit():
            revision_create(space=space, archive=io.BytesIO(repo.targz(gradio_files(repo, port))),
                                     created_by=olive)
        space = fresh(space)
        assert space.status == "RUNNING", space.error
        return space

    return make


@pytest.fixture
def recorded_starts(hub, monkeypatch):
    """Every RunSpec the fake backend is asked to start from now on."""
    starts = []
    original = hub.backend.start

    def start(spec):
        starts.append(spec)
        original(spec)

    monkeypatch.setattr(hub.backend, "start", start)
    return starts


def serving_env(hub, space) -> dict:
    space = fresh(space)
    return hub.backend.containers[container_name(space, space.active_slot)]["spec"].env


# ------------------------------------------------------------------------------ role table
@pytest.fixture
def world(people, make_space, make_token):
    """olive/pub and olive/priv (static) with an editor and a viewer, a variable and a secret each."""
    spaces = {}
    for vis, name in (("public", "pub"), ("private", "priv")):
        space = make_space(people["owner"], name, sdk="static", visibility=vis, editors=[people["editor"]],
                           viewers=[people["viewer"]])
        variables.variable_set(space=space, key="GREETING", value="hello", secret=False, by=people["owner"])
        variables.variable_set(space=space, key="API_TOKEN", value=SECRET, secret=True, by=people["owner"])
        spaces[vis] = space
    tokens = {who: (make_token(u) if u is not None else None) for who, u in people.items()}
    return {"spaces": spaces, "tokens": tokens}


OPERATIONS = {  # name -> (method, path under the space, body, status on success)
    "list_variables": ("get", "/variables", None, 200),
    "get_variable": ("get", "/variables/GREETING", None, 200),
    "put_variable": ("put", "/variables/NEW_ONE", {"value": "x"}, 201),
    "replace_variable": ("put", "/variables/GREETING", {"value": "hi"}, 200),
    "delete_variable": ("delete", "/variables/GREETING", None, 204),
    "list_secrets": ("get", "/secrets", None, 200),
    "get_secret": ("get", "/secrets/API_TOKEN", None, 200),
    "put_secret": ("put", "/secrets/NEW_SECRET", {"value": "y" * 10}, 201),
    "delete_secret": ("delete", "/secrets/API_TOKEN", None, 204),
}


def expected(visibility: str, who: str, success: int) -> int:
    if who in ("owner", "editor"):
        return success
    if visibility == "private" and who in ("stranger", "anonymous"):
        return 404
    return 401 if who == "anonymous" else 403


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("who", PERSONAS)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_role_table(world, api, visibility, who, operation):
    space = world["spaces"][visibility]
    method, path, body, success = OPERATIONS[operation]
    client = api(token=world["tokens"][who])
    resp = getattr(client, method)(base(space) + path, body, format="json")
    want = expected(visibility, who, success)
    assert resp.status_code == want, (operation, visibility, who, resp.status_code, resp.content[:300])
    before = {("GREETING", "hello", False), ("API_TOKEN", SECRET, True)}
    now = {(v.key, stored_value(v), v.secret) for v in SpaceVariable.objects.filter(space=space)}
    if want >= 400:
        assert_error(resp, want)
        assert now == before  # refused: nothing changed
    assert SECRET.encode() not in resp.content


def test_hidden_space_answers_like_a_missing_one(world, api):
    stranger = api(token=world["tokens"]["stranger"])
    hidden = stranger.get("/api/spaces/olive/priv/secrets")
    missing = stranger.get("/api/spaces/olive/nothing/secrets")
    assert hidden.status_code == missing.status_code == 404 and hidden.content == missing.content


def test_read_token_may_read_but_not_write(world, people, api):
    reader = api(people["owner"], scope="read")
    assert reader.get("/api/spaces/olive/pub/variables").status_code == 200
    assert_error(reader.put("/api/spaces/olive/pub/variables/X", {"value": "1"}, format="json"), 403)
    assert_error(reader.delete("/api/spaces/olive/pub/secrets/API_TOKEN"), 403)


# ------------------------------------------------------------------------------ the API
def test_variables_crud(olive, make_space, api):
    make_space(olive, "demo")
    client = api(olive)
    url = "/api/spaces/olive/demo/variables"
    created = client.put(f"{url}/MODEL_NAME", {"value": "gpt2"}, format="json")
    assert created.status_code == 201
    assert set(created.json()) == {"key", "value", "updated_at"} and created.json()["value"] == "gpt2"
    assert client.put(f"{url}/MODEL_NAME", {"value": "  spaced \n"}, format="json").status_code == 200
    assert client.put(f"{url}/MODEL_NAME", {"value": "  spaced \n"}, format="json").status_code == 200
    assert client.put(f"{url}/EMPTY", {"value": ""}, format="json").status_code == 201
    listed = client.get(url).json()
    assert set(listed) == {"count", "next", "previous", "results"}
    assert [(v["key"], v["value"]) for v in listed["results"]] == [("EMPTY", ""), ("MODEL_NAME", "  spaced \n")]
    assert client.get(f"{url}/MODEL_NAME").json()["value"] == "  spaced \n"
    assert client.delete(f"{url}/MODEL_NAME").status_code == 204
    assert_error(client.get(f"{url}/MODEL_NAME"), 404, "not_found")
    assert_error(client.delete(f"{url}/MODEL_NAME"), 404, "not_found")
    assert_error(client.post(f"{url}/X", {"value": "1"}, format="json"), 405)


def test_secrets_are_write_only(olive, make_space, api):
    make_space(olive, "demo", visibility="private")
    client = api(olive)
    url = "/api/spaces/olive/demo/secrets"
    created = client.put(f"{url}/HF_TOKEN", {"value": SECRET}, format="json")
    assert created.status_code == 201 and set(created.json()) == {"key", "updated_at"}
    replaced = client.put(f"{url}/HF_TOKEN", {"value": SECRET + "-2"}, format="json")
    assert replaced.status_code == 200 and set(replaced.json()) == {"key", "updated_at"}
    assert stored_value(SpaceVariable.objects.get(key="HF_TOKEN")) == SECRET + "-2"
    listed = client.get(url).json()
    assert listed["count"] == 1 and set(listed["results"][0]) == {"key", "updated_at"}
    assert set(client.get(f"{url}/HF_TOKEN").json()) == {"key", "updated_at"}
    # A secret is not a variable: the variables endpoints neither show nor delete it.
    assert client.get("/api/spaces/olive/demo/variables").json()["count"] == 0
    assert_error(client.get("/api/spaces/olive/demo/variables/HF_TOKEN"), 404)
    assert_error(client.delete("/api/spaces/olive/demo/variables/HF_TOKEN"), 404)
    # Nothing the API or the pages answer holds the value.
    html = Client()
    html.force_login(olive)
    answers = [client.get(url), client.get(f"{url}/HF_TOKEN"), client.get("/api/spaces/olive/demo"),
               client.get("/api/spaces/olive/demo/variables"), client.get("/api/spaces?author=olive"),
               html.get("/spaces/olive/demo/settings"), html.get("/spaces/olive/demo")]
    for resp in answers:
        assert resp.status_code == 200
        assert SECRET.encode() not in resp.content
    assert client.delete(f"{url}/HF_TOKEN").status_code == 204
    assert not SpaceVariable.objects.filter(key="HF_TOKEN").exists()


def test_a_key_is_a_variable_or_a_secret_not_both(olive, make_space, api):
    make_space(olive, "demo")
    client = api(olive)
    client.put("/api/spaces/olive/demo/secrets/SHARED", {"value": SECRET}, format="json")
    client.put("/api/spaces/olive/demo/variables/PLAIN", {"value": "v"}, format="json")
    assert_error(client.put("/api/spaces/olive/demo/variables/SHARED", {"value": "v"}, format="json"),
                 409, "key_conflict")
    assert_error(client.put("/api/spaces/olive/demo/secrets/PLAIN", {"value": SECRET}, format="json"),
                 409, "key_conflict")
    assert stored_value(SpaceVariable.objects.get(key="SHARED")) == SECRET
    assert SpaceVariable.objects.get(key="PLAIN").secret is False


@pytest.mark.parametrize("key", ["1ABC", "BAD-KEY", "with space", "é", "A" * 129, "a.b"])
def test_invalid_key_is_400_naming_it(olive, make_space, api, key):
    make_space(olive, "demo")
    body = assert_error(api(olive).put(f"/api/spaces/olive/demo/variables/{key}", {"value": "1"}, format="json"),
                        400, "invalid_key")
    assert key[:20] in body["detail"]
    assert not SpaceVariable.objects.exists()


@pytest.mark.parametrize("key", ["PATH", "HOME", "path", "PYTHONPATH", "PYTHONUNBUFFERED", "GRADIO_SERVER_NAME",
                                 "GRADIO_SERVER_PORT", "PORT", "SPACE_ID", "SPACE_ANYTHING", "DEMOHUB_X",
                                 "STREAMLIT_SERVER_ENABLE_CORS", "HF_HOME"])
def test_reserved_key_is_refused(olive, make_space, api, key):
    make_space(olive, "demo")
    for kind in ("variables", "secrets"):
        body = assert_error(api(olive).put(f"/api/spaces/olive/demo/{kind}/{key}", {"value": "1"}, format="json"),
                            400, "reserved_key")
        assert key in body["detail"]
    assert not SpaceVariable.objects.exists()


def test_everything_the_runner_sets_is_reserved(olive, make_space):
    space = make_space(olive, "demo", sdk="gradio")
    runner_env = run_env(fresh(space), Revision(metadata={"app_port": 7860}))
    assert runner_env and all(variables.is_reserved(key) for key in runner_env), \
        [key for key in runner_env if not variables.is_reserved(key)]
    # Ordinary names a demo uses are not.
    assert not any(variables.is_reserved(k) for k in ("HF_TOKEN", "OPENAI_API_KEY", "GRADIO_ALLOWED_PATHS"))


def test_value_limits(olive, make_space, api):
    make_space(olive, "demo")
    client = api(olive)
    url = "/api/spaces/olive/demo/variables"
    assert client.put(f"{url}/BIG", {"value": "x" * 65536}, format="json").status_code == 201
    assert_error(client.put(f"{url}/BIG", {"value": "x" * 65537}, format="json"), 413, "value_too_large")
    # The limit is in bytes: 32768 two-byte characters fit, one more does not.
    assert client.put(f"{url}/WIDE", {"value": "é" * 32768}, format="json").status_code == 201
    assert_error(client.put(f"{url}/WIDE", {"value": "é" * 32769}, format="json"), 413, "value_too_large")
    assert_error(client.put(f"{url}/NUL", {"value": "a\x00b"}, format="json"), 400)
    assert_error(client.put(f"{url}/NONE", {}, format="json"), 400)
    assert_error(client.put(f"{url}/NONE", {"value": None}, format="json"), 400)
    assert stored_value(SpaceVariable.objects.get(key="BIG")) == "x" * 65536
    with pytest.raises(ServiceError) as info:
        variables.variable_set(space=Space.objects.get(name="demo"), key="NUL", value="a\x00b", secret=True)
    assert info.value.code == "invalid_value"


def test_at_most_100_keys_per_space(olive, make_space, api):
    space = make_space(olive, "demo")
    SpaceVariable.objects.bulk_create([SpaceVariable(space=space, key=f"K{i}", value="v", secret=i % 2 == 0)
                                       for i in range(variables.MAX_KEYS_PER_SPACE)])
    client = api(olive)
    assert_error(client.put("/api/spaces/olive/demo/variables/ONE_MORE", {"value": "1"}, format="json"),
                 409, "too_many_keys")
    assert_error(client.put("/api/spaces/olive/demo/secrets/ONE_MORE", {"value": "1"}, format="json"),
                 409, "too_many_keys")
    # Changing one that exists still works at the cap; another space has its own count.
    assert client.put("/api/spaces/olive/demo/variables/K1", {"value": "2"}, format="json").status_code == 200
    make_space(olive, "other")
    assert client.put("/api/spaces/olive/other/variables/ONE_MORE", {"value": "1"}, format="json").status_code == 201


# ------------------------------------------------------------------------------ run time, not build time
def test_run_env_has_them_and_the_build_never_does(running, hub):
    space = running(secrets={"HF_TOKEN": SECRET}, variables_={"MODEL_NAME": "tiny-model"})
    env = serving_env(hub, space)
    assert env["HF_TOKEN"] == SECRET and env["MODEL_NAME"] == "tiny-model"
    assert env["SPACE_ID"] == "olive/demo" and env["HOME"] == "/tmp/home"
    # The build was recorded by the fake backend: no field of its spec holds either value.
    assert len(hub.backend.builds) == 1
    for spec in hub.backend.builds:
        flat = repr(dataclasses.asdict(spec))
        assert SECRET not in flat and "tiny-model" not in flat and "HF_TOKEN" not in flat
    assert SECRET not in Revision.objects.get(space=space).build_log


def test_runner_names_win_over_a_stored_row(olive, make_space):
    space = make_space(olive, "demo", sdk="gradio")
    # Written past validation (the admin, an older rule): the runner's values still win.
    SpaceVariable.objects.create(space=space, key="HOME", value="/root")
    SpaceVariable.objects.create(space=space, key="PYTHONPATH", value="/evil")
    SpaceVariable.objects.create(space=space, key="GRADIO_SERVER_NAME", value="127.0.0.1")
    env = run_env(fresh(space), Revision(metadata={}))
    assert env["HOME"] == "/tmp/home" and env["GRADIO_SERVER_NAME"] == "0.0.0.0" and "PYTHONPATH" not in env


# ------------------------------------------------------------------------------ masking
def test_mask_secrets():
    mask = variables.mask_secrets
    assert mask(f"token={SECRET} and again {SECRET}\n", [SECRET]) == "token=*** and again ***\n"
    assert mask("pin 123 here", ["123"]) == "pin 123 here"  # below MASK_MIN_LENGTH: left alone
    assert mask("pin 1234 here", ["1234"]) == "pin *** here"
    assert mask("a.b*c+ and aXb*c+", ["a.b*c+"]) == "*** and aXb*c+"  # literal, not a pattern
    assert mask("abcdefghij", ["abcdef", "abcdefghij"]) == "***"  # the longer one whole
    pem = "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----"
    assert mask("line: AAAABBBBCCCC\n", [pem]) == "line: ***\n"  # each line of a multi-line secret
    assert mask("nothing here", []) == "nothing here"


def test_run_log_masks_secrets(running, hub, olive, make_token):
    space = running(secrets={"HF_TOKEN": SECRET, "SHORT": "abc"})
    name = container_name(space, space.active_slot)
    hub.backend.containers[name]["logs"].append((time.time() + 1, f"using token {SECRET} and abc\n"))
    run_log_copy(space_id=space.pk)
    stored, _ = logs.read(logs.run_key(space.pk))
    assert SECRET.encode() not in stored and b"using token *** and abc" in stored
    resp = Client(headers={"Authorization": f"Bearer {make_token(olive)}"}).get("/api/spaces/olive/demo/logs/run")
    assert resp.status_code == 200 and SECRET.encode() not in resp.content and b"***" in resp.content


def test_build_log_masks_secrets(olive, make_space, repo, hub, monkeypatch, run_on_commit, make_token):
    space = make_space(olive, "demo", sdk="gradio")
    variables.variable_set(space=space, key="HF_TOKEN", value=SECRET, secret=True, by=olive)
    original = hub.backend.build

    def build(spec, *, log, should_continue):
        log(f"Step 2/2 : RUN echo {SECRET}\n")  # a repo that holds and prints the value itself
        return original(spec, log=log, should_continue=should_continue)

    monkeypatch.setattr(hub.backend, "build", build)
    with run_on_commit():
        rev = revision_create(space=space, archive=io.BytesIO(repo.targz(repo.gradio)), created_by=olive)
    rev.refresh_from_db()
    assert "RUN echo ***" in rev.build_log and SECRET not in rev.build_log
    served = Client(headers={"Authorization": f"Bearer {make_token(olive)}"}).get("/api/spaces/olive/demo/logs/build")
    assert served.status_code == 200 and SECRET.encode() not in served.content and b"echo ***" in served.content


# ------------------------------------------------------------------------------ changes take effect
def test_change_on_a_running_space_restarts_it_with_the_new_env(running, recorded_starts, api, olive, hub,
                                                               run_on_commit):
    space = running(variables_={"MODEL_NAME": "v1"})
    assert [spec.env["MODEL_NAME"] for spec in recorded_starts] == ["v1"]  # its first start
    recorded_starts.clear()
    client = api(olive)
    with run_on_commit():
        resp = client.put(f"{base(space)}/variables/MODEL_NAME", {"value": "v2"}, format="json")
    assert resp.status_code == 200
    assert len(recorded_starts) == 1 and recorded_starts[0].env["MODEL_NAME"] == "v2"
    assert fresh(space).status == "RUNNING" and serving_env(hub, space)["MODEL_NAME"] == "v2"

    with run_on_commit():
        assert client.put(f"{base(space)}/secrets/HF_TOKEN", {"value": SECRET}, format="json").status_code == 201
    assert len(recorded_starts) == 2 and recorded_starts[1].env["HF_TOKEN"] == SECRET

    with run_on_commit():
        assert client.delete(f"{base(space)}/variables/MODEL_NAME").status_code == 204
    assert len(recorded_starts) == 3 and "MODEL_NAME" not in recorded_starts[2].env
    assert fresh(space).status == "RUNNING" and "MODEL_NAME" not in serving_env(hub, space)

    # Saving the same value again changes nothing: no restart.
    with run_on_commit():
        assert client.put(f"{base(space)}/secrets/HF_TOKEN", {"value": SECRET}, format="json").status_code == 200
    assert len(recorded_starts) == 3


def test_adding_the_missing_secret_restarts_a_crashed_app(running, recorded_starts, olive, hub, run_on_commit):
    space = running()
    # The app exited (say it needs HF_TOKEN): RUNTIME_ERROR, no container left.
    hub.backend.containers.clear()
    Space.objects.filter(pk=space.pk).update(status="RUNTIME_ERROR", error="the app exited with code 1")
    recorded_starts.clear()
    with run_on_commit():
        change = variables.variable_set(space=fresh(space), key="HF_TOKEN", value=SECRET, secret=True, by=olive)
    assert change.restarting
    assert len(recorded_starts) == 1 and recorded_starts[0].env["HF_TOKEN"] == SECRET
    assert fresh(space).status == "RUNNING" and fresh(space).error == ""


def test_change_on_a_paused_space_is_only_stored(running, recorded_starts, olive, hub, run_on_commit):
    space = running()
    with run_on_commit():
        space_pause(space=space)
    recorded_starts.clear()
    with run_on_commit():
        change = variables.variable_set(space=fresh(space), key="MODEL_NAME", value="later", secret=False, by=olive)
    assert change.created and not change.restarting
    assert recorded_starts == [] and fresh(space).status == "PAUSED" and hub.backend.containers == {}
    with run_on_commit():
        assert variables.variable_delete(space=fresh(space), key="MODEL_NAME", secret=False, by=olive) is False
        variables.variable_set(space=fresh(space), key="MODEL_NAME", value="resumed", secret=False, by=olive)
    assert recorded_starts == []
    # Resuming starts the app with the stored values.
    with run_on_commit():
        space_restart(space=fresh(space), by=olive)
    assert len(recorded_starts) == 1 and recorded_starts[0].env["MODEL_NAME"] == "resumed"


def test_change_on_a_space_without_a_container_is_only_stored(olive, make_space, recorded_starts, run_on_commit):
    never_built = make_space(olive, "empty", sdk="gradio")
    static = make_space(olive, "site", sdk="static")
    Space.objects.filter(pk=static.pk).update(status="RUNNING")
    for space in (never_built, static):
        with run_on_commit():
            change = variables.variable_set(space=space, key="X", value="1", secret=False, by=olive)
        assert change.created and not change.restarting
        assert fresh(space).status == ("NO_APP_FILE" if space is never_built else "RUNNING")
    assert recorded_starts == []


# ------------------------------------------------------------------------------ the settings page
@pytest.fixture
def browser(world, people):
    def as_(who):
        client = Client()
        if people[who] is not None:
            client.force_login(people[who])
        return client

    return as_


@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("who", PERSONAS)
def test_settings_section_follows_the_role_table(world, browser, visibility, who):
    space = world["spaces"][visibility]
    page = f"/spaces/olive/{space.name}/settings"
    client = browser(who)
    want = expected(visibility, who, 200)
    want = 403 if want == 401 else want  # the pages answer an anonymous caller like a stranger
    resp = client.get(page)
    assert resp.status_code == want
    if want == 200:
        html = resp.content.decode()
        assert "Variables and secrets" in html and "GREETING" in html and "hello" in html and "API_TOKEN" in html
        assert SECRET not in html
    set_resp = client.post(f"{page}/variables", {"kind": "variable", "key": "FROM_FORM", "value": "1"})
    delete_resp = client.post(f"{page}/variables/delete", {"kind": "secret", "key": "API_TOKEN"})
    if want == 200:
        assert set_resp.status_code == delete_resp.status_code == 302
        assert set(SpaceVariable.objects.filter(space=space).values_list("key", flat=True)) == {"GREETING", "FROM_FORM"}
    else:
        assert set_resp.status_code == delete_resp.status_code == want
        assert set(SpaceVariable.objects.filter(space=space).values_list("key", flat=True)) == {"GREETING", "API_TOKEN"}


def test_settings_forms(world, browser):
    client = browser("editor")
    page = "/spaces/olive/priv/settings"
    resp = client.post(f"{page}/variables", {"kind": "secret", "key": "DB_PASSWORD", "value": "hunter2-long"},
                       follow=True)
    html = resp.content.decode()
    assert "Secret DB_PASSWORD added." in html and "hunter2-long" not in html
    assert SpaceVariable.objects.get(key="DB_PASSWORD", space=world["spaces"]["private"]).secret
    resp = client.post(f"{page}/variables", {"kind": "variable", "key": "GREETING", "value": "bonjour"}, follow=True)
    assert "Variable GREETING updated." in resp.content.decode() and "bonjour" in resp.content.decode()
    for data, message in (({"kind": "variable", "key": "PATH", "value": "/x"}, "set by Demohub itself"),
                          ({"kind": "secret", "key": "GREETING", "value": SECRET}, "already a variable"),
                          ({"kind": "variable", "key": "9LIVES", "value": "1"}, "not a valid name")):
        html = client.post(f"{page}/variables", data, follow=True).content.decode()
        assert message in html and SECRET not in html
    resp = client.post(f"{page}/variables/delete", {"kind": "secret", "key": "DB_PASSWORD"}, follow=True)
    assert "Secret DB_PASSWORD deleted." in resp.content.decode()
    assert not SpaceVariable.objects.filter(key="DB_PASSWORD").exists()
    assert client.get(f"{page}/variables").status_code == 405


# ------------------------------------------------------------------ encryption at rest (issue 15)
def test_a_secret_is_stored_encrypted_and_the_app_gets_it_in_clear(olive, make_space, api):
    space = make_space(olive, "demo")
    assert api(olive).put("/api/spaces/olive/demo/secrets/HF_TOKEN", {"value": SECRET},
                          format="json").status_code == 201
    raw = SpaceVariable.objects.get(key="HF_TOKEN").value
    assert raw.startswith("fernet:") and SECRET not in raw
    assert variables.space_env_variables(space)["HF_TOKEN"] == SECRET
    assert variables.mask_secrets(f"token={SECRET}", [SECRET]) == "token=***"
    assert variables.secret_masker(space.pk)(f"token={SECRET}") == "token=***"
    # The same value again changes nothing (compared in clear, not as two different ciphertexts).
    change = variables.variable_set(space=space, key="HF_TOKEN", value=SECRET, secret=True)
    assert change.changed is False


def test_secrets_are_rotated_to_a_new_key(olive, make_space, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from spaces.lifecycle import crypto

    space = make_space(olive, "demo")
    variables.variable_set(space=space, key="HF_TOKEN", value=SECRET, secret=True)
    SpaceVariable.objects.create(space=space, key="OLD_CLEAR", value="written-before-encryption", secret=True)
    old = list(settings.SECRETS_ENCRYPTION_KEYS)
    new = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [new, *old]
    call_command("secrets_reencrypt")
    settings.SECRETS_ENCRYPTION_KEYS = [new]  # the old key dropped: everything still reads
    env = variables.space_env_variables(space)
    assert env["HF_TOKEN"] == SECRET and env["OLD_CLEAR"] == "written-before-encryption"
    assert all(crypto.is_encrypted(v) for v in SpaceVariable.objects.values_list("value", flat=True))
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # a wrong key: a clear error
    with pytest.raises(crypto.SecretUnreadable):
        variables.space_env_variables(space)


def test_the_migration_encrypts_secrets_written_in_clear_and_reverses(olive, make_space):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("spaces.migrations.0005_encrypt_secrets")
    space = make_space(olive, "demo")
    SpaceVariable.objects.create(space=space, key="OLD", value="clear-value-1234", secret=True)
    SpaceVariable.objects.create(space=space, key="PLAIN", value="visible", secret=False)
    migration.encrypt_clear_secrets(apps, None)
    migration.encrypt_clear_secrets(apps, None)  # twice: an encrypted value is left alone
    assert SpaceVariable.objects.get(key="OLD").value.startswith("fernet:")
    assert SpaceVariable.objects.get(key="PLAIN").value == "visible"
    assert variables.space_env_variables(space) == {"OLD": "clear-value-1234", "PLAIN": "visible"}
    migration.decrypt_secrets(apps, None)
    assert SpaceVariable.objects.get(key="OLD").value == "clear-value-1234"
