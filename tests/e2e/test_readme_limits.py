"""A README cannot take the hub down (issue 15, finding 3), on the real stack.

A 100 MB README (highly compressible: the upload is about 0.6 MB) is refused at once with an
answer naming the README and the limit; the hub keeps answering and the space's previous
revision keeps serving. Front matter over 64 KiB is refused clearly too.
"""
from __future__ import annotations

import secrets
import time

import pytest

from tests.archives import make_big_file_archive

from .stack import make_archive

pytestmark = [pytest.mark.e2e]


def static_repo(marker: str, readme: str | None = None) -> bytes:
    return make_archive({
        "README.md": readme or f"---\ntitle: Docs\nsdk: static\n---\n{marker}\n",
        "index.html": f"<p>{marker}</p>",
    })


def test_a_100_mb_readme_is_refused_quickly_and_the_hub_keeps_serving(stack):
    owner, token = stack.new_user()
    space = stack.deploy(token, owner, "docs", "static", static_repo("first-revision"), timeout=120)
    assert "first-revision" in stack.get_app(space["url"]).text

    archive = make_big_file_archive("README.md", 100 * 2**20, {"index.html": "<p>second</p>"},
                                    line=b"- padding: the same line again and again\n")
    assert len(archive) < 2**20
    started = time.monotonic()
    r = stack.upload(token, owner, "docs", archive)
    took = time.monotonic() - started
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["code"] == "readme_too_large", body
    assert "README.md is 100 MB" in body["detail"] and "the limit for a README is 1 MB" in body["detail"], body
    assert took < 5, took

    # The hub answers at once, nothing was recorded, and the first revision keeps serving.
    started = time.monotonic()
    after = stack.space(token, owner, "docs")
    assert time.monotonic() - started < 1
    assert stack.procs["web"].poll() is None
    assert after["status"] == "RUNNING" and after["running_revision"] == 1, after
    revisions = stack.api(token).get(f"{stack.hub_url}/api/spaces/{owner}/docs/revisions").json()
    listed = revisions.get("results", revisions) if isinstance(revisions, dict) else revisions
    numbers = [rev["number"] for rev in listed]
    assert numbers == [1], revisions
    assert "first-revision" in stack.get_app(space["url"]).text

    # Front matter over 64 KiB (the README itself is under the cap): a clear config error,
    # and the running revision stays.
    # Random lines: compressible filler would be refused as a compression bomb first.
    notes = "".join(f"  {secrets.token_hex(16)}\n" for _ in range(2500))
    big_front = "---\ntitle: Docs\nsdk: static\nnotes: |\n" + notes + "---\nbody\n"
    r = stack.upload(token, owner, "docs", static_repo("third", readme=big_front))
    assert r.status_code == 202, r.text
    rev = r.json()
    assert rev["status"] == "failed", rev
    assert "the front matter is longer than 64 KiB" in rev["error"], rev
    assert stack.space(token, owner, "docs")["running_revision"] == 1
    assert "first-revision" in stack.get_app(space["url"]).text
