"""README front matter of the wrong YAML type: always a ConfigError naming the key, never a crash.

A value of the wrong type (a list where a string belongs, a mapping, a number, a date...) must
end as CONFIG_ERROR with a message naming the key (README.md, design.md §5), never as a
TypeError (HTTP 500). The unit half runs parse_config; the API half uploads such a README.
"""
from __future__ import annotations

import pytest

from spaces.records.frontmatter import ConfigError, parse_config

APP = {"app.py", "README.md"}

# (front matter line, the key the error must name), one or more per key of design.md §5.
WRONG_TYPES = [
    ("sdk: [gradio]", "sdk"),
    ("sdk: {a: 1}", "sdk"),
    ("sdk: 3", "sdk"),
    ("sdk: true", "sdk"),
    ("sdk: 2024-01-01", "sdk"),
    ("title: {a: 1}", "title"),
    ("title: [a]", "title"),
    ("emoji: [x]", "emoji"),
    ("colorFrom: [red]", "colorFrom"),
    ("colorTo: {a: b}", "colorTo"),
    ("sdk_version: [6]", "sdk_version"),
    ("python_version: {a: 1}", "python_version"),
    ("app_file: [app.py]", "app_file"),
    ("app_port: abc", "app_port"),
    ("app_port: [7860]", "app_port"),
    ("app_port: {a: 1}", "app_port"),
    ("short_description: [x]", "short_description"),
    ("tags: x", "tags"),
    ("tags: {a: 1}", "tags"),
    ("tags: [[a]]", "tags"),
    ("tags: [{a: 1}]", "tags"),
    ("pinned: [true]", "pinned"),
    ("license: {a: 1}", "license"),
    ("startup_duration_timeout: [30m]", "startup_duration_timeout"),
    ("startup_duration_timeout: {a: 1}", "startup_duration_timeout"),
    ("startup_duration_timeout: true", "startup_duration_timeout"),
]


def fm(body: str) -> str:
    return f"---\n{body}\n---\n# Hello\n"


@pytest.mark.parametrize("line,key", WRONG_TYPES)
def test_wrong_type_is_a_config_error_naming_the_key(line, key):
    with pytest.raises(ConfigError) as info:
        parse_config(fm(line), space_sdk="gradio", files=APP)
    assert info.value.key == key
    assert f"`{key}`" in str(info.value)


@pytest.mark.parametrize("key", ["sdk", "app_port", "startup_duration_timeout", "title"])
def test_alias_bomb_is_refused_without_expanding_it(key):
    """YAML aliases make a 9**7-element list out of a few lines (more levels, more powers of 9):
    an error message must never print it."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefg"):
        prev = "abcdefg"[i]
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    lines.append(f"{key}: *g")
    with pytest.raises(ConfigError) as info:
        parse_config(fm("\n".join(lines)), space_sdk="gradio", files=APP)
    assert info.value.key == key
    assert len(str(info.value)) < 300


def test_deeply_nested_value_is_a_config_error():
    nested = "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigError) as info:
        parse_config(fm("title: " + nested), space_sdk="gradio", files=APP)
    assert "README.md" in str(info.value)


def test_long_wrong_value_is_shortened_in_the_message():
    with pytest.raises(ConfigError) as info:
        parse_config(fm("sdk: " + "x" * 5000), space_sdk="gradio", files=APP)
    assert info.value.key == "sdk" and len(str(info.value)) < 300


@pytest.mark.parametrize("line,attr,value", [
    # YAML reads 6.30 as the float 6.3 and 3.10 as 3.1: versions keep the digits as written.
    ("sdk_version: 6.30", "sdk_version", "6.30"),
    ("python_version: 3.11", "python_version", "3.11"),
    ("sdk_version: 6", "sdk_version", "6"),
    ("title: 2048", "title", "2048"),
    ("short_description: 3.50", "short_description", "3.50"),
    ("emoji: 123", "emoji", "123"),
])
def test_numbers_become_the_strings_as_written(line, attr, value):
    cfg = parse_config(fm(line), space_sdk="gradio", files=APP)
    assert getattr(cfg, attr) == value


def test_python_version_310_is_not_read_as_31():
    with pytest.raises(ConfigError) as info:
        parse_config(fm("python_version: 3.10"), space_sdk="gradio", files=APP)
    assert info.value.key == "python_version" and "'3.10'" in str(info.value)


# ------------------------------------------------------------------------------ through the API
@pytest.mark.django_db
@pytest.mark.usefixtures("hub")
@pytest.mark.parametrize("line,key", [("sdk: [gradio]", "sdk"), ("sdk: {a: 1}", "sdk"),
                                      ("app_port: [1]", "app_port"), ("tags: x", "tags")])
def test_upload_with_wrong_type_is_config_error_not_500(api, olive, make_space, upload, line, key):
    space = make_space(olive, "demo", sdk="gradio")
    resp = upload(api(olive), space, {"README.md": fm(line), "app.py": "print(1)\n"})
    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "failed" and f"`{key}`" in resp.json()["error"]
    body = api(olive).get("/api/spaces/olive/demo").json()
    assert body["status"] == "CONFIG_ERROR" and f"`{key}`" in body["error"]


@pytest.mark.parametrize("line,attr,value", [
    # Dates are no type any key here wants: they stay the text written, even impossible ones
    # (PyYAML raises ValueError on 2020-02-30 while reading it).
    ("title: 2020-02-30", "title", "2020-02-30"),
    ("short_description: 2024-01-01 10:00:00", "short_description", "2024-01-01 10:00:00"),
])
def test_dates_stay_text(line, attr, value):
    assert getattr(parse_config(fm(line), space_sdk="gradio", files=APP), attr) == value


@pytest.mark.parametrize("line", [pytest.param("title: " + "1" * 5000, id="5000-digit-number"), "title: !!int x",
                                  "app_port: !!int x"])
def test_values_yaml_cannot_construct_are_config_errors(line):
    with pytest.raises(ConfigError) as info:
        parse_config(fm(line), space_sdk="gradio", files=APP)
    assert str(info.value).startswith("README.md") and len(str(info.value)) < 300


@pytest.mark.parametrize("line", ["title: !!float x", "sdk: !!timestamp 2020-13-45", "title: !!set {a}",
                                  "title: !!binary aGk=", "tags: !!set {a}"])
def test_explicit_yaml_tags_never_crash(line):
    try:
        parse_config(fm(line), space_sdk="gradio", files=APP)
    except ConfigError as exc:
        assert str(exc).startswith("README.md")
