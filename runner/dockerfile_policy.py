"""Which images a `sdk: docker` Dockerfile may build from (README "Security: what a Dockerfile may
start FROM").

A revision image holds its space's code, private or not, under a predictable name; an image
a build starts FROM is readable by that build. So a repo's Dockerfile may start only from
images the operator allows:

* the base image (`BASE_IMAGE`) and the SDK images (`demohub/sdk-<sdk>:<version>`, label
  `demohub.role=sdk`);
* images the operator lists in `BUILD_ALLOWED_IMAGES`: by digest (`sha256:<id>` or
  `name@sha256:<digest>`), or by name when the engine's image under that name carries a
  `demohub.role` label of `base` or `sdk` (a name alone could later point at anything);

and never from an image with a `demohub.space` label (every revision image, of any
installation on the engine) or a name like a revision image's (`demohub-*/...`).

The decision is made on the reference as written first: a name that is not on the list is
refused without asking the engine, so the refusal reads the same for another user's private
space and for a name that exists nowhere. Only listed names are looked up, and only to verify
them. Each allowed FROM is then rewritten to the verified image's bare id: the legacy builder
pulls a missing FROM image even with pull=False, but a bare 64-hex id is never pulled (the
engine refuses it as a repository name), and the id is exactly the image that was checked.

Everything else that could name an image or fetch from outside is refused before the
engine sees the Dockerfile, each with the line it is on: build arguments in FROM, `COPY
--from=` anything but an earlier stage, RUN options (`--mount=from=...`; the legacy builder
has none), `ADD <url>`, ONBUILD, the `syntax` directive, unknown instructions. The file is
read with dockerfile-parse, which follows Docker's rules (continuations, comments inside
them, case, tabs, the escape directive); where it could disagree with the engine it sees an
unknown instruction or an empty FROM, both refused.

Plain Python, no Django, no engine: the backend passes `inspect` (a reference -> the engine's
image attributes, or None).
"""
from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from .exceptions import BuildError

log = logging.getLogger(__name__)

MAX_DOCKERFILE_BYTES = 256 * 1024
ALLOWED_ROLES = frozenset({"base", "sdk"})
INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# A Docker reference: [registry[:port]/]path[:tag][@sha256:digest]. Anything else is refused.
_REF_RE = re.compile(
    r"^(?:[a-zA-Z0-9][a-zA-Z0-9.-]*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
_SDK_NAME_RE = re.compile(r"^demohub/sdk-[a-z]+:[\w][\w.-]*$")
_STAGE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")
_URL_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|git@)")
_DIRECTIVE_RE = re.compile(r"^\s*([a-zA-Z]+)\s*=")


@dataclass(frozen=True)
class ImagePolicy:
    base_image: str
    allowed: tuple[str, ...] = ()   # BUILD_ALLOWED_IMAGES: names and digests

    @property
    def allowed_names(self) -> frozenset[str]:
        return frozenset(normalize(e) for e in self.allowed if not _DIGEST_RE.match(e) and "@" not in e)

    @property
    def allowed_digests(self) -> frozenset[str]:
        out = set()
        for entry in self.allowed:
            if _DIGEST_RE.match(entry):
                out.add(entry)
            elif "@" in entry:
                out.add(entry.rsplit("@", 1)[1])
        return frozenset(out)

    def describe(self) -> str:
        extra = [e for e in self.allowed if e != self.base_image]
        return ", ".join([self.base_image, "demohub/sdk-<sdk>:<version>", *extra])


@dataclass
class _From:
    line: int            # 1-based, for messages
    start: int           # 0-based first and last physical line of the instruction
    end: int
    flags: list[str]
    ref: str
    stage: str = ""
    image_id: str = ""   # filled in once verified; "" for a stage or scratch


@dataclass
class CheckedDockerfile:
    text: str                          # the Dockerfile to build: FROM lines pinned to image ids
    images: list[str] = field(default_factory=list)   # the references allowed, as written


def normalize(ref: str) -> str:
    """One spelling per image name: `docker.io/library/x` and `x` are `x:latest`."""
    if _DIGEST_RE.match(ref):
        return ref
    name, at, digest = ref.partition("@")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/",
                   "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if ":" not in name.rsplit("/", 1)[-1] and not at:
        name += ":latest"
    return name + at + digest


