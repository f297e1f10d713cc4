"""What a `sdk: docker` Dockerfile may start FROM (runner/dockerfile_policy.py), on a fake engine."""
from __future__ import annotations

import pytest

from runner.dockerfile_policy import ImagePolicy, check_dockerfile, normalize
from runner.exceptions import BuildError

BASE_ID = "a" * 64
SDK_ID = "b" * 64
SPACE_ID = "c" * 64
LISTED_ID = "d" * 64
PLAIN_ID = "e" * 64
BASE = "demohub/base:bookworm"
SPACE = "demohub-test/alice--secret:r1"

IMAGES = {
    # A revision image inherits its parent's labels: demohub.role=base *and* demohub.space.
    SPACE: {"Id": f"sha256:{SPACE_ID}", "Config": {"Labels": {"demohub.role": "base",
                                                               "demohub.space": "alice/secret"}}},
    BASE: {"Id": f"sha256:{BASE_ID}", "Config": {"Labels": None}},
    "demohub/sdk-gradio:6.31.0": {"Id": f"sha256:{SDK_ID}", "Config": {"Labels": {"demohub.role": "sdk"}}},
    "python:3.12-slim": {"Id": f"sha256:{LISTED_ID}", "Config": {"Labels": {"demohub.role": "base"}},
                         "RepoDigests": []},
    "debian:bookworm": {"Id": f"sha256:{PLAIN_ID}", "Config": {"Labels": {}},
                        "RepoDigests": [f"debian@sha256:{'f' * 64}"]},
}
# The same image under a name the operator listed (an operator's mistake): still a space's image.
IMAGES["mirror/app:latest"] = IMAGES[SPACE]


class Engine:
    def __init__(self):
        self.asked: list[str] = []

    def __call__(self, ref: str):
        self.asked.append(ref)
        for name, attrs in IMAGES.items():
            if normalize(name) == normalize(ref) or attrs["Id"] == ref:
                return attrs
        return None


POLICY = ImagePolicy(base_image=BASE, allowed=("python:3.12-slim", "debian:bookworm", "mirror/app",
                                               f"sha256:{'f' * 64}"))


def check(text: str, policy: ImagePolicy = POLICY, engine: Engine | None = None):
    return check_dockerfile(text.encode(), policy, engine or Engine())


def refusal(text: str, policy: ImagePolicy = POLICY, engine: Engine | None = None) -> str:
    with pytest.raises(BuildError) as info:
        check(text, policy, engine)
    return str(info.value)


def test_base_image_is_allowed_and_pinned_to_its_bare_id():
    out = check(f"FROM {BASE}\nRUN echo hi\nCMD [\"python3\", \"-m\", \"http.server\"]\n")
    assert out.text.splitlines()[0] == f"FROM {BASE_ID}"
    assert out.text.splitlines()[1:] == ["RUN echo hi", 'CMD ["python3", "-m", "http.server"]']
    assert out.images == [BASE]


def test_sdk_image_and_labelled_listed_image_are_allowed():
    assert check("FROM demohub/sdk-gradio:6.31.0\n").text.startswith(f"FROM {SDK_ID}")
    assert check("FROM docker.io/library/python:3.12-slim\n").text.startswith(f"FROM {LISTED_ID}")


def test_listed_by_digest_is_allowed_without_a_label():
    assert check("FROM debian:bookworm AS b\n").text.startswith(f"FROM {PLAIN_ID} AS b")


def test_listed_name_without_label_or_digest_is_refused():
    policy = ImagePolicy(base_image=BASE, allowed=("debian:bookworm",))
    assert "FROM debian:bookworm is not an image this hub allows" in refusal("FROM debian:bookworm\n", policy)


