"""Comments and likes: the API (design.md §4), the rules of §6, the counters, and the space page."""
from __future__ import annotations

import copy
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext

from spaces.community import services as svc
from spaces.community.models import Comment, Like
from spaces.records.models import Space
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]

COMMENT_FIELDS = {"id", "author", "body", "html", "reply_to", "hidden", "created_at", "edited_at", "can_edit",
                  "can_hide"}


@pytest.fixture(autouse=True)
def own_rate_limit_counters(settings):
    """A cache key prefix of this test's own: comment creation is limited per user id, and
    concurrent runs (each numbering users from 1) share one Redis."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"demohub:unit:{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture
def pub(people, make_space):
    return make_space(people["owner"], "pub", editors=[people["editor"]], viewers=[people["viewer"]])


@pytest.fixture
def priv(people, make_space):
    return make_space(people["owner"], "priv", visibility="private", editors=[people["editor"]],
                      viewers=[people["viewer"]])


def url(space: Space, tail: str = "comments") -> str:
    return f"/api/spaces/{space.owner.username}/{space.name}/{tail}"


def post_comment(client, space, body="Nice demo!", **extra):
    return client.post(url(space), {"body": body, **extra}, format="json")


def counters(space: Space) -> tuple[int, int]:
    space.refresh_from_db(fields=["like_count", "comment_count"])
    return space.like_count, space.comment_count


def recount(space: Space) -> tuple[int, int]:
    """The counters computed from the rows: likes, and comments everyone sees (not hidden, in a
    thread that is not hidden)."""
    shown = (Comment.objects.filter(space=space, hidden=False)
             .filter(Q(reply_to__isnull=True) | Q(reply_to__hidden=False)).count())
    return Like.objects.filter(space=space).count(), shown


def assert_in_step(space: Space, likes: int, shown: int) -> None:
    assert counters(space) == recount(space) == (likes, shown)


def ids(resp) -> list[int]:
    assert resp.status_code == 200, resp.content
    return [c["id"] for c in resp.json()["results"]]


# ------------------------------------------------------------------------------ create and read
def test_comment_create_and_list_shape(api, people, pub):
    stan = api(people["stranger"])
    resp = post_comment(stan, pub, "  Hello **world**  ")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert COMMENT_FIELDS <= set(body)
    assert body["author"] == "stan"
    assert body["body"] == "Hello **world**"  # stripped, raw Markdown
    assert body["html"] == "<p>Hello <strong>world</strong></p>\n"
    assert body["reply_to"] is None and body["hidden"] is False and body["edited_at"] is None
    assert body["can_edit"] is True and body["can_hide"] is False
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$", body["created_at"])

    listing = api().get(url(pub)).json()
    assert set(listing) == {"count", "next", "previous", "results"}
    assert listing["count"] == 1 and listing["next"] is None and listing["previous"] is None
    [item] = listing["results"]
    assert set(item) == COMMENT_FIELDS | {"replies"}
    assert item["id"] == body["id"] and item["replies"] == []
    assert item["can_edit"] is False and item["can_hide"] is False  # anonymous
    assert_in_step(pub, 0, 1)


def test_threads_are_oldest_first_with_replies_nested(api, people, pub):
    owner, stan = api(people["owner"]), api(people["stranger"])
    first = post_comment(stan, pub, "first").json()["id"]
    second = post_comment(owner, pub, "second").json()["id"]
    r1 = post_comment(owner, pub, "re first", reply_to=first).json()
    r2 = post_comment(stan, pub, "re first again", reply_to=first).json()
    results = api().get(url(pub)).json()["results"]
    assert [c["id"] for c in results] == [first, second]
    assert [r["id"] for r in results[0]["replies"]] == [r1["id"], r2["id"]]
    assert all(r["reply_to"] == first for r in results[0]["replies"])
    assert "replies" not in results[0]["replies"][0]
    assert results[1]["replies"] == []


def test_a_reply_to_a_reply_joins_the_thread_of_its_parent(api, people, pub):
    stan = api(people["stranger"])
    top = post_comment(stan, pub, "top").json()["id"]
    reply = post_comment(stan, pub, "reply", reply_to=top).json()["id"]
    nested = post_comment(stan, pub, "reply to the reply", reply_to=reply)
    assert nested.status_code == 201
    assert nested.json()["reply_to"] == top
    [thread] = api().get(url(pub)).json()["results"]
    assert [r["body"] for r in thread["replies"]] == ["reply", "reply to the reply"]
    assert_in_step(pub, 0, 3)


@pytest.mark.parametrize("target", ["missing", "other_space"])
def test_reply_to_a_comment_not_on_this_space_is_400(api, people, pub, make_space, target):
    stan = api(people["stranger"])
    other = make_space(people["owner"], "other")
    reply_to = 999999 if target == "missing" else post_comment(stan, other).json()["id"]
    body = assert_error(post_comment(stan, pub, reply_to=reply_to), 400, "invalid_reply_to")
    assert "reply" in body["detail"]
    assert not Comment.objects.filter(space=pub).exists()
    assert_in_step(pub, 0, 0)


@pytest.mark.parametrize("body", ["", "   \n\t  ", "x" * 10001, " " + "y" * 10001])
def test_body_must_hold_1_to_10000_characters_after_strip(api, people, pub, body):
    resp = assert_error(post_comment(api(people["stranger"]), pub, body), 400)
    assert "body" in resp["detail"]
    assert_in_step(pub, 0, 0)


def test_body_of_exactly_10000_characters_after_strip_is_fine(api, people, pub):
    resp = post_comment(api(people["stranger"]), pub, "  " + "z" * 10000 + "\n")
    assert resp.status_code == 201
    assert len(resp.json()["body"]) == 10000


def test_body_is_required(api, people, pub):
    assert "body" in assert_error(api(people["stranger"]).post(url(pub), {}, format="json"), 400)["detail"]


def test_pagination_of_threads(api, people, pub):
    author = people["stranger"]
    made = [svc.comment_create(space=pub, author=author, body=f"c{i}").pk for i in range(25)]
    client = api()
    first = client.get(url(pub) + "?page_size=10").json()
    assert first["count"] == 25 and first["previous"] is None and "page=2" in first["next"]
    assert [c["id"] for c in first["results"]] == made[:10]
    last = client.get(url(pub) + "?page_size=10&page=3").json()
    assert [c["id"] for c in last["results"]] == made[20:] and last["next"] is None and last["previous"]
    assert len(client.get(url(pub)).json()["results"]) == 20  # the default page size
    assert len(client.get(url(pub) + "?page_size=1000").json()["results"]) == 25  # capped at 100


def test_reading_comments_costs_the_same_queries_for_2_or_60_comments(api, people, pub, make_user):
    client = api(people["stranger"])
    client.get(url(pub))  # the token's first use records last_used_at once: not part of the count

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url(pub) + "?page_size=100").status_code == 200
        return len(ctx)

    top = svc.comment_create(space=pub, author=people["viewer"], body="one")
    svc.comment_create(space=pub, author=people["editor"], body="two", reply_to=top)
    few = queries()
    authors = [make_user(f"user{i}") for i in range(6)]
    for i in range(20):
        thread = svc.comment_create(space=pub, author=authors[i % 6], body=f"*t{i}*")
        svc.comment_create(space=pub, author=authors[(i + 1) % 6], body="r", reply_to=thread)
    hidden = svc.comment_create(space=pub, author=authors[0], body="hidden reply", reply_to=thread)
    svc.comment_set_hidden(comment=hidden, by=people["owner"], hidden=True)
    assert Comment.objects.filter(space=pub).count() == 43
    many = queries()
    assert many == few, (few, many)
    assert few <= 6  # token, space, role, count, page, replies


# ------------------------------------------------------------------------------ who may
@pytest.mark.parametrize("who,visibility,expected", [
    ("anonymous", "public", 401), ("stranger", "public", 201), ("viewer", "public", 201),
    ("editor", "public", 201), ("owner", "public", 201),
    ("anonymous", "private", 404), ("stranger", "private", 404), ("viewer", "private", 201),
    ("editor", "private", 201), ("owner", "private", 201),
])
def test_who_may_comment(api, people, pub, priv, who, visibility, expected):
    space = pub if visibility == "public" else priv
    resp = post_comment(api(people[who]), space)
    if expected == 201:
        assert resp.status_code == 201, resp.content
    else:
        assert_error(resp, expected)
    assert Comment.objects.filter(space=space).count() == (1 if expected == 201 else 0)


@pytest.mark.parametrize("who,expected", [("anonymous", 404), ("stranger", 404), ("viewer", 200),
                                          ("editor", 200), ("owner", 200)])
def test_who_may_read_comments_of_a_private_space(api, people, priv, who, expected):
    svc.comment_create(space=priv, author=people["viewer"], body="secret talk")
    resp = api(people[who]).get(url(priv))
    if expected == 404:
        missing = api(people[who]).get("/api/spaces/olive/no-such-space/comments")
        assert assert_error(resp, 404) == assert_error(missing, 404)
    else:
        assert resp.json()["count"] == 1


def test_missing_space_is_404_for_every_call(api, people):
    client = api(people["stranger"])
    for resp in (client.get("/api/spaces/olive/nope/comments"), client.post("/api/spaces/olive/nope/comments",
                                                                            {"body": "x"}, format="json"),
                 client.patch("/api/spaces/olive/nope/comments/1", {"body": "x"}, format="json"),
                 client.delete("/api/spaces/olive/nope/comments/1"), client.post("/api/spaces/olive/nope/like"),
                 client.delete("/api/spaces/olive/nope/like")):
        assert_error(resp, 404, "not_found")


def test_read_only_token_may_read_but_not_write(api, people, pub):
    mine = svc.comment_create(space=pub, author=people["stranger"], body="mine")
    reader = api(people["stranger"], scope="read")
    assert reader.get(url(pub)).status_code == 200
    assert_error(post_comment(reader, pub), 403)
    assert_error(reader.patch(url(pub, f"comments/{mine.pk}"), {"body": "new"}, format="json"), 403)
    assert_error(reader.delete(url(pub, f"comments/{mine.pk}")), 403)
    assert_error(reader.post(url(pub, "like")), 403)
    assert_error(reader.delete(url(pub, "like")), 403)
    mine.refresh_from_db()
    assert mine.body == "mine"
    assert_in_step(pub, 0, 1)


def test_anonymous_writes_are_401(api, people, pub):
    mine = svc.comment_create(space=pub, author=people["stranger"], body="mine")
    anon = api()
    assert_error(anon.patch(url(pub, f"comments/{mine.pk}"), {"body": "new"}, format="json"), 401)
    assert_error(anon.delete(url(pub, f"comments/{mine.pk}")), 401)
    assert_error(anon.post(url(pub, "like")), 401)
    assert_error(anon.delete(url(pub, "like")), 401)


def test_comment_creation_is_rate_limited_per_user(api, people, pub):
    stan = api(people["stranger"])
    for i in range(10):
        assert post_comment(stan, pub, f"c{i}").status_code == 201
    over = post_comment(stan, pub, "one too many")
    assert_error(over, 429, "rate_limited")
    assert int(over["Retry-After"]) > 0
    # Another user is not held up by stan's counter.
    assert post_comment(api(people["viewer"]), pub, "mine").status_code == 201
    assert_in_step(pub, 0, 11)


# ------------------------------------------------------------------------------ edit and delete
def test_author_edits_their_comment(api, people, pub):
    stan = api(people["stranger"])
    cid = post_comment(stan, pub, "typo").json()["id"]
    resp = stan.patch(url(pub, f"comments/{cid}"), {"body": " fixed _now_ "}, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["body"] == "fixed _now_" and body["html"] == "<p>fixed <em>now</em></p>\n"
    assert body["edited_at"] is not None and body["can_edit"] is True
    assert Comment.objects.get(pk=cid).body == "fixed _now_"
    assert_error(stan.patch(url(pub, f"comments/{cid}"), {"body": "  "}, format="json"), 400)
    assert_error(stan.patch(url(pub, f"comments/{cid}"), {"body": "a" * 10001}, format="json"), 400)
    assert Comment.objects.get(pk=cid).body == "fixed _now_"


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_nobody_but_the_author_edits_or_deletes(api, people, pub, who):
    cid = post_comment(api(people["stranger"]), pub, "mine").json()["id"]
    other = api(people[who])
    assert_error(other.patch(url(pub, f"comments/{cid}"), {"body": "changed"}, format="json"), 403, "not_author")
    assert_error(other.delete(url(pub, f"comments/{cid}")), 403, "not_author")
    assert Comment.objects.get(pk=cid).body == "mine"
    assert_in_step(pub, 0, 1)


@pytest.mark.parametrize("payload,field", [({}, ""), ({"body": "x", "hidden": True}, ""),
                                           ({"author": "eve"}, "author"), ({"hidden": "maybe"}, "hidden")])
def test_patch_needs_exactly_one_known_field(api, people, pub, payload, field):
    cid = post_comment(api(people["owner"]), pub, "mine").json()["id"]
    body = assert_error(api(people["owner"]).patch(url(pub, f"comments/{cid}"), payload, format="json"), 400)
    assert field in body["detail"]


def test_unknown_comment_is_404(api, people, pub, make_space):
    elsewhere = svc.comment_create(space=make_space(people["owner"], "other"), author=people["stranger"],
                                   body="x")
    stan = api(people["stranger"])
    for cid in (999999, elsewhere.pk):
        assert_error(stan.patch(url(pub, f"comments/{cid}"), {"body": "y"}, format="json"), 404)
        assert_error(stan.delete(url(pub, f"comments/{cid}")), 404)


def test_author_deletes_a_reply_and_a_thread(api, people, pub):
    stan, vera = api(people["stranger"]), api(people["viewer"])
    top = post_comment(stan, pub, "top").json()["id"]
    mine = post_comment(vera, pub, "reply", reply_to=top).json()["id"]
    post_comment(stan, pub, "another reply", reply_to=top)
    assert_in_step(pub, 0, 3)
    assert vera.delete(url(pub, f"comments/{mine}")).status_code == 204
    assert_in_step(pub, 0, 2)
    # Deleting a top-level comment takes its replies along (whoever wrote them).
    post_comment(vera, pub, "reply again", reply_to=top)
    assert stan.delete(url(pub, f"comments/{top}")).status_code == 204
    assert not Comment.objects.filter(space=pub).exists()
    assert_in_step(pub, 0, 0)
    assert_error(stan.delete(url(pub, f"comments/{top}")), 404)


# ------------------------------------------------------------------------------ hiding
def test_owner_hides_and_unhides(api, people, pub):
    owner, stan = api(people["owner"]), api(people["stranger"])
    cid = post_comment(stan, pub, "spam").json()["id"]
    resp = owner.patch(url(pub, f"comments/{cid}"), {"hidden": True}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["hidden"] is True and resp.json()["can_hide"] is True and resp.json()["can_edit"] is False
    assert_in_step(pub, 0, 0)
    # Hiding again changes nothing (the counter is not decremented twice).
    assert owner.patch(url(pub, f"comments/{cid}"), {"hidden": True}, format="json").status_code == 200
    assert_in_step(pub, 0, 0)
    assert owner.patch(url(pub, f"comments/{cid}"), {"hidden": False}, format="json").json()["hidden"] is False
    assert_in_step(pub, 0, 1)


@pytest.mark.parametrize("who", ["stranger", "viewer", "editor"])
def test_only_the_owner_hides(api, people, pub, who):
    cid = post_comment(api(people[who]), pub, "mine").json()["id"]
    assert_error(api(people[who]).patch(url(pub, f"comments/{cid}"), {"hidden": True}, format="json"), 403,
                 "not_owner")
    assert Comment.objects.get(pk=cid).hidden is False


def test_hidden_comments_show_to_owner_and_author_only(api, people, pub):
    stan, vera, owner = api(people["stranger"]), api(people["viewer"]), api(people["owner"])
    shown = post_comment(vera, pub, "fine").json()["id"]
    spam = post_comment(stan, pub, "spam").json()["id"]
    svc.comment_set_hidden(comment=Comment.objects.get(pk=spam), by=people["owner"], hidden=True)
    for client in (api(), vera, api(people["editor"])):
        listing = client.get(url(pub)).json()
        assert listing["count"] == 1 and [c["id"] for c in listing["results"]] == [shown]
    for client in (owner, stan):
        results = client.get(url(pub)).json()["results"]
        assert [(c["id"], c["hidden"]) for c in results] == [(shown, False), (spam, True)]
    # A hidden comment reads as missing to those who may not see it.
    assert_error(vera.patch(url(pub, f"comments/{spam}"), {"body": "x"}, format="json"), 404)
    assert_error(vera.delete(url(pub, f"comments/{spam}")), 404)
    assert_error(post_comment(vera, pub, "re", reply_to=spam), 400, "invalid_reply_to")
    # Its author and the owner see it, but nobody replies to a hidden comment.
    assert_error(post_comment(stan, pub, "re", reply_to=spam), 409, "comment_hidden")
    assert_error(post_comment(owner, pub, "re", reply_to=spam), 409, "comment_hidden")
    # The author may still edit or delete it.
    assert stan.patch(url(pub, f"comments/{spam}"), {"body": "sorry"}, format="json").json()["hidden"] is True
    assert stan.delete(url(pub, f"comments/{spam}")).status_code == 204
    assert_in_step(pub, 0, 1)


def test_hiding_a_thread_hides_its_replies_for_everyone_else(api, people, pub):
    stan, vera, owner = api(people["stranger"]), api(people["viewer"]), api(people["owner"])
    top = post_comment(stan, pub, "top").json()["id"]
    r1 = post_comment(vera, pub, "r1", reply_to=top).json()["id"]
    r2 = post_comment(vera, pub, "r2", reply_to=top).json()["id"]
    assert_in_step(pub, 0, 3)
    owner.patch(url(pub, f"comments/{r1}"), {"hidden": True}, format="json")
    assert_in_step(pub, 0, 2)
    owner.patch(url(pub, f"comments/{top}"), {"hidden": True}, format="json")
    assert_in_step(pub, 0, 0)
    assert api().get(url(pub)).json()["count"] == 0
    # Inside a hidden thread, hiding or deleting a reply changes no count.
    owner.patch(url(pub, f"comments/{r2}"), {"hidden": True}, format="json")
    assert_in_step(pub, 0, 0)
    owner.patch(url(pub, f"comments/{r2}"), {"hidden": False}, format="json")
    assert_in_step(pub, 0, 0)
    # The thread's author still sees it with the replies they may read.
    [thread] = stan.get(url(pub)).json()["results"]
    assert thread["hidden"] is True and [r["id"] for r in thread["replies"]] == [r2]
    owner.patch(url(pub, f"comments/{top}"), {"hidden": False}, format="json")
    assert_in_step(pub, 0, 2)  # top and r2; r1 stays hidden
    assert vera.delete(url(pub, f"comments/{r1}")).status_code == 204
    assert_in_step(pub, 0, 2)
    assert stan.delete(url(pub, f"comments/{top}")).status_code == 204
    assert_in_step(pub, 0, 0)


def test_caller_flags(api, people, pub):
    svc.comment_create(space=pub, author=people["stranger"], body="stan's")
    for who, can_edit, can_hide in [("stranger", True, False), ("owner", False, True), ("viewer", False, False),
                                    ("anonymous", False, False)]:
        [c] = api(people[who]).get(url(pub)).json()["results"]
        assert (c["can_edit"], c["can_hide"]) == (can_edit, can_hide), who


# ------------------------------------------------------------------------------ likes
def test_like_and_unlike_are_idempotent_and_counted(api, people, pub):
    stan, vera = api(people["stranger"]), api(people["viewer"])
    assert stan.post(url(pub, "like")).json() == {"liked": True, "likes": 1}
    assert stan.post(url(pub, "like")).json() == {"liked": True, "likes": 1}
    assert_in_step(pub, 1, 0)
    assert vera.post(url(pub, "like")).json() == {"liked": True, "likes": 2}
    resp = stan.delete(url(pub, "like"))
    assert resp.status_code == 200 and resp.json() == {"liked": False, "likes": 1}
    assert stan.delete(url(pub, "like")).json() == {"liked": False, "likes": 1}
    assert_in_step(pub, 1, 0)


@pytest.mark.parametrize("who,visibility,expected", [
    ("anonymous", "public", 401), ("stranger", "public", 200), ("owner", "public", 200),
    ("anonymous", "private", 404), ("stranger", "private", 404), ("viewer", "private", 200),
    ("editor", "private", 200),
])
def test_who_may_like(api, people, pub, priv, who, visibility, expected):
    space = pub if visibility == "public" else priv
    resp = api(people[who]).post(url(space, "like"))
    if expected == 200:
        assert resp.json() == {"liked": True, "likes": 1}
    else:
        assert_error(resp, expected)
    assert_in_step(space, 1 if expected == 200 else 0, 0)


def test_space_detail_and_list_show_the_counters(api, people, pub):
    stan = api(people["stranger"])
    stan.post(url(pub, "like"))
    post_comment(stan, pub, "hi")
    detail = stan.get("/api/spaces/olive/pub").json()
    assert (detail["likes"], detail["comments"], detail["liked"]) == (1, 1, True)
    assert api(people["viewer"]).get("/api/spaces/olive/pub").json()["liked"] is False
    assert api().get("/api/spaces/olive/pub").json()["liked"] is False
    item = {s["name"]: s for s in api().get("/api/spaces").json()["results"]}["pub"]
    assert (item["likes"], item["comments"]) == (1, 1)
    assert "liked" not in item  # lists never pay a query per space for it


def test_counters_stay_in_step_through_a_mixed_history(people, pub, make_user):
    users = [people[k] for k in ("owner", "editor", "viewer", "stranger")] + [make_user("u5")]
    threads = [svc.comment_create(space=pub, author=u, body=f"by {u.username}") for u in users]
    replies = [svc.comment_create(space=pub, author=users[i], body="re", reply_to=threads[(i + 1) % 5])
               for i in range(5)]
    for u in users:
        svc.like_add(space=pub, user=u)
    svc.like_add(space=pub, user=users[0])
    assert_in_step(pub, 5, 10)
    svc.comment_set_hidden(comment=threads[0], by=people["owner"], hidden=True)  # with 1 reply
    svc.comment_set_hidden(comment=replies[3], by=people["owner"], hidden=True)
    assert_in_step(pub, 5, 7)
    svc.comment_delete(comment=threads[1], by=users[1])  # with its reply
    svc.like_remove(space=pub, user=users[2])
    svc.like_remove(space=pub, user=users[2])
    assert_in_step(pub, 4, 5)
    svc.comment_set_hidden(comment=threads[0], by=people["owner"], hidden=False)
    svc.comment_edit(comment=replies[4], by=users[4], body="edited")
    assert_in_step(pub, 4, 7)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_keep_the_counters_exact(people, make_user, make_space):
    """Likes (the same user twice at once), replies, hides and deletes racing in one thread."""
    space = make_space(people["owner"], "busy")
    fans = [make_user(f"fan{i}") for i in range(6)]
    top = svc.comment_create(space=space, author=fans[0], body="top")
    replies = [svc.comment_create(space=space, author=fans[i], body=f"r{i}", reply_to=top) for i in range(1, 4)]
    jobs = [lambda u=u: svc.like_add(space=Space.objects.get(pk=space.pk), user=u) for u in fans for _ in (1, 2)]
    jobs += [
        lambda: svc.comment_set_hidden(comment=Comment.objects.get(pk=top.pk), by=people["owner"], hidden=True),
        lambda: svc.comment_set_hidden(comment=Comment.objects.get(pk=replies[0].pk), by=people["owner"],
                                       hidden=True),
        lambda: svc.comment_delete(comment=Comment.objects.get(pk=replies[1].pk), by=fans[2]),
        lambda: svc.like_remove(space=Space.objects.get(pk=space.pk), user=fans[5]),
        lambda: svc.comment_create(space=space, author=fans[4], body="late", reply_to=replies[2].pk),
    ]
    barrier = threading.Barrier(len(jobs))

    def run(job):
        try:
            barrier.wait(timeout=10)
            try:
                job()
            except svc.ServiceError:
                pass  # a reply to a thread hidden a moment before: refused, as it should be
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        list(pool.map(run, jobs))
    likes = Like.objects.filter(space=space).count()
    assert likes in (5, 6)  # fan5's unlike may run before or after their likes
    assert_in_step(space, likes, 0)  # the whole thread is hidden, whatever the order
    svc.comment_set_hidden(comment=Comment.objects.get(pk=top.pk), by=people["owner"], hidden=False)
    assert counters(space) == recount(space)


def test_writes_leave_other_space_columns_alone(people, pub):
    """The counters move by F() updates, never by Space.save(): a stale in-memory space cannot
    overwrite a column another writer (e.g. the trending job) changed meanwhile."""
    Space.objects.filter(pk=pub.pk).update(title="changed elsewhere", trending_score=42.0)
    c = svc.comment_create(space=pub, author=people["stranger"], body="x")
    svc.comment_set_hidden(comment=c, by=people["owner"], hidden=True)
    svc.comment_delete(comment=c, by=people["stranger"])
    pub.refresh_from_db()
    assert pub.title == "changed elsewhere" and pub.trending_score == 42.0


# ------------------------------------------------------------------------------ the space page
@pytest.fixture
def browser(people):
    def make(who: str | None = None) -> Client:
        client = Client()
        if who:
            client.force_login(people[who])
        return client

    return make


def test_page_renders_comments_sanitized_and_escaped(browser, people, pub):
    top = svc.comment_create(space=pub, author=people["stranger"],
                             body="**bold** <script>alert('x')</script> <img src=x onerror=alert(1)> "
                                  "[link](javascript:alert(1)) [ok](https://example.com)")
    svc.comment_create(space=pub, author=people["viewer"], body="a *reply*", reply_to=top)
    html = browser().get("/spaces/olive/pub").content.decode()
    section = html[html.index('id="comments"'):]
    assert "<strong>bold</strong>" in section and "<em>reply</em>" in section
    assert "<script>alert(" not in html and "&lt;script&gt;alert(" in section
    assert not re.search(r"<img[^>]*onerror", html)
    assert 'href="javascript:' not in html
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer ugc">ok</a>' in section
    assert f'id="comment-{top.pk}"' in section
    assert "Log in</a> to comment" in section  # anonymous: no form
    assert 'name="body"' not in section


def test_page_edit_box_escapes_the_raw_body(browser, people, pub):
    svc.comment_create(space=pub, author=people["stranger"], body="</textarea><script>alert(1)</script>")
    html = browser("stranger").get("/spaces/olive/pub").content.decode()
    assert "</textarea><script>" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in html


def test_page_hidden_comments_and_controls(browser, people, pub):
    spam = svc.comment_create(space=pub, author=people["stranger"], body="buy things")
    svc.comment_set_hidden(comment=spam, by=people["owner"], hidden=True)
    assert "buy things" not in browser("viewer").get("/spaces/olive/pub").content.decode()
    assert "buy things" not in browser().get("/spaces/olive/pub").content.decode()
    for who in ("owner", "stranger"):
        html = browser(who).get("/spaces/olive/pub").content.decode()
        assert "buy things" in html and "hidden-tag" in html
    owner_html = browser("owner").get("/spaces/olive/pub").content.decode()
    assert f"/comments/{spam.pk}/hide" in owner_html and f"/comments/{spam.pk}/edit" not in owner_html
    author_html = browser("stranger").get("/spaces/olive/pub").content.decode()
    assert f"/comments/{spam.pk}/edit" in author_html and f"/comments/{spam.pk}/hide" not in author_html


def test_page_forms_post_reply_edit_hide_delete_and_like(browser, people, pub):
    stan, owner = browser("stranger"), browser("owner")
    resp = stan.post("/spaces/olive/pub/comments", {"body": "from the page"})
    top = Comment.objects.get(space=pub, body="from the page")
    assert resp.status_code == 302 and resp["Location"] == f"/spaces/olive/pub#comment-{top.pk}"
    stan.post("/spaces/olive/pub/comments", {"body": "and a reply", "reply_to": str(top.pk)})
    reply = Comment.objects.get(space=pub, body="and a reply")
    assert reply.reply_to_id == top.pk
    stan.post(f"/spaces/olive/pub/comments/{top.pk}/edit", {"body": "edited on the page"})
    top.refresh_from_db()
    assert top.body == "edited on the page" and top.edited_at is not None
    # The owner may hide but not edit or delete.
    assert owner.post(f"/spaces/olive/pub/comments/{reply.pk}/hide", {"hidden": "1"}).status_code == 302
    assert Comment.objects.get(pk=reply.pk).hidden is True
    owner.post(f"/spaces/olive/pub/comments/{top.pk}/edit", {"body": "owner's words"})
    assert Comment.objects.get(pk=top.pk).body == "edited on the page"
    assert "Only the author" in owner.get("/spaces/olive/pub").content.decode()
    assert_in_step(pub, 0, 1)
    # An empty comment is refused with a message, nothing saved.
    stan.post("/spaces/olive/pub/comments", {"body": "   "})
    assert "cannot be empty" in stan.get("/spaces/olive/pub").content.decode()
    # Like and unlike.
    assert stan.post("/spaces/olive/pub/like", {"like": "1"}).status_code == 302
    assert_in_step(pub, 1, 1)
    html = stan.get("/spaces/olive/pub").content.decode()
    assert 'aria-pressed="true"' in html and '<span class="like-count">1</span>' in html
    stan.post("/spaces/olive/pub/like", {"like": "0"})
    assert_in_step(pub, 0, 1)
    stan.post(f"/spaces/olive/pub/comments/{top.pk}/delete")
    assert not Comment.objects.filter(space=pub).exists()
    assert_in_step(pub, 0, 0)


def test_page_forms_follow_the_access_rules(browser, people, pub, priv):
    assert browser().post("/spaces/olive/pub/comments", {"body": "x"}).status_code == 302  # to log in
    assert browser().post("/spaces/olive/pub/like", {"like": "1"})["Location"].startswith("/accounts/login/")
    assert browser("stranger").post("/spaces/olive/priv/comments", {"body": "x"}).status_code == 404
    assert browser("stranger").post("/spaces/olive/priv/like", {"like": "1"}).status_code == 404
    assert browser("stranger").get("/spaces/olive/pub/like").status_code == 405
    assert not Comment.objects.exists() and not Like.objects.exists()
    assert browser("viewer").post("/spaces/olive/priv/comments", {"body": "x"}).status_code == 302
    assert_in_step(priv, 0, 1)


def test_page_comments_are_paginated_with_cpage(browser, people, pub):
    made = [svc.comment_create(space=pub, author=people["stranger"], body=f"comment number {i}")
            for i in range(23)]
    first = browser().get("/spaces/olive/pub").content.decode()
    second = browser().get("/spaces/olive/pub?cpage=2").content.decode()
    assert "comment number 0<" in first and "comment number 19<" in first and "comment number 20<" not in first
    assert "comment number 20<" in second and "comment number 22<" in second and "comment number 0<" not in second
    assert "?cpage=2#comments" in first and "Page 1 of 2" in first
    # Replying to a thread on page 2 comes back to page 2.
    resp = browser("viewer").post("/spaces/olive/pub/comments", {"body": "late reply", "reply_to": made[21].pk})
    reply = Comment.objects.get(body="late reply")
    assert resp["Location"] == f"/spaces/olive/pub?cpage=2#comment-{reply.pk}"


def test_page_query_count_does_not_grow_with_comments(browser, people, pub):
    client = browser("stranger")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/spaces/olive/pub").status_code == 200
        return len(ctx)

    svc.comment_create(space=pub, author=people["viewer"], body="one")
    few = queries()
    for i in range(15):
        t = svc.comment_create(space=pub, author=people["viewer" if i % 2 else "editor"], body=f"t{i}")
        svc.comment_create(space=pub, author=people["owner"], body="r", reply_to=t)
    assert queries() == few


def test_page_renders_the_readme_as_sanitized_markdown(browser, people, pub):
    Space.objects.filter(pk=pub.pk).update(readme="# Shouter\n\nType *anything*.\n\n<script>alert(1)</script>")
    html = browser().get("/spaces/olive/pub").content.decode()
    readme = html[html.index('id="readme"'):]
    assert "<h1>Shouter</h1>" in readme and "<em>anything</em>" in readme
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in readme


def test_browse_cards_show_likes_and_comments_from_the_counters(browser, people, pub):
    svc.like_add(space=pub, user=people["stranger"])
    svc.comment_create(space=pub, author=people["stranger"], body="x")
    svc.comment_create(space=pub, author=people["viewer"], body="y")
    html = browser().get("/").content.decode()
    card = html[html.index('data-space="olive/pub"'):]
    card = card[:card.index("</article>")]
    assert "♥ 1" in card and "💬 2" in card