def _refuse(line: int, message: str) -> BuildError:
    return BuildError(f"Dockerfile line {line}: {message}")


def _not_allowed(line: int, ref: str, policy: ImagePolicy) -> BuildError:
    # The same words whatever the reason (not listed, a space's image, absent from the engine):
    # nothing here may tell whether another user's private space exists.
    return _refuse(line, f"FROM {ref} is not an image this hub allows builds to start from; "
                         f"use one of: {policy.describe()}")


def _name_allowed(ref: str, policy: ImagePolicy) -> bool:
    """The decision on the reference as written, before the engine is asked anything."""
    norm = normalize(ref)
    first = norm.split("/", 1)[0]
    if "/" in norm and first.startswith("demohub-"):
        return False  # a revision image's name, of this installation or another
    if _DIGEST_RE.match(norm) or "@" in norm:
        return norm.rsplit("@", 1)[-1] in policy.allowed_digests
    return (norm == normalize(policy.base_image) or bool(_SDK_NAME_RE.match(norm))
            or norm in policy.allowed_names)


def _image_allowed(ref: str, attrs: dict, policy: ImagePolicy) -> bool:
    """The engine's image for an allowed reference really is one the operator allows."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if "demohub.space" in labels:
        return False
    digests = {attrs.get("Id", "")} | {d.rsplit("@", 1)[-1] for d in attrs.get("RepoDigests") or []}
    if digests & policy.allowed_digests:
        return True
    norm = normalize(ref)
    if _SDK_NAME_RE.match(norm):
        return labels.get("demohub.role") == "sdk"
    if norm == normalize(policy.base_image):
        return True  # the operator's own setting; images made before the role label lack it
    return labels.get("demohub.role") in ALLOWED_ROLES


def _tokens(value: str) -> list[str]:
    return value.split()


def _flags(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Split leading `--flag[=value]` tokens from the arguments."""
    i = 0
    while i < len(tokens) and tokens[i].startswith("--"):
        i += 1
    return tokens[:i], tokens[i:]


def _parse_from(item: dict) -> _From:
    line = item["startline"] + 1
    value = item["value"].strip()
    if "$" in value:
        raise _refuse(line, f"build arguments are not allowed in FROM ({value}); name the image itself")
    flags, args = _flags(_tokens(value))
    for flag in flags:
        if not flag.lower().startswith("--platform="):
            raise _refuse(line, f"FROM option {flag} is not allowed (only --platform=...)")
    if len(args) == 1:
        stage = ""
    elif len(args) == 3 and args[1].lower() == "as" and _STAGE_RE.match(args[2]):
        stage = args[2].lower()
    else:
        raise _refuse(line, f"FROM takes one image and an optional `AS name`, not {value!r}")
    return _From(line=line, start=item["startline"], end=item["endline"], flags=flags,
                 ref=args[0], stage=stage)


def _check_copy_from(item: dict, kind: str, stages: list[str]) -> None:
    line = item["startline"] + 1
    flags, _ = _flags(_tokens(item["value"]))
    for flag in flags:
        if not flag.lower().startswith("--from="):
            continue
        source = flag.split("=", 1)[1]
        if kind == "COPY" and not ("$" in source) and (
                source.lower() in stages or (source.isdigit() and int(source) < len(stages))):
            continue
        raise _refuse(line, f"{kind} {flag} is not allowed: --from may only name an earlier stage "
                            "of this Dockerfile, never an image")


def _check_add_sources(item: dict) -> None:
    line = item["startline"] + 1
    value = item["value"].strip()
    if value.startswith("["):
        try:
            args = [str(a) for a in json.loads(value)]
        except ValueError:
            args = _tokens(value)
    else:
        args = _flags(_tokens(value))[1]
    for source in args[:-1]:
        if _URL_RE.match(source):
            raise _refuse(line, f"ADD {source} is not allowed: builds fetch nothing by URL "
                                "(download in a RUN step, or add the file to the repo)")
        if "$" in source:
            raise _refuse(line, f"ADD {source}: build arguments are not allowed in ADD sources")


