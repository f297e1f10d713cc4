"""Discovery: full-text search, filters, sorts, trending, owner profile pages and the seeding
command (spaces/records/search.py, selectors.space_filter, views_discovery, api_discovery)."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from spaces.access.models import Collaborator
from spaces.access.selectors import space_filter, space_list_visible_to
from spaces.catalog import pages_browse as views_discovery
from spaces.catalog.services import space_update
from spaces.community.models import Comment, Like
from spaces.community.services import comment_create, like_add
from spaces.community.tasks import refresh_trending_task
from spaces.community.trending import space_trending_refresh
from spaces.records.models import HostLabel, Revision, Space
from spaces.records.search import DeferredJoinList, space_search_vector_refresh
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


def names(resp) -> list[str]:
    assert resp.status_code == 200, resp.content
    return [f"{s['owner']}/{s['name']}" for s in resp.json()["results"]]


def html_client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def card_names(resp) -> list[str]:
    """The data-space of each card on a list page, in order."""
    assert resp.status_code == 200, resp.content
    return re.findall(r'<article class="space-card[^"]*" data-space="([^"]+)"', resp.content.decode())


@pytest.fixture
def olive(make_user):
    return make_user("olive")


@pytest.fixture
def oscar(make_user):
    return make_user("oscar")


# ------------------------------------------------------------------------------ what is searched
@pytest.fixture
def shelf(olive, oscar, make_space):
    """Spaces whose words sit in different fields."""
    make_space(olive, "pets", title="Pet Image Classifier", short_description="Sorts photos of animals")
    make_space(olive, "talk", title="Voice demo", short_description="Transcribes dogs barking")
    tagged = make_space(oscar, "tagged", title="Untitled")
    space_update(space=tagged, tags=["astronomy", "telescopes"])
    make_space(oscar, "plain", title="Nothing relevant", short_description="Just a page")


@pytest.mark.parametrize("query,expected", [
    ("classifier", ["olive/pets"]),             # title
    ("classifying", ["olive/pets"]),            # stemming: classifying, classifier -> 'classifi'
    ("classif", ["olive/pets"]),                # the last word is also a prefix (typing)
    ("photo", ["olive/pets"]),                  # description, stemmed: photos -> 'photo'
    ("dog", ["olive/talk"]),                    # description: dogs -> 'dog'
    ("telescope", ["oscar/tagged"]),            # tags
    ("pet classifier", ["olive/pets"]),         # all words must match
    ("pet barking", []),
    ("pet or barking", ["olive/pets", "olive/talk"]),      # websearch syntax: or
    ('"image classifier"', ["olive/pets"]),                # websearch syntax: phrase
    ('"classifier image"', []),
    ("demo -voice", []),                                   # websearch syntax: not
    ("oscar", ["oscar/tagged", "oscar/plain"]),            # exactly the owner's name
    ("the", []),                                           # stop words only
])
def test_search_fields_stemming_and_syntax(api, shelf, query, expected):
    assert sorted(names(api().get("/api/spaces", {"search": query}))) == sorted(expected)


def test_search_finds_readme_text_applied_at_upload(api, olive, make_space, upload, repo):
    space = make_space(olive, "notes")
    files = dict(repo.static)
    files["README.md"] = repo.readme(title="Field notes", sdk="static", tags="[botany]") + \
        "Measures photosynthesis in leaves.\n"
    assert upload(api(olive), space, files).status_code == 202
    assert names(api().get("/api/spaces?search=photosynthesis")) == ["olive/notes"]
    # Front matter applied at upload (title, tags) is searchable too.
    assert names(api().get("/api/spaces?search=botany")) == ["olive/notes"]
    assert names(api().get("/api/spaces?search=field+notes")) == ["olive/notes"]


def test_edits_refresh_the_search_document(api, olive, make_space):
    make_space(olive, "demo", title="Old words")
    assert names(api().get("/api/spaces?search=old")) == ["olive/demo"]
    resp = api(olive).patch("/api/spaces/olive/demo", {"title": "Fresh wording",
                                                        "short_description": "about glaciers"}, format="json")
    assert resp.status_code == 200, resp.content
    assert names(api().get("/api/spaces?search=old")) == []
    assert names(api().get("/api/spaces?search=fresh")) == ["olive/demo"]
    assert names(api().get("/api/spaces?search=glacier")) == ["olive/demo"]


def test_title_hit_ranks_above_readme_hit(api, olive, oscar, make_space, make_user):
    in_readme = make_space(oscar, "mentions", title="Something else")
    Space.objects.filter(pk=in_readme.pk).update(readme="This works with zebra crossings, zebra after zebra.")
    space_search_vector_refresh([in_readme.pk])
    make_space(olive, "zebra-finder", title="Zebra finder")
    # The README hit is far more popular: relevance must still win without a sort.
    for i in range(3):
        like_add(space=in_readme, user=make_user(f"fan{i}"))
    assert names(api().get("/api/spaces?search=zebra")) == ["olive/zebra-finder", "oscar/mentions"]
    # An explicit sort overrides relevance.
    assert names(api().get("/api/spaces?search=zebra&sort=likes")) == ["oscar/mentions", "olive/zebra-finder"]


def test_search_is_bounded(api):
    body = assert_error(api().get("/api/spaces", {"search": "x" * 201}), 400)
    assert "search" in body["detail"]


# ------------------------------------------------------------------------------ privacy
@pytest.fixture
def secrets_shelf(people, make_space, make_user):
    owner = people["owner"]
    make_space(owner, "open-eagle", title="Eagle tracker")
    make_space(owner, "hidden-eagle", title="Eagle tracker private", visibility="private",
               editors=[people["editor"]], viewers=[people["viewer"]])
    return people


@pytest.mark.parametrize("who,sees_private", [
    ("anonymous", False), ("stranger", False), ("viewer", True), ("editor", True), ("owner", True),
])
def test_private_spaces_only_for_owner_and_collaborators(api, secrets_shelf, who, sees_private):
    user = secrets_shelf[who]
    expected = {"olive/open-eagle"} | ({"olive/hidden-eagle"} if sees_private else set())
    for query in ("", "?search=eagle", "?search=private", "?author=olive", "?sort=likes", "?search=olive",
                  "?sdk=static&sort=recent"):
        got = set(names(api(user).get(f"/api/spaces{query}")))
        assert got == (expected if "private" not in query else expected - {"olive/open-eagle"}), query
    # Profile pages (HTML) and the profile API count the same spaces.
    cards = set(card_names(html_client(user).get("/users/olive")))
    assert cards == expected
    assert set(card_names(html_client(user).get("/?search=eagle"))) == expected
    assert api(user).get("/api/users/olive").json()["spaces"] == len(expected)


def test_deleting_space_is_in_no_list(api, olive, make_space):
    make_space(olive, "going", title="Going away")
    assert api(olive).delete("/api/spaces/olive/going").status_code == 202  # purge not run (no commit)
    assert names(api(olive).get("/api/spaces?search=going")) == []
    assert card_names(html_client(olive).get("/users/olive")) == []


def test_visible_list_has_one_row_per_space(olive, make_user, make_space):
    """EXISTS, not a join: a space with several collaborators is listed once, without DISTINCT."""
    a, b, c = make_user("a1"), make_user("b1"), make_user("c1")
    make_space(olive, "shared", visibility="private", editors=[a, b], viewers=[c])
    qs = space_list_visible_to(a)
    assert [s.name for s in qs] == ["shared"] and qs.count() == 1
    assert "DISTINCT" not in str(qs.query)


# ------------------------------------------------------------------------------ filters and validation
@pytest.fixture
def kinds(api, olive, oscar, make_space):
    make_space(olive, "g1", sdk="gradio")
    make_space(olive, "s1", sdk="streamlit")
    make_space(oscar, "d1", sdk="docker")
    # Through the API, which stores tags lower-cased.
    assert api(oscar).patch("/api/spaces/oscar/d1", {"tags": ["NLP", "Vision"]}, format="json").status_code == 200
    Space.objects.filter(name="s1").update(status="RUNNING")


@pytest.mark.parametrize("query,expected", [
    ("sdk=gradio", ["olive/g1"]),
    ("sdk=docker", ["oscar/d1"]),
    ("tag=nlp", ["oscar/d1"]),
    ("tag=VISION", ["oscar/d1"]),
    ("tag=none", []),
    ("author=OSCAR", ["oscar/d1"]),
    ("status=running", ["olive/s1"]),
    ("status=RUNNING&sdk=gradio", []),
])
def test_filters(api, kinds, query, expected):
    assert sorted(names(api().get(f"/api/spaces?{query}"))) == expected


@pytest.mark.parametrize("query,param", [
    ("sdk=flask", "sdk"), ("status=flying", "status"), ("sort=popular", "sort"), ("sort=-likes", "sort"),
])
def test_unknown_values_are_400_naming_the_parameter(api, kinds, query, param):
    body = assert_error(api().get(f"/api/spaces?{query}"), 400)
    assert body["detail"].startswith(f"{param}:"), body


def test_browse_page_shows_an_invalid_parameter_as_a_message(kinds):
    resp = html_client().get("/?sdk=flask&sort=likes")
    assert resp.status_code == 200
    page = resp.content.decode()
    assert 'class="flash error"' in page and "sdk: Use one of" in page
    # The bad filter is left out, the rest still applies: every space, sorted by likes.
    assert sorted(card_names(resp)) == ["olive/g1", "olive/s1", "oscar/d1"]


def test_browse_page_filters_and_keeps_them_in_page_links(olive, make_space):
    for i in range(30):
        make_space(olive, f"radio-{i:02d}", sdk="gradio", title=f"Radio station {i}")
    make_space(olive, "other", sdk="static", title="Radio elsewhere")
    resp = html_client().get("/?search=radio&sdk=gradio&sort=recent")
    assert len(card_names(resp)) == views_discovery.PAGE_SIZE
    assert "olive/other" not in card_names(resp)
    page = resp.content.decode()
    assert 'href="?search=radio&amp;sdk=gradio&amp;sort=recent&page=2"' in page
    second = html_client().get("/?search=radio&sdk=gradio&sort=recent&page=2")
    assert len(card_names(second)) == 30 - views_discovery.PAGE_SIZE


# ------------------------------------------------------------------------------ sorts
def test_sorts_and_deterministic_ties(api, olive, make_user, make_space):
    spaces = [make_space(olive, f"s{i}") for i in range(6)]
    # Equal updated_at, likes and scores everywhere: the order falls back on the id, newest first.
    Space.objects.update(updated_at=timezone.now())
    by_id = [f"olive/s{i}" for i in reversed(range(6))]
    for sort in ("", "?sort=trending", "?sort=likes", "?sort=recent"):
        assert names(api().get(f"/api/spaces{sort}")) == by_id, sort
    # Pages of equal rows neither overlap nor skip.
    pages = [names(api().get(f"/api/spaces?sort=likes&page_size=4&page={n}")) for n in (1, 2)]
    assert pages[0] + pages[1] == by_id

    fan1, fan2 = make_user("fan1"), make_user("fan2")
    like_add(space=spaces[0], user=fan1)
    like_add(space=spaces[0], user=fan2)
    like_add(space=spaces[1], user=fan1)
    assert names(api().get("/api/spaces?sort=likes"))[:2] == ["olive/s0", "olive/s1"]
    assert names(api().get("/api/spaces"))[:2] == ["olive/s0", "olive/s1"]  # trending by default
    space_update(space=spaces[3], title="touched")  # auto_now bumps updated_at
    assert names(api().get("/api/spaces?sort=recent"))[0] == "olive/s3"


def test_trending_counts_recent_likes_and_comments_only(api, olive, make_user, make_space):
    old_favourite, newcomer, chatty = (make_space(olive, n) for n in ("old-favourite", "newcomer", "chatty"))
    fans = [make_user(f"fan{i}") for i in range(3)]
    for fan in fans:
        like_add(space=old_favourite, user=fan)
    like_add(space=newcomer, user=fans[0])
    comment_create(space=chatty, author=fans[1], body="Nice!")
    # The old favourite's likes are from last month: outside the 7-day window.
    Like.objects.filter(space=old_favourite).update(created_at=timezone.now() - timedelta(days=30))
    assert refresh_trending_task.delay().successful()  # the beat task
    scores = dict(Space.objects.values_list("name", "trending_score"))
    assert scores["old-favourite"] == 0
    assert scores["newcomer"] == pytest.approx(1.0, rel=1e-3)      # one like, just now
    assert scores["chatty"] == pytest.approx(0.2, rel=1e-3)        # one comment weighs a fifth
    assert names(api().get("/api/spaces?sort=trending")) == ["olive/newcomer", "olive/chatty",
                                                              "olive/old-favourite"]
    assert names(api().get("/api/spaces?sort=likes"))[0] == "olive/old-favourite"
    # Older likes weigh less (half-life 3 days).
    Like.objects.filter(space=newcomer).update(created_at=timezone.now() - timedelta(days=3))
    space_trending_refresh()
    assert Space.objects.get(pk=newcomer.pk).trending_score == pytest.approx(0.5, rel=1e-3)
    # Nothing moved: the periodic refresh rewrites no row.
    assert space_trending_refresh() == 0


def test_like_and_unlike_move_trending_at_once(api, olive, oscar, make_space):
    space = make_space(olive, "demo")
    make_space(olive, "other")
    assert api(oscar).post("/api/spaces/olive/demo/like").status_code in (200, 201)
    assert Space.objects.get(pk=space.pk).trending_score > 0
    assert names(api().get("/api/spaces"))[0] == "olive/demo"
    assert api(oscar).delete("/api/spaces/olive/demo/like").status_code in (200, 204)
    assert Space.objects.get(pk=space.pk).trending_score == 0


# ------------------------------------------------------------------------------ query counts
@pytest.fixture
def crowd(people, make_space):
    """80 spaces (64 public) with revisions (both pointers set) and counters, some private with
    collaborators: anything loaded per row would show as more queries on a bigger page."""
    owner, viewer = people["owner"], people["viewer"]
    spaces = Space.objects.bulk_create([
        Space(owner=owner, name=f"s{i:02d}", sdk="gradio", title=f"Crowd demo {i}", label=f"crowd-s{i}",
              address_index=1000 + i, visibility="private" if i % 5 == 0 else "public",
              like_count=i % 7, comment_count=i % 4) for i in range(80)])
    revisions = Revision.objects.bulk_create([Revision(space=s, number=1, content_hash="0" * 64,
                                                       snapshot_path="/nonexistent", status="succeeded")
                                              for s in spaces])
    for space, rev in zip(spaces, revisions):
        Space.objects.filter(pk=space.pk).update(latest_revision=rev, running_revision=rev)
    Collaborator.objects.bulk_create([Collaborator(space=s, user=viewer, role="viewer")
                                      for s in spaces if s.visibility == "private"])
    space_search_vector_refresh(Space.objects.all())
    return people


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx.captured_queries)


@pytest.mark.parametrize("who", ["anonymous", "viewer", "stranger"])
@pytest.mark.parametrize("query", ["", "search=crowd", "sort=likes&sdk=gradio", "sort=recent", "search=olive"])
def test_list_api_query_count_does_not_grow_with_the_page(api, crowd, who, query):
    client = api(crowd[who])
    client.get("/api/spaces")  # the token's last use is written at most once a minute: not here
    small = count_queries(client, f"/api/spaces?{query}&page_size=5")
    large = count_queries(client, f"/api/spaces?{query}&page_size=50")
    assert small == large and small <= 5, (small, large)
    assert len(client.get(f"/api/spaces?{query}&page_size=50").json()["results"]) == 50


@pytest.mark.parametrize("who", ["anonymous", "viewer"])
@pytest.mark.parametrize("path", ["/", "/?search=crowd&sort=likes", "/users/olive"])
def test_list_pages_query_count_does_not_grow_with_the_page(crowd, monkeypatch, who, path):
    client = html_client(crowd[who])
    counts = []
    for size in (5, 50):
        monkeypatch.setattr(views_discovery, "PAGE_SIZE", size)
        counts.append(count_queries(client, path))
        assert len(card_names(client.get(path))) == size
    assert counts[0] == counts[1] and counts[0] <= 6, counts


def test_deferred_join_pages_are_the_ordered_list(crowd):
    qs = space_filter(space_list_visible_to(crowd["viewer"]), sort="likes")
    everything = [s.pk for s in qs]
    pages = DeferredJoinList(qs)
    assert pages.count() == len(everything) == 80
    assert [s.pk for start in range(0, 80, 7) for s in pages[start:start + 7]] == everything
    searched = space_filter(space_list_visible_to(None), search="crowd demo")
    assert [s.pk for s in DeferredJoinList(searched)[0:100]] == [s.pk for s in searched]


# ------------------------------------------------------------------------------ profile pages
def test_profile_page(olive, oscar, make_space):
    make_space(olive, "mine", title="Mine")
    make_space(olive, "secret", visibility="private")
    resp = html_client().get("/users/OLIVE")  # names are case-insensitive, as in space URLs
    assert resp.status_code == 200
    page = resp.content.decode()
    assert "<h1>olive</h1>" in page and "Joined" in page
    assert card_names(resp) == ["olive/mine"]
    # Owner names link to the profile: on cards and on the space page.
    assert 'href="/users/olive"' in page
    assert 'href="/users/olive"' in html_client().get("/spaces/olive/mine").content.decode()
    assert 'href="/users/olive"' in html_client().get("/").content.decode()


def test_profile_of_user_without_visible_spaces_is_empty_not_404(oscar, olive, make_space):
    make_space(oscar, "secret", visibility="private")
    resp = html_client(olive).get("/users/oscar")
    assert resp.status_code == 200
    assert card_names(resp) == []
    assert "oscar has no spaces to show yet" in resp.content.decode()


def test_unknown_user_is_404(api):
    assert html_client().get("/users/nobody").status_code == 404
    assert_error(api().get("/api/users/nobody"), 404, "not_found")


def test_profile_api(api, olive, oscar, make_space):
    make_space(olive, "a")
    make_space(olive, "b", visibility="private", viewers=[oscar])
    body = api().get("/api/users/Olive").json()
    assert body["username"] == "olive" and body["spaces"] == 1
    assert body["date_joined"].endswith("Z") or body["date_joined"].endswith("+00:00")
    assert api(oscar).get("/api/users/olive").json()["spaces"] == 2
    assert api(olive).get("/api/users/olive").json()["spaces"] == 2


# ------------------------------------------------------------------------------ the seeding command
@pytest.mark.django_db(transaction=True)  # it ends with VACUUM, which runs outside a transaction
def test_seed_demo_creates_searchable_data_and_tops_up_on_rerun(api):
    args = dict(spaces=40, comments=120, users=6, likes=60, prefix="t", stdout=io.StringIO())
    call_command("seed_demo", **args)
    spaces = Space.objects.filter(label__startswith="t-s")
    assert spaces.count() == 40
    assert spaces.filter(visibility="private").exists() and spaces.filter(visibility="public").exists()
    assert len(set(spaces.values_list("address_index", flat=True))) == 40
    assert HostLabel.objects.filter(label__in=spaces.values_list("label", flat=True)).count() == 40
    assert Comment.objects.count() == 120 and Like.objects.count() == 60
    assert not spaces.filter(search_vector=None).exists()
    for space in spaces:
        assert space.like_count == Like.objects.filter(space=space).count()
    assert spaces.filter(trending_score__gt=0).exists()
    # Searchable like any space: a word of a seeded title finds it.
    first = spaces.filter(visibility="public").order_by("pk").first()
    word = first.title.split()[-1]
    assert f"{first.owner.username}/{first.name}" in names(api().get("/api/spaces", {"search": word,
                                                                                      "page_size": 100}))
    before = (Space.objects.count(), Comment.objects.count(), Like.objects.count())
    call_command("seed_demo", **args)
    assert (Space.objects.count(), Comment.objects.count(), Like.objects.count()) == before
    call_command("seed_demo", **{**args, "spaces": 45, "comments": 130})
    assert Space.objects.filter(label__startswith="t-s").count() == 45 and Comment.objects.count() == 130