def test_private_space_image_reads_like_a_name_that_exists_nowhere():
    engine = Engine()
    private = refusal(f"FROM {SPACE}\nRUN cat /home/user/app/app.py\n", engine=engine)
    missing = refusal("FROM demohub-test/alice--nothing:r1\nRUN cat /home/user/app/app.py\n", engine=engine)
    assert private.replace(SPACE, "X") == missing.replace("demohub-test/alice--nothing:r1", "X")
    assert engine.asked == []  # decided on the name alone: the engine was never asked
    other = refusal("FROM nosuch/image:1\n", engine=engine)
    assert other.replace("nosuch/image:1", "X") == private.replace(SPACE, "X")
    assert engine.asked == []


def test_space_image_under_a_listed_name_or_by_id_is_refused():
    assert "is not an image this hub allows" in refusal("FROM mirror/app\n")
    assert "is not an image this hub allows" in refusal(f"FROM sha256:{SPACE_ID}\n")
    assert "is not an image this hub allows" in refusal(f"FROM {SPACE_ID}\n")


@pytest.mark.parametrize("text, line, words", [
    (f"FROM\t{SPACE}\n", 1, "is not an image this hub allows"),
    (f"from {SPACE}\n", 1, "is not an image this hub allows"),
    (f"  FrOm   --platform=linux/amd64   {SPACE}  AS x\n", 1, "is not an image this hub allows"),
    (f"FROM {BASE}\nFROM \\\n  {SPACE}\n", 2, "is not an image this hub allows"),
    (f"FROM \\\n# a comment\n {SPACE}\n", 1, "is not an image this hub allows"),
    (f"# escape=`\nFROM {BASE}\nFROM `\n {SPACE}\n", 3, "is not an image this hub allows"),
    (f"\ufeffFROM {SPACE}\n", 1, "is not an image this hub allows"),
    (f"ARG X={SPACE}\nFROM ${{X}}\n", 2, "build arguments are not allowed in FROM"),
    (f"ARG X={SPACE}\nFROM $X\n", 2, "build arguments are not allowed in FROM"),
    (f"FROM --platform=$BUILDPLATFORM {BASE}\n", 1, "build arguments are not allowed in FROM"),
    (f"FROM {BASE}\nCOPY --from={SPACE} /home/user/app /x\n", 2, "--from may only name an earlier stage"),
    (f"FROM {BASE}\ncopy \\\n  --from={SPACE} /a /b\n", 2, "--from may only name an earlier stage"),
    (f"FROM {BASE}\nCOPY --from=0 /a /b\n", 2, "--from may only name an earlier stage"),
    (f"FROM {BASE}\nCOPY --from=base /a /b\n", 2, "--from may only name an earlier stage"),
    (f"FROM {BASE}\nCOPY --chown=1 --from=$X /a /b\n", 2, "--from may only name an earlier stage"),
    (f"FROM {BASE}\nRUN --mount=type=bind,from={SPACE},target=/x cat /x/app.py\n", 2, "RUN options"),
    (f"FROM {BASE}\nADD http://127.0.0.1:9/x /x\n", 2, "builds fetch nothing by URL"),
    (f"FROM {BASE}\nADD --chown=1 HTTPS://example.invalid/x /x\n", 2, "builds fetch nothing by URL"),
    (f"FROM {BASE}\nADD git@github.com:a/b.git /x\n", 2, "builds fetch nothing by URL"),
    (f"FROM {BASE}\nADD [\"http://127.0.0.1:9/x\", \"/x\"]\n", 2, "builds fetch nothing by URL"),
    (f"FROM {BASE}\nADD $URL /x\n", 2, "build arguments are not allowed in ADD"),
    (f"FROM {BASE}\nONBUILD COPY --from={SPACE} / /\n", 2, "ONBUILD is not allowed"),
    (f"# syntax=evil/frontend\nFROM {BASE}\n", 1, "parser directive `syntax`"),
    (f"FROM \\\n\n {SPACE}\n", 1, "FROM takes one image"),
    (f"FROM {BASE} {SPACE}\n", 1, "FROM takes one image"),
    (f"FROM {BASE}\nRUN <<EOF\nFROM {BASE}\nEOF\n", 4, "is not a Dockerfile instruction"),
])
def test_each_spelling_is_refused_naming_its_line(text, line, words):
    message = refusal(text)
    assert message.startswith(f"Dockerfile line {line}: "), message
    assert words in message


