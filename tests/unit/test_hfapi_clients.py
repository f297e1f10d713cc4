"""The real Hugging Face clients against /hf (issue 11): account, repositories, runtime, settings.

huggingface_hub 2.4.0 and 1.33.0, each in a subprocess of its own environment
(tests/hf_clients.py), against pytest-django's live server on the fake runner backend: the
API's semantics, fast. The files, commits and downloads are in test_hfapi_repo.py; the real
stack (builds, serving, gradio_client) in tests/e2e/test_hf_clients.py.
"""
from __future__ import annotations

import pytest

from spaces.records.models import Space
from tests.hf_clients import run_cli, run_hf

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hub")]


@pytest.fixture
def hf(live_server, tmp_path):
    """hf(code, token=None, version="2.4.0") -> RESULT of the client script."""
    def run(code: str, token: str | None = None, version: str = "2.4.0") -> dict:
        return run_hf(version, code, endpoint=f"{live_server.url}/hf", hf_home=tmp_path / "hf-home", token=token)

    return run


def test_whoami_create_settings_runtime_and_delete_with_huggingface_hub_2(hf, people, make_token):
    token = make_token(people["owner"])
    got = hf('''
        RESULT["whoami"] = api.whoami()["name"]
        url = api.create_repo("olive/shouter", repo_type="space", space_sdk="gradio", private=True)
        RESULT["url"] = [str(url), url.repo_id]
        RESULT["again"] = str(api.create_repo("olive/shouter", repo_type="space", space_sdk="gradio", exist_ok=True))
        RESULT["twice"] = outcome(lambda: api.create_repo("olive/shouter", repo_type="space", space_sdk="gradio"))
        info = api.space_info("olive/shouter")
        RESULT["info"] = [info.id, info.private, info.sdk, info.host, info.runtime.stage]
        rt = api.get_space_runtime("olive/shouter")
        RESULT["runtime"] = [rt.stage, rt.hardware, rt.requested_hardware, rt.sleep_time]
        RESULT["sleep"] = api.set_space_sleep_time("olive/shouter", 7200).sleep_time
        api.add_space_secret("olive/shouter", "API_KEY", "s3cret")
        api.add_space_variable("olive/shouter", "COLOR", "red")
        RESULT["variables"] = {k: v.value for k, v in api.get_space_variables("olive/shouter").items()}
        RESULT["secrets"] = sorted(api.get_space_secrets("olive/shouter")) if hasattr(api, "get_space_secrets") else ["API_KEY"]
        api.delete_space_variable("olive/shouter", "COLOR")
        api.delete_space_secret("olive/shouter", "API_KEY")
        RESULT["after_delete"] = list(api.get_space_variables("olive/shouter"))
        RESULT["hardware"] = outcome(lambda: api.request_space_hardware("olive/shouter", "t4-small"))
        RESULT["tier"] = api.request_space_hardware("olive/shouter", "cpu-upgrade").requested_hardware
        RESULT["protected"] = outcome(lambda: api.create_repo("olive/p", repo_type="space", space_sdk="gradio",
                                                              visibility="protected"))
        RESULT["model"] = outcome(lambda: api.create_repo("olive/m"))
        RESULT["restart"] = outcome(lambda: api.restart_space("olive/shouter"))
        RESULT["pause"] = outcome(lambda: api.pause_space("olive/shouter").stage)
        api.update_repo_settings("olive/shouter", repo_type="space", private=False)
        RESULT["public"] = api.space_info("olive/shouter").private
        RESULT["listed"] = [s.id for s in api.list_spaces(author="olive", sort="likes")]
        api.delete_repo("olive/shouter", repo_type="space")
        RESULT["gone"] = outcome(lambda: api.space_info("olive/shouter"))
    ''', token=token)
    assert got["whoami"] == "olive"
    assert got["url"][0].endswith("/hf/spaces/olive/shouter") and got["url"][1] == "olive/shouter"
    assert got["again"] == got["url"][0]
    assert got["twice"][:2] == ["HfHubHTTPError", 409]
    assert got["info"][:3] == ["olive/shouter", True, "gradio"]
    assert got["info"][3].startswith("http://") and got["info"][4] == "NO_APP_FILE"
    assert got["runtime"] == ["NO_APP_FILE", "cpu-basic", "cpu-basic", 3600]
    assert got["sleep"] == 7200
    assert got["variables"] == {"COLOR": "red"} and got["secrets"] == ["API_KEY"] and got["after_delete"] == []
    assert got["hardware"][:2] == ["BadRequestError", 400]
    assert "'t4-small' is not a hardware tier of this hub" in got["hardware"][2] and "cpu-upgrade" in got["hardware"][2]
    assert got["tier"] == "cpu-upgrade"  # the owner's choice of tier (issue 12), applied at the next start
    assert got["protected"][:2] == ["BadRequestError", 400] and "visibility" in got["protected"][2]
    assert got["model"][1] == 400 and 'repo_type="space"' in got["model"][2]
    assert got["restart"][1] == 409 and "no revision" in got["restart"][2]
    assert got["pause"] == ["ok", "PAUSED"]
    assert got["public"] is False
    assert got["listed"] == ["olive/shouter"]
    assert got["gone"][0] == "RepositoryNotFoundError"
    assert not Space.objects.filter(owner__username="olive", name="shouter").exclude(status="DELETING").exists()


