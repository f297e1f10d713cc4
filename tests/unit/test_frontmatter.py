"""spaces.records.frontmatter.parse_config: README.md front matter (design.md §5). Plain functions, no DB."""
from __future__ import annotations

import pytest

from spaces.records.frontmatter import ConfigError, MissingAppFile, parse_config, split_front_matter

APP = {"app.py", "README.md"}
SITE = {"index.html", "README.md"}


def fm(body: str, tail: str = "\n# Hello\n") -> str:
    return f"---\n{body.strip()}\n---\n{tail}"


def error(text, *, sdk="gradio", files=APP) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, space_sdk=sdk, files=files)
    return info.value


# ------------------------------------------------------------------------------ basics
def test_full_config():
    cfg = parse_config(fm("""
title: Cats vs dogs
emoji: 🐱
colorFrom: red
colorTo: blue
sdk: gradio
sdk_version: 6.31.0
python_version: "3.11"
app_file: src/main.py
app_port: 7861
short_description: Tells them apart
tags: [Vision, cats]
pinned: true
license: mit
startup_duration_timeout: 30m
"""), space_sdk="gradio", files={"src/main.py"})
    assert cfg.sdk == "gradio"
    assert (cfg.title, cfg.emoji, cfg.color_from, cfg.color_to) == ("Cats vs dogs", "🐱", "red", "blue")
    assert cfg.sdk_version == "6.31.0" and cfg.python_version == "3.11"
    assert cfg.app_file == "src/main.py" and cfg.app_port == 7861
    assert cfg.short_description == "Tells them apart"
    assert cfg.tags == ["vision", "cats"]
    assert cfg.pinned is True and cfg.license == "mit"
    assert cfg.startup_duration_timeout == 1800
    assert cfg.readme_body == "\n# Hello\n"
    meta = cfg.as_metadata()
    assert "readme_body" not in meta and meta["app_port"] == 7861 and meta["tags"] == ["vision", "cats"]


@pytest.mark.parametrize("text", [None, "", "# Just a README\n", "no front matter\n---\nx: 1\n---\n"])
def test_no_front_matter_uses_the_space_and_defaults(text):
    cfg = parse_config(text, space_sdk="gradio", files=APP)
    assert cfg.sdk == "gradio" and cfg.app_file == "app.py" and cfg.app_port == 7860
    assert cfg.tags == [] and cfg.startup_duration_timeout == 0
    assert cfg.readme_body == (text or "")


@pytest.mark.parametrize("sdk,files,app_file,port", [
    ("gradio", {"app.py"}, "app.py", 7860),
    ("streamlit", {"app.py"}, "app.py", 8501),
    ("static", {"index.html"}, "index.html", 0),
    ("docker", {"Dockerfile"}, "", 7860),
])
def test_sdk_defaults(sdk, files, app_file, port):
    cfg = parse_config(fm(f"sdk: {sdk}"), space_sdk=sdk, files=files)
    assert (cfg.app_file, cfg.app_port) == (app_file, port)


def test_crlf_line_endings():
    cfg = parse_config("---\r\ntitle: Windows\r\nsdk: gradio\r\n---\r\nbody\r\n", space_sdk="gradio", files=APP)
    assert cfg.title == "Windows"
    assert cfg.readme_body == "body\r\n"


def test_front_matter_at_end_of_file():
    cfg = parse_config("---\ntitle: Only\n---", space_sdk="gradio", files=APP)
    assert cfg.title == "Only" and cfg.readme_body == ""


def test_numbers_become_strings():
    cfg = parse_config(fm("title: 2048\nshort_description: 3.5"), space_sdk="gradio", files=APP)
    assert cfg.title == "2048" and cfg.short_description == "3.5"


# ------------------------------------------------------------------------------ sdk
def test_sdk_mismatch_names_sdk():
    exc = error(fm("sdk: streamlit"), sdk="gradio")
    assert exc.key == "sdk"
    assert "`sdk`" in str(exc) and "streamlit" in str(exc) and "gradio" in str(exc)


@pytest.mark.parametrize("value", ["flask", "Gradio", "1", "~"])
def test_unknown_sdk(value):
    exc = error(fm(f"sdk: {value}"))
    assert exc.key == "sdk"


# ------------------------------------------------------------------------------ YAML
@pytest.mark.parametrize("text,line", [
    ("---\ntitle: a\nsdk: gradio\ncolorFrom: red: x\n---\n", 4),
    ("---\ntitle: a\n  sdk: gradio\n---\n", 3),
    ("---\ntitle: ok\nemoji: \"unterminated\n---\n", None),
])
def test_bad_yaml_names_the_line(text, line):
    exc = error(text)
    assert "YAML" in str(exc)
    if line is not None:
        assert f"line {line}" in str(exc)
    assert exc.key == ""


@pytest.mark.parametrize("body", ["- a\n- b", "just a string", "42"])
def test_front_matter_must_be_a_mapping(body):
    exc = error(fm(body))
    assert "mapping" in str(exc)


def test_empty_front_matter_mapping():
    cfg = parse_config("---\n\n---\nbody\n", space_sdk="gradio", files=APP)
    assert cfg.sdk == "gradio" and cfg.readme_body == "body\n"


# ------------------------------------------------------------------------------ fields
@pytest.mark.parametrize("key", ["colorFrom", "colorTo"])
@pytest.mark.parametrize("value", ["chartreuse", "Red", "#ff0000"])
def test_bad_colors_name_the_key(key, value):
    exc = error(fm(f'{key}: "{value}"'))
    assert exc.key == key and f"`{key}`" in str(exc)


