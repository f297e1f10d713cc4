"""Embedding and badges (issue 14): README `disable_embedding`, the frames flag the proxy reads,
the embed dialog (public spaces only) and the SVG status badge (private = missing = 404)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from runner import proxy
from spaces.embeds.badge import badge_svg
from spaces.lifecycle.routes import proxy_config
from spaces.records.frontmatter import ConfigError, parse_config
from spaces.records.models import Space
from spaces.records.services import space_transition

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


def test_disable_embedding_is_read_and_validated():
    cfg = parse_config("---\nsdk: static\ndisable_embedding: true\n---\n", space_sdk="static", files={"index.html"})
    assert cfg.disable_embedding is True and cfg.as_metadata()["disable_embedding"] is True
    assert parse_config("---\nsdk: static\n---\n", space_sdk="static", files={"index.html"}).disable_embedding is False
    for bad in ("yes please", "1", "[true]"):
        with pytest.raises(ConfigError) as exc:
            parse_config(f"---\nsdk: static\ndisable_embedding: {bad}\n---\n", space_sdk="static",
                         files={"index.html"})
        assert exc.value.key == "disable_embedding" and "true or false" in str(exc.value)


def _files(disable: bool | None) -> dict:
    front = "sdk: static\n" + ("" if disable is None else f"disable_embedding: {str(disable).lower()}\n")
    return {"README.md": f"---\n{front}---\n# hi\n", "index.html": "<h1>hi</h1>"}


def test_the_serving_revisions_readme_sets_the_proxys_flag(olive, make_space, push):
    space = make_space(olive, "demo")
    cfg = proxy_config()
    push(space, _files(True), olive)
    assert not proxy.embedding_allowed(space.label, cfg)
    assert (cfg.states_dir / f"{space.label}.noembed").exists()
    push(space, _files(None), olive)
    assert proxy.embedding_allowed(space.label, cfg)


def test_the_badge_shows_live_status(olive, make_space, push):
    space = make_space(olive, "demo")
    resp = Client().get("/spaces/olive/demo/badge.svg")
    assert resp.status_code == 200 and resp["Content-Type"] == "image/svg+xml"
    assert "no-cache" in resp["Cache-Control"] and "default-src 'none'" in resp["Content-Security-Policy"]
    root = ET.fromstring(resp.content)
    assert root.find("{http://www.w3.org/2000/svg}title").text == "olive/demo: no app yet"
    push(space, _files(None), olive)
    assert Space.objects.get(pk=space.pk).status == "RUNNING"
    assert b"olive/demo: running" in Client().get("/spaces/olive/demo/badge.svg").content
    space_transition(space, "PAUSED")
    assert b">paused<" in Client().get("/spaces/olive/demo/badge.svg").content


def test_a_private_badge_answers_as_a_missing_one_even_to_its_owner(olive, make_space):
    make_space(olive, "zzyyxx", visibility="private")
    owner = Client()
    owner.force_login(olive)
    private = owner.get("/spaces/olive/zzyyxx/badge.svg")
    missing = owner.get("/spaces/olive/qqzzqq/badge.svg")
    assert private.status_code == missing.status_code == 404
    csrf = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')
    assert (csrf.sub(b"", private.content.replace(b"zzyyxx", b"X"))
            == csrf.sub(b"", missing.content.replace(b"qqzzqq", b"X")))


def test_badge_text_is_escaped_and_bounded():
    svg = badge_svg(label="<o>/&x" + "y" * 80, status="RUNNING")
    root = ET.fromstring(svg)                                  # well-formed
    title = root.find("{http://www.w3.org/2000/svg}title").text
    assert title.startswith("<o>/&x") and len(title) < 70 and "<script" not in svg


def test_the_embed_dialog_is_offered_for_public_spaces_only(olive, make_space, push, client):
    public = make_space(olive, "demo")
    push(public, _files(None), olive)
    make_space(olive, "secret", visibility="private")
    client.force_login(olive)
    page = client.get("/spaces/olive/demo").content.decode()
    assert 'id="embed-dialog"' in page and f'src="{public.url}"' in page and "/spaces/olive/demo/badge.svg" in page
    assert 'id="embed-disabled"' not in page
    assert 'id="embed-dialog"' not in client.get("/spaces/olive/secret").content.decode()
    push(public, _files(True), olive)
    page = client.get("/spaces/olive/demo").content.decode()
    assert 'id="embed-disabled"' in page and 'id="embed-iframe"' not in page
