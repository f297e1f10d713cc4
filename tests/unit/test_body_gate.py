"""spaces/access/body_gate.py: a large body is refused from the headers alone, before it is read.
The same on the real stack, over a socket that sends only the start of the body:
tests/e2e/test_quotas.py::test_large_bodies_are_refused_before_they_are_read."""
from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError

from spaces.access import body_gate


def call(headers: dict[str, str], *, path="/api/spaces/olive/demo/revisions", method="POST"):
    """Run the gate around an app that records whether it ran; the body is never offered
    unless someone reads it. Returns (status, headers, app_ran, body_reads)."""
    sent, reads, ran = [], [], []

    async def app(scope, receive, send):
        ran.append(True)

    async def receive():
        reads.append(True)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("localhost", 8000), "client": ("127.0.0.1", 1),
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "localhost", **headers}.items()]}
    asyncio.run(body_gate.BodyGate(app)(scope, receive, send))
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    return (start["status"] if start else None), dict(start["headers"]) if start else {}, bool(ran), len(reads)


def test_an_anonymous_large_body_is_refused_unread():
    status, headers, ran, reads = call({"content-length": str(50 * 2**20)})
    assert (status, ran, reads) == (401, False, 0)
    assert headers[b"connection"] == b"close"


def test_a_body_over_the_upload_cap_is_413_whoever_sends_it(settings):
    status, _, ran, reads = call({"content-length": str(settings.UPLOAD_MAX_BYTES + 2 * 2**20),
                                  "authorization": "Bearer dh_anything"})
    assert (status, ran, reads) == (413, False, 0)


def test_small_bodies_and_reads_pass_through():
    assert call({"content-length": "100"})[2] is True
    assert call({}, method="GET")[2] is True


def test_a_database_that_does_not_answer_is_a_503_with_retry_after(monkeypatch):
    def down(scope, length):
        raise OperationalError("connection refused")

    monkeypatch.setattr(body_gate, "decide", down)
    status, headers, ran, reads = call({"content-length": str(5 * 2**20)})
    assert (status, ran, reads) == (503, False, 0)
    assert headers[b"retry-after"] == b"5"


@pytest.mark.parametrize("length", ["abc", "-"])
def test_a_malformed_length_is_a_400(length):
    status, _, ran, reads = call({"content-length": length})
    assert (status, ran, reads) == (400, False, 0)


# ------------------------------------------------------------------------------ git (issue 10)
def _basic(user: str, token: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


@pytest.mark.django_db(transaction=True)  # the gate reads in a thread of its own
def test_git_bodies_are_judged_like_the_git_views(make_user, make_space, make_token, settings):
    olive, stan = make_user("olive"), make_user("stan")
    make_space(olive, "demo", sdk="static")
    make_space(olive, "secret", sdk="static", visibility="private")
    chunked = {"transfer-encoding": "chunked"}
    push = "/spaces/olive/demo.git/git-receive-pack"
    # An anonymous push: 401 with the challenge git needs before it sends credentials.
    status, headers, ran, _ = call(chunked, path=push)
    assert (status, ran) == (401, False) and headers[b"www-authenticate"].startswith(b"Basic")
    # An anonymous clone of a public space passes (a chunked negotiation too); of a private one 401.
    assert call(chunked, path="/spaces/olive/demo/git-upload-pack")[2] is True
    assert call(chunked, path="/spaces/olive/secret/git-upload-pack")[0] == 401
    # A stranger: 404 on the private space, 403 pushing to the public one; a read token 403.
    assert call({**chunked, "authorization": _basic("stan", make_token(stan))},
                path="/spaces/olive/secret/git-upload-pack")[0] == 404
    assert call({**chunked, "authorization": _basic("stan", make_token(stan))}, path=push)[0] == 403
    assert call({**chunked, "authorization": _basic("olive", make_token(olive, "read"))}, path=push)[0] == 403
    assert call({**chunked, "authorization": _basic("stan", make_token(olive))}, path=push)[0] == 401
    assert call({**chunked, "authorization": _basic("olive", make_token(olive))}, path=push)[2] is True
    # A push may be larger than an upload, up to GIT_PUSH_MAX_BYTES.
    size = str(settings.UPLOAD_MAX_BYTES + 5 * 2**20)
    settings.GIT_PUSH_MAX_BYTES = settings.UPLOAD_MAX_BYTES + 10 * 2**20
    assert call({"content-length": size, "authorization": _basic("olive", make_token(olive))}, path=push)[2] is True