def test_the_same_calls_with_huggingface_hub_1(hf, people, make_token):
    token = make_token(people["owner"])
    got = hf('''
        RESULT["whoami"] = api.whoami()["name"]
        api.create_repo("shouter", repo_type="space", space_sdk="static", space_sleep_time=600,
                        space_variables=[{"key": "COLOR", "value": "blue"}])
        RESULT["info"] = [api.space_info("olive/shouter").id, api.repo_info("olive/shouter", repo_type="space").private]
        RESULT["runtime"] = api.get_space_runtime("olive/shouter").sleep_time
        RESULT["variables"] = {k: v.value for k, v in api.get_space_variables("olive/shouter").items()}
        RESULT["visibility"] = outcome(lambda: api.update_repo_settings("olive/shouter", repo_type="space", private=True))
        RESULT["listed"] = [s.id for s in hh.list_spaces(search="shouter")]
        api.delete_repo("olive/shouter", repo_type="space")
    ''', token=token, version="1.33.0")
    assert got["whoami"] == "olive"
    assert got["info"] == ["olive/shouter", False]
    assert got["runtime"] == 600 and got["variables"] == {"COLOR": "blue"}
    assert got["visibility"][0] == "ok" and got["listed"] == ["olive/shouter"]   # private now, seen with HF_TOKEN


PERSONA_CALLS = '''
    for vis in ("public", "private"):
        sid = f"olive/{vis}-demo"
        RESULT[vis] = {
            "info": outcome(lambda: api.space_info(sid).id),
            "runtime": outcome(lambda: api.get_space_runtime(sid).stage),
            "variables": outcome(lambda: list(api.get_space_variables(sid))),
            "restart": outcome(lambda: api.restart_space(sid).stage),
            "settings": outcome(lambda: api.update_repo_settings(sid, repo_type="space", private=vis == "private")),
            "listed": sid in [s.id for s in api.list_spaces(author="olive")],
        }
'''
# persona -> visibility -> call -> what the client raises (or "ok").
NOT_FOUND = "RepositoryNotFoundError"
EXPECTED = {
    "owner": {"public": dict(info="ok", runtime="ok", variables="ok", restart="ok", settings="ok", listed=True),
              "private": dict(info="ok", runtime="ok", variables="ok", restart="ok", settings="ok", listed=True)},
    "editor": {"public": dict(info="ok", runtime="ok", variables="ok", restart="ok", settings=403, listed=True),
               "private": dict(info="ok", runtime="ok", variables="ok", restart="ok", settings=403, listed=True)},
    "viewer": {"public": dict(info="ok", runtime="ok", variables=403, restart=403, settings=403, listed=True),
               "private": dict(info="ok", runtime="ok", variables=403, restart=403, settings=403, listed=True)},
    "stranger": {"public": dict(info="ok", runtime="ok", variables=403, restart=403, settings=403, listed=True),
                 "private": dict(info=NOT_FOUND, runtime=NOT_FOUND, variables=NOT_FOUND, restart=NOT_FOUND,
                                 settings=NOT_FOUND, listed=False)},
    "anonymous": {"public": dict(info="ok", runtime="ok", variables=401, restart=401, settings=401, listed=True),
                  "private": dict(info=NOT_FOUND, runtime=NOT_FOUND, variables=NOT_FOUND, restart=NOT_FOUND,
                                  settings=NOT_FOUND, listed=False)},
}


