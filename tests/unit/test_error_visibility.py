"""A space's `error` may quote its build output or run log; logs are for editors and the owner
(design.md §6: everyone else gets build status only). Below EDITOR, every surface shows one
generic sentence for the state instead: the API (detail and list), the space page, and the
proxy's status page.
"""
from __future__ import annotations

import pytest
from django.test import Client

from spaces.records.models import Space

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

LOG_LINE = "Traceback: KeyError: 'OPENAI_API_KEY=sk-live-123'"
CASES = [
    # status, error as the services write it, the generic sentence visitors get
    ("RUNTIME_ERROR", f"the app exited with code 1. Last log lines:\n{LOG_LINE}", "The app failed to start."),
    ("BUILD_ERROR", f"pip install failed:\n{LOG_LINE}", "The build failed."),
    ("CONFIG_ERROR", f"README.md `title`: {LOG_LINE}", "The README configuration is invalid."),
    ("RUNNING", f"revision 2 failed to start: {LOG_LINE}",
     "A newer revision failed; the previous one is still in use."),
]
ROLES_WITHOUT_LOGS = ["anonymous", "stranger", "viewer"]
ROLES_WITH_LOGS = ["editor", "owner"]


@pytest.fixture
def failed_space(people, make_space):
    def make(status: str, error: str, visibility: str = "public") -> Space:
        space = make_space(people["owner"], "demo", sdk="gradio", visibility=visibility,
                           editors=[people["editor"]], viewers=[people["viewer"]])
        Space.objects.filter(pk=space.pk).update(status=status, error=error)
        return space

    return make


def browser(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


# ------------------------------------------------------------------------------ API
@pytest.mark.parametrize("status,error,generic", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("who", ROLES_WITHOUT_LOGS)
def test_api_detail_shows_a_generic_error_below_editor(api, people, failed_space, status, error, generic, who):
    failed_space(status, error)
    body = api(people[who]).get("/api/spaces/olive/demo").json()
    assert body["status"] == status
    assert body["error"] == generic


@pytest.mark.parametrize("status,error,generic", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("who", ROLES_WITH_LOGS)
def test_api_detail_shows_the_full_error_to_editors_and_owner(api, people, failed_space, status, error,
                                                               generic, who):
    failed_space(status, error)
    assert api(people[who]).get("/api/spaces/olive/demo").json()["error"] == error


def test_api_detail_without_error_stays_empty(api, people, failed_space):
    failed_space("RUNNING", "")
    assert api(None).get("/api/spaces/olive/demo").json()["error"] == ""


@pytest.mark.parametrize("who,full", [("anonymous", False), ("stranger", False), ("viewer", False),
                                      ("editor", True), ("owner", True)])
def test_api_list_applies_each_callers_role(api, people, failed_space, make_space, who, full):
    failed_space("RUNTIME_ERROR", f"exit 1\n{LOG_LINE}")
    other = make_space(people["stranger"], "theirs", sdk="gradio")
    Space.objects.filter(pk=other.pk).update(status="BUILD_ERROR", error=f"pip\n{LOG_LINE}")
    results = {f"{r['owner']}/{r['name']}": r for r in api(people[who]).get("/api/spaces").json()["results"]}
    assert (LOG_LINE in results["olive/demo"]["error"]) is full
    # stan owns the other one: only he reads its log.
    assert (LOG_LINE in results["stan/theirs"]["error"]) is (who == "stranger")


@pytest.mark.parametrize("who", ROLES_WITH_LOGS)
def test_write_responses_show_the_full_error_to_those_who_may_write(api, people, failed_space, who):
    failed_space("RUNTIME_ERROR", f"exit 1\n{LOG_LINE}")
    resp = api(people[who]).patch("/api/spaces/olive/demo", {"title": "New"}, format="json")
    assert resp.status_code == 200 and LOG_LINE in resp.json()["error"]


# ------------------------------------------------------------------------------ HTML
@pytest.mark.parametrize("status,error,generic", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("who", ROLES_WITHOUT_LOGS)
def test_space_page_shows_a_generic_error_below_editor(people, failed_space, status, error, generic, who):
    failed_space(status, error)
    html = browser(people[who]).get("/spaces/olive/demo").content.decode()
    assert "sk-live-123" not in html
    assert generic in html


@pytest.mark.parametrize("who", ROLES_WITH_LOGS)
def test_space_page_shows_the_full_error_to_editors_and_owner(people, failed_space, who):
    failed_space("RUNTIME_ERROR", f"exit 1\n{LOG_LINE}")
    html = browser(people[who]).get("/spaces/olive/demo").content.decode()
    assert "sk-live-123" in html


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_proxy_status_page_never_shows_the_error(settings, people, failed_space, accept):
    space = failed_space("RUNTIME_ERROR", f"exit 1\n{LOG_LINE}")
    headers = {"X-Demohub-Proxy-Key": settings.PROXY_SHARED_SECRET, "Accept": accept,
               "X-Demohub-Host": f"{space.label}.{settings.SPACES_DOMAIN}", "X-Demohub-Uri": "/"}
    resp = Client().get("/internal/proxy/fallback", headers=headers)
    assert resp.status_code == 503
    assert b"sk-live-123" not in resp.content
