"""The Korean interface (README "Languages"): the catalog is complete, every main page renders in
Korean for a browser that asks for it and after the language selector switched it, and no
English is left on those pages; API errors stay English.

The language comes from the django_language cookie (set by /i18n/setlang/, the selector in the
page footer), else Accept-Language, else LANGUAGE_CODE; URLs carry no language prefix.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from spaces.access import services as access
from spaces.catalog.services import revision_create
from spaces.community import services as comments
from spaces.lifecycle import variables
from tests.i18n_names import NAMES

from .conftest import PASSWORD, next_ip, readme, targz_bytes

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "ko" / "LC_MESSAGES" / "django.po"
KO = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9,en;q=0.5"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


# ---------------------------------------------------------------------------------- the catalog
def _gettext_tool(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def test_the_korean_catalog_is_complete_after_makemessages(tmp_path):
    """makemessages over a copy of the sources: every message has a Korean msgstr, none is fuzzy
    (a changed English string msgmerge guessed at), none is obsolete (a string the code dropped),
    and msgfmt accepts the placeholders of each one."""
    work = tmp_path / "src"
    for part in ("hub", "spaces", "runner", "templates", "locale"):
        shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", work / "manage.py")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", "DJANGO_DEBUG": "true",
           "DEMOHUB_ENV_FILE": "/dev/null", "DATA_DIR": str(tmp_path / "var")}
    subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "ko", "--add-location", "file"],
                   cwd=work, env=env, check=True, capture_output=True, text=True)
    po = str(work / "locale" / "ko" / "LC_MESSAGES" / "django.po")
    untranslated = _gettext_tool("msgattrib", "--untranslated", "--no-obsolete", po)
    fuzzy = _gettext_tool("msgattrib", "--only-fuzzy", "--no-obsolete", po)
    obsolete = _gettext_tool("msgattrib", "--only-obsolete", po)
    assert not untranslated.strip(), f"messages without a Korean translation:\n{untranslated}"
    assert not fuzzy.strip(), f"fuzzy messages (check and unmark them):\n{fuzzy}"
    assert not obsolete.strip(), f"messages the code no longer has (drop them):\n{obsolete}"
    stats = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", po],
                           capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert re.fullmatch(r"\d+ translated messages\.", stats.stderr.strip()), stats.stderr
    # The committed catalog is what makemessages makes, but for its creation date.
    strip = re.compile(r'^"POT-Creation-Date: .*$', re.M)
    assert strip.sub("", Path(po).read_text()) == strip.sub("", PO.read_text()), (
        "locale/ko/LC_MESSAGES/django.po is out of date: run manage.py makemessages -l ko --add-location file")


def test_the_compiled_catalog_is_current():
    """`make test` and the image build compile the catalog; a stale .mo would show old text."""
    mo = PO.with_suffix(".mo")
    assert mo.exists(), "run manage.py compilemessages (scripts/test.sh does)"
    assert mo.stat().st_mtime >= PO.stat().st_mtime, "the .mo is older than the .po: run compilemessages"


def test_an_unknown_default_language_stops_the_hub(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", "DJANGO_DEBUG": "true",
           "DEMOHUB_ENV_FILE": "/dev/null", "DATA_DIR": str(tmp_path), "LANGUAGE_CODE": "fr"}
    run = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0 and "LANGUAGE_CODE='fr' is not one of the hub's languages: en, ko" in run.stderr


# ------------------------------------------------------------------------- visible English
class _Visible(HTMLParser):
    """The text a person sees or hears: text nodes outside script/style/code, and the title,
    placeholder, aria-label and button values."""

    SKIP = {"script", "style", "code", "pre", "textarea"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.texts: list[str] = []
        self.lang = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        for name in ("title", "placeholder", "aria-label"):
            if attrs.get(name):
                self.texts.append(attrs[name])
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.texts.append(attrs["value"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        if not self.SKIP & set(self.stack) and data.strip():
            self.texts.append(data.strip())


# Words that are the same in a Korean page: NAMES (the product, formats, SDKs, protocols:
# tests/i18n_names.py) and the test's own data (usernames, space names, titles, comment bodies).
NAMES_LOWER = {name.lower() for name in NAMES}


def english_words(html: str, data: set[str]) -> list[str]:
    page = _Visible()
    page.feed(html)
    found = []
    for text in page.texts:
        for word in (w for w in re.findall(r"[A-Za-z0-9_']+", text) if re.search("[A-Za-z]{2}", w)):
            if word.lower() not in NAMES_LOWER and word.lower() not in data:
                found.append(f"{word!r} in {text!r}")
    return found


@pytest.fixture
def world(hub, make_user, make_space, make_token, django_capture_on_commit_callbacks):
    """olive's space `demo` (running, with a revision, a variable, a secret, a collaborator, a
    share link and a comment thread), her token, and vera, who comments."""
    olive, vera = make_user("olive"), make_user("vera")
    space = make_space(olive, "demo", title="Demo")
    with django_capture_on_commit_callbacks(execute=True):
        revision_create(space=space, created_by=olive, archive=SimpleUploadedFile(
            "repo.tar.gz", targz_bytes({"README.md": readme(title="Demo", sdk="static"), "index.html": "hi"})))
    variables.variable_set(space=space, key="GREETING", value="annyeong", secret=False, by=olive)
    variables.variable_set(space=space, key="DB_PASSWORD", value="hunter2-long", secret=True, by=olive)
    access.collaborator_set(space=space, username="vera", role="viewer")
    access.share_link_create(space=space, by=olive, note="", expires_in_days=3, max_uses=None)
    top = comments.comment_create(space=space, author=vera, body="annyeong", reply_to=None)
    comments.comment_create(space=space, author=olive, body="annyeong", reply_to=top.pk)
    make_token(olive)
    return {"olive", "vera", "demo", "annyeong", "greeting", "db_password", "hunter", "long", "hi", "test"}


def _client(user: str | None = None, **headers) -> Client:
    client = Client(REMOTE_ADDR=next_ip(), **headers)
    if user:
        assert client.login(username=user, password=PASSWORD)
    return client


# The main journeys: sign up, log in, browse, the space page, its settings, sharing and logs,
# comments (on the space page), the account and its tokens, a new space, a profile, a password.
ANONYMOUS_PAGES = ["/accounts/signup/", "/accounts/login/", "/", "/?search=demo", "/spaces/olive/demo",
                   "/users/olive", "/spaces/olive/nothing-here", "/s/not-a-valid-link"]
OWNER_PAGES = ["/", "/spaces/olive/demo", "/spaces/olive/demo/settings", "/spaces/olive/demo/access",
               "/spaces/olive/demo/logs", "/settings/", "/settings/tokens", "/new", "/accounts/password/",
               "/users/olive"]


def _assert_korean(client: Client, path: str, data: set[str], **headers) -> str:
    resp = client.get(path, **headers)
    assert resp.status_code in (200, 403, 404), (path, resp.status_code)
    html = resp.content.decode()
    assert '<html lang="ko">' in html, path
    assert not english_words(html, data), (path, english_words(html, data))
    return html


def test_every_main_page_is_korean_for_a_korean_browser(world):
    anonymous = _client(**KO)
    for path in ANONYMOUS_PAGES:
        _assert_korean(anonymous, path, world)
    owner = _client("olive", **KO)
    for path in OWNER_PAGES:
        _assert_korean(owner, path, world)
    vera = _client("vera", **KO)
    html = _assert_korean(vera, "/spaces/olive/demo", world)
    assert "댓글" in html and "답글" in html and "좋아요" in html
    # A form with errors: Django's own messages come from its Korean catalog.
    resp = anonymous.post("/accounts/signup/", {"username": "", "password": "x"}, **KO)
    assert not english_words(resp.content.decode(), world)


def test_the_same_pages_stay_english_for_an_english_browser(world):
    owner = _client("olive", **EN)
    html = owner.get("/spaces/olive/demo/settings").content.decode()
    assert '<html lang="en">' in html and "Upload a new revision" in html and "Variables and secrets" in html
    assert "리비전" not in html


def test_the_selector_switches_the_language_with_a_cookie(world):
    """The footer's form posts to /i18n/setlang/; the cookie then wins over Accept-Language, on
    every page (no language prefix in URLs), until it is switched back."""
    owner = _client("olive", **EN)
    page = owner.get("/spaces/olive/demo/access").content.decode()
    assert 'action="/i18n/setlang/"' in page and '<option value="ko" lang="ko">한국어</option>' in page
    resp = owner.post("/i18n/setlang/", {"language": "ko", "next": "/spaces/olive/demo/access"})
    assert resp.status_code == 302 and resp["Location"] == "/spaces/olive/demo/access"
    assert resp.cookies["django_language"].value == "ko"
    for path in OWNER_PAGES:
        _assert_korean(owner, path, world)
    for path in ANONYMOUS_PAGES[:3]:
        _assert_korean(_client(**EN, HTTP_COOKIE="django_language=ko"), path, world)
    resp = owner.post("/i18n/setlang/", {"language": "en", "next": "/settings/"})
    assert owner.get("/settings/").content.decode().count("API tokens") >= 1


def test_messages_after_an_action_are_korean(world):
    owner = _client("olive", **KO)
    resp = owner.post("/spaces/olive/demo/settings/variables", {"kind": "variable", "key": "MOOD", "value": "ok"},
                      follow=True)
    html = resp.content.decode()
    assert "변수 MOOD을(를) 추가했습니다." in html, html
    assert not english_words(html, world | {"mood", "ok"})


def test_refusals_a_page_knows_are_korean(hub, make_user, make_space, settings):
    """A rate limit and a taken space name: the page says it in Korean, the API in English."""
    settings.SIGNUP_RATE_PER_IP = "1/10h"
    browser = Client(REMOTE_ADDR=next_ip(), **KO)
    assert browser.post("/accounts/signup/", {"username": "first1", "password": PASSWORD}).status_code == 302
    browser.logout()
    resp = browser.post("/accounts/signup/", {"username": "second2", "password": PASSWORD})
    html = resp.content.decode()
    assert resp.status_code == 429 and re.search(r"시도가 너무 많습니다\. \d+분 후에 다시 시도하세요\.", html), html
    assert not english_words(html, {"second2"})
    olive = make_user("olive")
    make_space(olive, "demo")
    owner = _client("olive", **KO)
    html = owner.post("/new", {"name": "demo", "sdk": "static", "visibility": "public"}).content.decode()
    assert "이미 이름이 demo인 스페이스가 있습니다." in html
    assert not english_words(html, {"olive", "demo"})
    api = _client("olive", **KO).post("/api/spaces", {"name": "demo", "sdk": "static"},
                                      content_type="application/json")
    assert api.json()["detail"] == "You already have a space named demo.", api.json()


def test_dates_and_numbers_follow_the_language(world):
    from django.contrib.auth import get_user_model
    user = get_user_model().objects.get(username="olive")
    ko = _client("olive", **KO).get("/settings/").content.decode()
    en = _client("olive", **EN).get("/settings/").content.decode()
    joined = user.date_joined
    assert f"{joined.year}년 {joined.month}월 {joined.day}일" in ko
    assert f"{joined.day}, {joined.year}" in en and "년" not in en   # "Dec. 4, 2026"
    page = _client(**KO).get("/spaces/olive/demo").content.decode()
    assert re.search(r"<time [^>]*>[^<]*(지금|전)[^<]*</time>", page), "comments show naturaltime in Korean"


def test_api_errors_stay_english_for_a_korean_client(world):
    """Django's and DRF's own messages have Korean catalogs: the API must not use them."""
    korean = _client(**KO, HTTP_COOKIE="django_language=ko")
    resp = korean.post("/api/users", {"username": "", "email": "bad"}, content_type="application/json")
    assert resp.status_code == 400 and resp["Content-Language"] == "en"
    body = resp.json()
    assert body["code"] == "blank" and body["detail"] == "username: This field may not be blank.", body
    assert body["errors"]["email"] == ["Enter a valid email address."], body
    resp = korean.post("/api/spaces", {"name": "x", "sdk": "static"}, content_type="application/json")
    assert resp.status_code == 401 and re.fullmatch(r"[\x00-\x7f]+", resp.json()["detail"]), resp.json()
    assert korean.get("/").content.decode().count('<html lang="ko">') == 1   # pages stay Korean


def test_the_unavailable_page_of_a_space_is_korean(hub, make_user, make_space, settings):
    """The status page the proxy shows on a space's own host (spaces/unavailable.html)."""
    olive = make_user("olive")
    space = make_space(olive, "asleep")
    resp = Client(**KO).get("/internal/proxy/fallback", HTTP_X_DEMOHUB_HOST=f"{space.label}.{settings.SPACES_DOMAIN}",
                            HTTP_X_DEMOHUB_URI="/", HTTP_X_DEMOHUB_PROXY_KEY=settings.PROXY_SHARED_SECRET,
                            HTTP_ACCEPT="text/html")
    html = resp.content.decode()
    assert resp.status_code == 503, (resp.status_code, html[:300])
    assert "이 스페이스는 아직 앱이 없습니다" in html
    assert not english_words(html, {"olive", "asleep"})