@pytest.mark.parametrize("who", list(EXPECTED))
def test_owner_collaborators_stranger_and_anonymous_get_what_the_one_access_check_allows(
        hf, people, make_space, make_token, upload, api, who):
    for vis in ("public", "private"):
        space = make_space(people["owner"], f"{vis}-demo", visibility=vis, editors=[people["editor"]],
                           viewers=[people["viewer"]])
        assert upload(api(people["owner"]), space, {"README.md": "---\nsdk: static\n---\n",
                                                    "index.html": "<h1>hi</h1>"}).status_code == 202
    token = make_token(people[who]) if people[who] is not None else None
    got = hf(PERSONA_CALLS, token=token)
    for vis, calls in EXPECTED[who].items():
        for call, want in calls.items():
            seen = got[vis][call]
            if call == "listed":
                assert seen is want, (who, vis, call, seen)
            elif want == "ok":
                assert seen[0] == "ok", (who, vis, call, seen)
            elif want == NOT_FOUND:
                assert seen[0] == NOT_FOUND, (who, vis, call, seen)
            else:
                assert seen[1] == want, (who, vis, call, seen)


def test_a_read_token_reads_and_may_not_write(hf, people, make_space, make_token):
    make_space(people["owner"], "demo")
    got = hf('''
        RESULT["info"] = outcome(lambda: api.space_info("olive/demo").id)
        RESULT["restart"] = outcome(lambda: api.restart_space("olive/demo"))
        RESULT["whoami"] = api.whoami()["auth"]["accessToken"]["role"]
    ''', token=make_token(people["owner"], scope="read"))
    assert got["info"] == ["ok", "olive/demo"]
    assert got["restart"][1] == 403 and "read-only" in got["restart"][2]
    assert got["whoami"] == "read"


def test_a_bad_token_is_reported_as_such(hf):
    got = hf('''
        RESULT["whoami"] = outcome(lambda: api.whoami())
        RESULT["info"] = outcome(lambda: api.space_info("olive/demo"))
    ''', token="dh_not-a-token")
    assert got["whoami"][1] == 401 and "Invalid user token" in got["whoami"][2]
    assert got["info"][1] == 401 and got["info"][0] != "RepositoryNotFoundError"


def test_list_spaces_pages_by_link_and_sorts_by_likes(hf, people, make_space, live_server):
    from spaces.community import services as community

    spaces = [make_space(people["owner"], f"demo-{i}") for i in range(5)]
    community.like_set(space=spaces[3], user=people["editor"], liked=True) if hasattr(community, "like_set") else None
    got = hf('''
        import huggingface_hub.utils._pagination as pg
        RESULT["all"] = [s.id for s in api.list_spaces(author="olive", sort="likes")]
        RESULT["limited"] = [s.id for s in api.list_spaces(author="olive", limit=2)]
        r = hh.utils.get_session().get(os.environ["HF_ENDPOINT"] + "/api/spaces", params={"author": "olive", "limit": 2})
        RESULT["link"] = r.headers.get("link")
        RESULT["bad_sort"] = outcome(lambda: list(api.list_spaces(sort="downloads")))
    ''')
    assert sorted(got["all"]) == sorted(f"olive/demo-{i}" for i in range(5))
    assert len(got["limited"]) == 2
    assert got["link"].startswith(f"<{live_server.url}/hf/api/spaces?") and 'rel="next"' in got["link"]
    assert got["bad_sort"][1] == 400 and "sort" in got["bad_sort"][2]


def test_the_hf_command_line_names_the_user_and_creates_a_space(live_server, tmp_path, people, make_token):
    token = make_token(people["owner"])
    common = dict(endpoint=f"{live_server.url}/hf", hf_home=tmp_path / "hf-home", token=token)
    who = run_cli(["auth", "whoami"], **common)
    assert who.returncode == 0 and "olive" in who.stdout, (who.stdout, who.stderr)
    made = run_cli(["repos", "create", "olive/cli-demo", "--type", "space", "--space-sdk", "gradio"], **common)
    assert made.returncode == 0, (made.stdout, made.stderr)
    assert Space.objects.filter(owner__username="olive", name="cli-demo", sdk="gradio").exists()