def test_earlier_stages_and_scratch_are_fine():
    text = (f"FROM {BASE} AS build\nRUN echo a > /a\n"
            "FROM scratch AS empty\n"
            "FROM build\nCOPY --from=build /a /b\nCOPY --from=0 /a /c\nCOPY --from=EMPTY / /d\n")
    out = check(text)
    lines = out.text.split("\n")
    assert lines[0] == f"FROM {BASE_ID} AS build"
    assert lines[2] == "FROM scratch AS empty"
    assert lines[3] == "FROM build"


def test_continued_from_keeps_line_numbers():
    out = check(f"FROM \\\n  {BASE} \\\n  AS b\nRUN true\n")
    assert out.text.split("\n")[:4] == [f"FROM {BASE_ID} AS b", "", "", "RUN true"]


def test_a_later_stage_name_is_not_an_earlier_stage():
    assert "is not an image this hub allows" in refusal(f"FROM later\nFROM {BASE} AS later\n")


def test_no_from_and_huge_files_are_refused():
    assert "no FROM line" in refusal("# nothing\n")
    assert "larger than 256 KiB" in refusal("#" * (300 * 1024))
    assert "RUN before the first FROM" in refusal("RUN true\nFROM x\n")


def test_normalize():
    assert normalize("python") == "python:latest"
    assert normalize("docker.io/library/python:3") == "python:3"
    assert normalize("library/python:3") == "python:3"
    assert normalize("localhost:5000/x") == "localhost:5000/x:latest"


# -- the Docker backend: a refused Dockerfile never reaches the engine's build ---------------

def _backend(monkeypatch, tmp_path, dockerfile: str):
    from unittest import mock

    import docker

    from runner.backends.base import BuildSpec
    from runner.backends.docker import DockerBackend

    backend = DockerBackend(instance="unit", network="n", subnet="10.213.0.0/16", base_image=BASE)
    client = mock.MagicMock(spec=docker.DockerClient)
    client.api = mock.MagicMock()

    def inspect_image(ref):
        attrs = Engine()(ref)
        if attrs is None:
            raise docker.errors.ImageNotFound("no such image")
        return attrs

    client.api.inspect_image.side_effect = inspect_image
    backend._client = client
    monkeypatch.setattr(backend, "ensure_ready", lambda: None)
    built = {}

    def stream_build(**kwargs):
        built.update(kwargs, text=open(kwargs["dockerfile"]).read())
        return "sha256:new"

    monkeypatch.setattr(backend, "_stream_build", stream_build)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    spec = BuildSpec(space="bob/x", revision=1, sdk="docker", snapshot=tmp_path, image="demohub-unit/bob-x:r1")
    return backend, spec, built, client


def test_backend_builds_the_pinned_dockerfile_and_never_pulls(monkeypatch, tmp_path):
    backend, spec, built, client = _backend(monkeypatch, tmp_path, f"FROM {BASE}\nRUN true\n")
    assert backend.build(spec, log=lambda text: None, should_continue=lambda: True) == "sha256:new"
    assert built["text"].startswith(f"FROM {BASE_ID}\n")
    assert built["pull"] is False and built["path"] == str(tmp_path)
    client.images.pull.assert_not_called()


def test_backend_refuses_before_building(monkeypatch, tmp_path):
    backend, spec, built, client = _backend(monkeypatch, tmp_path, f"FROM {SPACE}\nRUN cat /home/user/app/app.py\n")
    with pytest.raises(BuildError, match="is not an image this hub allows"):
        backend.build(spec, log=lambda text: None, should_continue=lambda: True)
    assert built == {}
    client.api.inspect_image.assert_not_called()