@pytest.mark.parametrize("value", ["[nlp, vision]", "[]", "~"])
def test_tags_ok(value):
    parse_config(fm(f"tags: {value}"), space_sdk="gradio", files=APP)


@pytest.mark.parametrize("value", ["nlp", "{a: 1}", "[1, 2]", "['']", "[" + ", ".join(f"t{i}" for i in range(21)) + "]",
                                   "[" + "x" * 65 + "]", "[[nested]]"])
def test_tags_not_a_list_of_short_strings(value):
    exc = error(fm(f"tags: {value}"))
    assert exc.key == "tags"


@pytest.mark.parametrize("value", ["0", "-1", "65536", "70000", "'7860'", "true", "7860.5", "[7860]"])
def test_app_port_out_of_range_or_not_a_number(value):
    exc = error(fm(f"app_port: {value}"))
    assert exc.key == "app_port"


@pytest.mark.parametrize("port", [1, 80, 65535])
def test_app_port_in_range(port):
    assert parse_config(fm(f"app_port: {port}"), space_sdk="gradio", files=APP).app_port == port


def test_streamlit_port_is_fixed():
    assert error(fm("sdk: streamlit\napp_port: 8000"), sdk="streamlit").key == "app_port"
    assert parse_config(fm("app_port: 8501"), space_sdk="streamlit", files=APP).app_port == 8501


@pytest.mark.parametrize("value,seconds", [("30m", 1800), ("1h", 3600), ("45", 45), ("90s", 90), ("10", 10),
                                           ("'2 m'", 120)])
def test_startup_duration_timeout(value, seconds):
    cfg = parse_config(fm(f"startup_duration_timeout: {value}"), space_sdk="gradio", files=APP)
    assert cfg.startup_duration_timeout == seconds


@pytest.mark.parametrize("value", ["5s", "9", "2h", "25h", "2d", "soon", "1.5h", "-30m", "30 minutes"])
def test_startup_duration_timeout_invalid(value):
    exc = error(fm(f"startup_duration_timeout: {value}"))
    assert exc.key == "startup_duration_timeout"


def test_startup_duration_timeout_above_the_operators_cap_names_key_and_cap(settings):
    # A start holds a worker until its timeout: the operator's cap bounds it (finding 2).
    settings.SPACE_STARTUP_TIMEOUT_MAX = 1800
    exc = error(fm("startup_duration_timeout: 31m"))
    assert exc.key == "startup_duration_timeout"
    assert "30m" in str(exc) and "SPACE_STARTUP_TIMEOUT_MAX" in str(exc)
    cfg = parse_config(fm("startup_duration_timeout: 30m"), space_sdk="gradio", files=APP)
    assert cfg.startup_duration_timeout == 1800
    settings.SPACE_STARTUP_TIMEOUT_MAX = 86400
    cfg = parse_config(fm("startup_duration_timeout: 24h"), space_sdk="gradio", files=APP)
    assert cfg.startup_duration_timeout == 86400


@pytest.mark.parametrize("app_file", ["/etc/passwd", "../app.py", "src/../../x.py", "a\\\\b.py"])
def test_app_file_must_stay_in_the_repo(app_file):
    exc = error(fm(f'app_file: "{app_file}"'))
    assert exc.key == "app_file"
    assert not isinstance(exc, MissingAppFile)


def test_missing_app_file():
    with pytest.raises(MissingAppFile) as info:
        parse_config(fm("app_file: main.py"), space_sdk="gradio", files=APP)
    assert info.value.app_file == "main.py"
    assert info.value.key == "app_file"
    with pytest.raises(MissingAppFile):
        parse_config(fm("sdk: static"), space_sdk="static", files={"README.md"})


def test_app_file_normalised():
    cfg = parse_config(fm("app_file: ./src//main.py"), space_sdk="gradio", files={"src/main.py"})
    assert cfg.app_file == "src/main.py"


def test_docker_ignores_app_file():
    cfg = parse_config(fm("sdk: docker\napp_port: 8080"), space_sdk="docker", files={"Dockerfile"})
    assert cfg.app_file == "" and cfg.app_port == 8080


@pytest.mark.parametrize("body,key", [
    ("title: " + "x" * 97, "title"),
    ("short_description: " + "x" * 201, "short_description"),
    ("title: [a, b]", "title"),
    ("title: true", "title"),
    ("emoji: {a: 1}", "emoji"),
    ("pinned: yes please", "pinned"),
    ("pinned: 1", "pinned"),
    ("python_version: '2.7'", "python_version"),
    ("sdk_version: latest", "sdk_version"),
    ("sdk_version: '1.2.3.4.5'", "sdk_version"),
])
def test_field_errors_name_the_key(body, key):
    exc = error(fm(body))
    assert exc.key == key
    assert f"`{key}`" in str(exc)


def test_sdk_version_only_for_gradio_and_streamlit():
    assert error(fm("sdk: static\nsdk_version: 1.0"), sdk="static", files=SITE).key == "sdk_version"
    assert parse_config(fm("sdk: streamlit\nsdk_version: 1.67.0"), space_sdk="streamlit",
                        files=APP).sdk_version == "1.67.0"


def test_unknown_keys_are_ignored():
    cfg = parse_config(fm("models: [a/b]\ndatasets: [c/d]\nhf_oauth: true"), space_sdk="gradio", files=APP)
    assert cfg.sdk == "gradio"


def test_split_front_matter():
    data, body = split_front_matter("---\na: 1\n---\nrest\n")
    assert data == {"a": 1} and body == "rest\n"
    assert split_front_matter("nothing") == ({}, "nothing")
