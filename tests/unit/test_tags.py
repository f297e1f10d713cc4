"""Space tags are stored in one normal form whichever way they come in (PATCH, README), so
`?tag=` finds them: lower-cased, trimmed, inner spaces as '-', a safe character set, no
duplicates, at most 20; anything else is a 400 (API) or a CONFIG_ERROR (README) naming `tags`.
"""
from __future__ import annotations

import pytest

from spaces.access.selectors import space_filter
from spaces.records.frontmatter import ConfigError, parse_config
from spaces.records.models import Space
from spaces.records.tags import TagError, normalize_tags
from tests.unit.helpers import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hub")]


# ------------------------------------------------------------------------------ the normal form
@pytest.mark.parametrize("given,stored", [
    (["NLP", " Vision ", "nlp"], ["nlp", "vision"]),
    (["Text  Generation"], ["text-generation"]),
    (["region:us", "c++", "v1.2", "snake_case"], ["region:us", "c++", "v1.2", "snake_case"]),
    ([], []),
    ([f"t{i}" for i in range(20)] + ["T0"], [f"t{i}" for i in range(20)]),  # 21 given, 20 distinct
])
def test_normal_form(given, stored):
    assert normalize_tags(given) == stored


@pytest.mark.parametrize("given", ["nlp", {"a": 1}, None, [1], [None], [""], ["   "], ["x" * 65],
                                   ["<script>"], ["a/b"], ["-lead"], ["ünï"],
                                   [f"t{i}" for i in range(21)]])
def test_refused(given):
    with pytest.raises(TagError):
        normalize_tags(given)


# ------------------------------------------------------------------------------ PATCH
def test_patch_tags_are_normalised_and_found_by_tag_filter(api, olive, make_space):
    make_space(olive, "demo")
    resp = api(olive).patch("/api/spaces/olive/demo", {"tags": ["NLP", " Vision ", "nlp"]}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["tags"] == ["nlp", "vision"]
    assert Space.objects.get(name="demo").tags == ["nlp", "vision"]
    # What ?tag= runs: it lower-cases the query and matches stored tags exactly.
    assert list(space_filter(Space.objects.all(), tag="Vision").values_list("name", flat=True)) == ["demo"]


@pytest.mark.parametrize("tags", ["nlp", {"a": 1}, [1], [""], ["x" * 65], ["bad tag!"], ["<b>"],
                                  [f"t{i}" for i in range(21)]])
def test_patch_bad_tags_is_400_naming_tags(api, olive, make_space, tags):
    make_space(olive, "demo")
    body = assert_error(api(olive).patch("/api/spaces/olive/demo", {"tags": tags}, format="json"), 400)
    assert body["detail"].startswith("tags:"), body
    assert Space.objects.get(name="demo").tags == []


# ------------------------------------------------------------------------------ README
def test_readme_tags_get_the_same_normal_form():
    cfg = parse_config("---\ntags: [Web, ' Demo ', web, Text Generation]\n---\n", space_sdk="static",
                       files={"index.html"})
    assert cfg.tags == ["web", "demo", "text-generation"]


@pytest.mark.parametrize("value", ["['bad tag!']", "['   ']", "[<b>]"])
def test_readme_bad_tags_name_tags(value):
    with pytest.raises(ConfigError) as info:
        parse_config(f"---\ntags: {value}\n---\n", space_sdk="static", files={"index.html"})
    assert info.value.key == "tags"


def test_readme_tags_reach_the_space_normalised(api, olive, make_space, upload, repo):
    space = make_space(olive, "demo", sdk="static")
    files = dict(repo.static, **{"README.md": repo.readme(sdk="static", tags="[Web, ' Demo ', web]")})
    assert upload(api(olive), space, files).status_code == 202
    assert Space.objects.get(pk=space.pk).tags == ["web", "demo"]