def _check_directives(structure: list[dict]) -> None:
    expected = 0
    for item in structure:
        if item["instruction"] != "COMMENT" or item["startline"] != expected:
            return  # directives are only the comments that open the file, one a line
        match = _DIRECTIVE_RE.match(item["value"])
        if not match:
            return
        if match.group(1).lower() in ("syntax", "check"):
            raise _refuse(item["startline"] + 1, f"the parser directive `{match.group(1)}` is not "
                                                 "allowed (it would fetch a builder image)")
        expected += 1


def _structure(text: str) -> list[dict]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8", errors="replace")))
    return parser.structure


def check_dockerfile(raw: bytes, policy: ImagePolicy,
                     inspect: Callable[[str], dict | None]) -> CheckedDockerfile:
    """Refuse (BuildError naming the line) or return the Dockerfile to build, FROMs pinned."""
    if len(raw) > MAX_DOCKERFILE_BYTES:
        raise BuildError(f"the Dockerfile is larger than {MAX_DOCKERFILE_BYTES // 1024} KiB, the limit")
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    structure = _structure(text)
    _check_directives(structure)
    stages: list[str] = []      # stage names by index ("" for an unnamed stage)
    froms: list[_From] = []
    for item in structure:
        kind = item["instruction"].upper()
        line = item["startline"] + 1
        if kind == "COMMENT":
            continue
        if kind == "ONBUILD":
            raise _refuse(line, "ONBUILD is not allowed (no image on this hub is built from a "
                                "space's image, and its triggers would escape these checks)")
        if kind not in INSTRUCTIONS:
            raise _refuse(line, f"{item['instruction'][:40]!r} is not a Dockerfile instruction "
                                "this hub builds (check line continuations and spelling)")
        if kind == "FROM":
            entry = _parse_from(item)
            froms.append(entry)
            stages.append(entry.stage)
        elif not froms and kind != "ARG":
            raise _refuse(line, f"{kind} before the first FROM")
        elif kind in ("COPY", "ADD"):
            _check_copy_from(item, kind, stages[:-1])
            if kind == "ADD":
                _check_add_sources(item)
        elif kind == "RUN":
            flags, _ = _flags(_tokens(item["value"]))
            if flags:
                raise _refuse(line, f"RUN options ({' '.join(flags)}) are not allowed: builds "
                                    "mount nothing from other images or the host")
    if not froms:
        raise BuildError("the Dockerfile has no FROM line")
    # Stage names may be used in FROM only once defined: checked in order.
    defined: list[str] = []
    allowed: list[str] = []
    for entry in froms:
        if entry.ref.lower() in defined or entry.ref == "scratch":
            defined.append(entry.stage)
            continue
        if not _REF_RE.match(entry.ref) and not _DIGEST_RE.match(entry.ref):
            raise _not_allowed(entry.line, entry.ref, policy)
        if not _name_allowed(entry.ref, policy):
            raise _not_allowed(entry.line, entry.ref, policy)
        attrs = inspect(entry.ref)
        if attrs is None or not _image_allowed(entry.ref, attrs, policy):
            if attrs is not None and normalize(entry.ref) in policy.allowed_names:
                log.warning("BUILD_ALLOWED_IMAGES names %s, but the engine's image under that name "
                            "has no demohub.role label (or is a space's image) and its digest is not "
                            "listed: builds may not use it", entry.ref)
            raise _not_allowed(entry.line, entry.ref, policy)
        entry.image_id = attrs["Id"].removeprefix("sha256:")
        allowed.append(entry.ref)
        defined.append(entry.stage)
    return CheckedDockerfile(text=_pinned(text, froms), images=allowed)


def _pinned(text: str, froms: list[_From]) -> str:
    """The Dockerfile with each image FROM naming its verified image by bare id.

    The whole instruction (all its physical lines) becomes one line followed by empty ones,
    so line numbers in the engine's messages stay the user's.
    """
    lines = text.split("\n")  # as the parser and the engine count lines (never str.splitlines)
    for entry in froms:
        if not entry.image_id:
            continue
        stage = f" AS {entry.stage}" if entry.stage else ""
        flags = "".join(f"{f} " for f in entry.flags)
        lines[entry.start] = f"FROM {flags}{entry.image_id}{stage}"
        for i in range(entry.start + 1, min(entry.end, len(lines) - 1) + 1):
            lines[i] = ""
    return "\n".join(lines)