# ---------------------------------------------------------------------------- set_language
# No django_db mark: pytest-django fails any database query, so these prove the selector works
# while the database is away.
def test_set_language_needs_no_database():
    client = Client()
    resp = client.post("/i18n/setlang/", {"language": "ko", "next": "/spaces/olive/demo"})
    assert resp.status_code == 302 and resp["Location"] == "/spaces/olive/demo"
    cookie = resp.cookies["django_language"]
    assert cookie.value == "ko" and cookie["samesite"] == "Lax" and cookie["path"] == "/"


def test_set_language_refuses_what_it_should():
    client = Client()
    # An unknown language sets nothing; a foreign `next` goes home; a GET changes nothing.
    resp = client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    assert resp.status_code == 302 and "django_language" not in resp.cookies
    resp = client.post("/i18n/setlang/", {"language": "ko", "next": "https://evil.example/"},
                       HTTP_ACCEPT="text/html")
    assert resp.status_code == 302 and resp["Location"] == "/"
    resp = client.get("/i18n/setlang/?language=ko&next=/")
    assert "django_language" not in resp.cookies
    # The form carries a CSRF token, and the view checks it.
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/i18n/setlang/", {"language": "ko", "next": "/"}).status_code == 403


# ------------------------------------------------------------------- every template, statically
TEMPLATES = ROOT / "templates"
_BLOCKTRANS = re.compile(r"{%\s*blocktranslate\b.*?{%\s*endblocktranslate\s*%}", re.S)
_COMMENT = re.compile(r"{#.*?#}|{%\s*comment\s*%}.*?{%\s*endcomment\s*%}"
                      r"|{%\s*block mainclass\s*%}.*?{%\s*endblock\s*%}", re.S)   # a CSS class, not text
_TAG = re.compile(r"{%.*?%}|{{.*?}}", re.S)


def test_no_template_has_text_outside_translate_tags():
    """Text a person reads in any template (pages the journeys above do not reach included) is
    inside {% translate %} or {% blocktranslate %}: what is left after removing those, template
    tags, variables, comments, scripts, styles and code holds no English word."""
    untranslated = {}
    for path in sorted(TEMPLATES.rglob("*.html")):
        source = _TAG.sub(" ", _COMMENT.sub(" ", _BLOCKTRANS.sub(" ", path.read_text())))
        words = english_words(source, set())
        if words:
            untranslated[str(path.relative_to(ROOT))] = words
    assert not untranslated, untranslated
