"""README.md front matter: the Hugging Face Spaces keys that apply here (design.md §5).

`read_config` returns a SpaceConfig or raises ConfigError naming the key at fault; the build
never starts on a config error (the space shows CONFIG_ERROR with that message).
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from spaces.records.tags import TagError, normalize_tags

COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
SDKS = {"gradio", "streamlit", "static", "docker"}
DEFAULT_APP_FILE = {"gradio": "app.py", "streamlit": "app.py", "static": "index.html"}
DEFAULT_PORT = {"gradio": 7860, "streamlit": 8501, "docker": 7860}
PYTHON_VERSIONS = {"3", "3.11"}  # what the locally made base image carries
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}$")
DURATION_RE = re.compile(r"^([0-9]+)\s*(s|m|h)?$")
FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.S)
# The YAML read in the upload request: at most this much, with libyaml (README.md itself is
# capped by README_MAX_BYTES). The pure-Python loader took 22 s and 650 MB on 4 MB of YAML.
FRONT_MATTER_MAX_BYTES = 64 * 1024
DEFAULT_README_MAX_BYTES = 2**20

log = logging.getLogger(__name__)
if getattr(yaml, "CSafeLoader", None) is None:  # PyYAML built without libyaml
    log.warning("PyYAML has no libyaml (yaml.CSafeLoader): README front matter is parsed by the "
                "slow pure-Python loader; install a PyYAML wheel built with libyaml")
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(f"README.md `{key}`: {message}" if key else f"README.md: {message}")
        self.key = key


@dataclass
class SpaceConfig:
    sdk: str
    title: str = ""
    emoji: str = ""
    color_from: str = ""
    color_to: str = ""
    sdk_version: str = ""
    python_version: str = ""
    app_file: str = ""
    app_port: int = 0
    short_description: str = ""
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    # Hugging Face's key: the app may be framed only by the hub's own page (the proxy sends
    # frame-ancestors; spaces/embeds, runner/proxy.py).
    disable_embedding: bool = False
    license: str = ""
    startup_duration_timeout: int = 0  # seconds, 0 = hub default
    # Hugging Face's key: the hardware tier asked for; applies only when the owner chose none,
    # within the owner's quota, and only if this hub has the tier (spaces/nodes/tiers.py).
    suggested_hardware: str = ""
    readme_body: str = ""

    def as_metadata(self) -> dict:
        data = asdict(self)
        data.pop("readme_body")
        return data


class _Loader(_SafeBase):  # type: ignore[misc,valid-type]
    """The safe loader (libyaml's when present) that keeps floats and dates as the text written.

    No key here wants a float or a date: as numbers `sdk_version: 6.30` would become "6.3" and
    `python_version: 3.10` "3.1", and an impossible date (2020-02-30) raises ValueError.
    """


def _as_written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _as_written)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_written)


def _shown(value) -> str:
    """A short description of a front matter value for an error message.

    Containers are named, never printed: YAML aliases can make a few lines into a structure
    of millions of items that repr() would expand.
    """
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (set, frozenset)):
        return "a set"
    if isinstance(value, dict):
        return "a mapping"
    if value is None or isinstance(value, (str, bool, int)):
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a long number"
        return text if len(text) <= 40 else text[:39] + "…"
    return f"a value of type {type(value).__name__}"


def split_front_matter(text: str) -> tuple[dict, str]:
    match = FRONT_MATTER_RE.match(text)
    if not match:
        return {}, text
    if len(match.group(1).encode("utf-8", errors="replace")) > FRONT_MATTER_MAX_BYTES:
        raise ConfigError("", f"the front matter is longer than {FRONT_MATTER_MAX_BYTES // 1024} KiB; "
                              "keep it to the keys the hub reads and move the rest below it")
    try:
        data = yaml.load(match.group(1), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark else ""
        raise ConfigError("", f"the front matter is not valid YAML{where}") from exc
    except RecursionError as exc:
        raise ConfigError("", "the front matter is nested too deeply") from exc
    except ValueError as exc:
        # PyYAML lets constructor failures through as ValueError: `!!int x`, 5000-digit numbers.
        raise ConfigError("", f"the front matter holds a value YAML cannot read ({str(exc)[:80]})") from exc
    if not isinstance(data, dict):
        raise ConfigError("", "the front matter must be a mapping of keys to values")
    return data, text[match.end():]


def _str(data: dict, key: str, *, max_len: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(key, f"must be a string, not {_shown(value)}")
    value = str(value).strip()
    if len(value) > max_len:
        raise ConfigError(key, f"is longer than {max_len} characters")
    return value


def _safe_relative(key: str, value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ConfigError(key, f"{value!r} must be a path inside the repo")
    return str(path)


def parse_config(text: str | None, *, space_sdk: str, files: set[str]) -> SpaceConfig:
    """Validate the README front matter against the space and the uploaded files."""
    data, body = split_front_matter(text or "")
    sdk = data.get("sdk", space_sdk)
    if not isinstance(sdk, str) or sdk not in SDKS:
        raise ConfigError("sdk", f"{_shown(sdk)} is not one of {', '.join(sorted(SDKS))}")
    if sdk != space_sdk:
        raise ConfigError("sdk", f"says {sdk!r} but the space was created with sdk {space_sdk!r}")
    cfg = SpaceConfig(sdk=sdk, readme_body=body)
    cfg.title = _str(data, "title", max_len=96)
    cfg.emoji = _str(data, "emoji", max_len=16)
    cfg.short_description = _str(data, "short_description", max_len=200)
    cfg.license = _str(data, "license", max_len=64)
    for key, attr in (("colorFrom", "color_from"), ("colorTo", "color_to")):
        color = _str(data, key, max_len=16)
        if color and color not in COLORS:
            raise ConfigError(key, f"{color!r} is not one of {', '.join(sorted(COLORS))}")
        setattr(cfg, attr, color)

    cfg.sdk_version = _str(data, "sdk_version", max_len=32)
    if cfg.sdk_version and (sdk not in ("gradio", "streamlit") or not VERSION_RE.match(cfg.sdk_version)):
        raise ConfigError("sdk_version", f"{cfg.sdk_version!r} is not a version of the {sdk} SDK "
                          "(expected something like 6.31.0)")
    cfg.python_version = _str(data, "python_version", max_len=16)
    if cfg.python_version and cfg.python_version not in PYTHON_VERSIONS:
        raise ConfigError("python_version", f"{cfg.python_version!r} is not available on this hub "
                          f"(available: {', '.join(sorted(PYTHON_VERSIONS))})")

    app_file = _str(data, "app_file", max_len=200)
    if sdk in DEFAULT_APP_FILE:
        cfg.app_file = _safe_relative("app_file", app_file) if app_file else DEFAULT_APP_FILE[sdk]
        if cfg.app_file not in files:
            raise MissingAppFile(cfg.app_file)

    if "app_port" in data:
        port = data["app_port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ConfigError("app_port", f"{_shown(port)} is not a port number (1-65535)")
        if sdk == "streamlit" and port != 8501:
            raise ConfigError("app_port", "Streamlit spaces listen on 8501")
        cfg.app_port = port
    else:
        cfg.app_port = DEFAULT_PORT.get(sdk, 0)

    tags = data.get("tags")
    try:
        cfg.tags = normalize_tags(tags) if tags is not None else []
    except TagError as exc:
        raise ConfigError("tags", str(exc)) from exc

    pinned = data.get("pinned", False)
    if not isinstance(pinned, bool):
        raise ConfigError("pinned", "must be true or false")
    cfg.pinned = pinned

    cfg.suggested_hardware = _str(data, "suggested_hardware", max_len=63)
    disable_embedding = data.get("disable_embedding", False)
    if not isinstance(disable_embedding, bool):
        raise ConfigError("disable_embedding", f"{_shown(disable_embedding)} is not true or false")
    cfg.disable_embedding = disable_embedding

    timeout = data.get("startup_duration_timeout")
    if timeout is not None:
        match = (DURATION_RE.match(str(timeout).strip())
                 if isinstance(timeout, (str, int)) and not isinstance(timeout, bool) else None)
        if not match:
            raise ConfigError("startup_duration_timeout", f"{_shown(timeout)} is not a duration like 30m or 1h")
        seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
        cap = _startup_timeout_cap()
        if not 10 <= seconds <= cap:
            raise ConfigError("startup_duration_timeout",
                              f"must be between 10 s and {_duration(cap)} (this hub's cap, SPACE_STARTUP_TIMEOUT_MAX)")
        cfg.startup_duration_timeout = seconds
    return cfg


class MissingAppFile(ConfigError):
    def __init__(self, app_file: str):
        super().__init__("app_file", f"the app file {app_file!r} is not in the upload")
        self.app_file = app_file


def read_config(snapshot: Path, files: set[str], *, space_sdk: str,
                max_bytes: int = DEFAULT_README_MAX_BYTES) -> SpaceConfig:
    readme = snapshot / "README.md"
    text = None
    if readme.is_file():
        # Bounded read: the upload check caps README.md itself, but a link may point at a
        # larger file of the repo.
        with readme.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ConfigError("", f"README.md is larger than {max_bytes // 1024} KiB, the limit "
                                  "for a README (README_MAX_BYTES)")
        text = data.decode("utf-8", errors="replace")
    return parse_config(text, space_sdk=space_sdk, files=files)


def _startup_timeout_cap() -> int:
    """The operator's cap on `startup_duration_timeout` (a start holds a worker until then)."""
    from django.conf import settings  # here, not at the top: the parser itself needs no Django

    return settings.SPACE_STARTUP_TIMEOUT_MAX


def _duration(seconds: int) -> str:
    """1h, 90m or 45 s: a cap as the README key is written."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds} s"
