"""A README cannot exhaust the web process (issue 15, finding 3): a size cap checked on the
archive's declared sizes before extraction, front matter read from at most 64 KiB with libyaml."""
from __future__ import annotations

import io
import os
import secrets
import time

import pytest
import yaml

from runner.archive import ArchiveLimits, snapshot_archive
from runner.exceptions import ArchiveError
from spaces.records import frontmatter
from spaces.records.frontmatter import ConfigError, read_config, split_front_matter
from tests.archives import make_archive, make_big_file_archive

LIMITS = ArchiveLimits(max_readme_bytes=2**20)


def noise(n: int) -> str:
    """Incompressible text, so the compression-ratio check stays out of the way."""
    return secrets.token_hex(n // 2 + 1)[:n]


def test_front_matter_uses_libyaml():
    assert yaml.__with_libyaml__
    assert issubclass(frontmatter._Loader, yaml.CSafeLoader)


def test_huge_readme_is_refused_by_name_before_extraction(tmp_path):
    archive = make_big_file_archive("README.md", 100 * 2**20, {"index.html": "<p>hi</p>"})
    assert len(archive) < 2 * 2**20  # compressible: the ratio alone would call it a bomb
    started = time.monotonic()
    with pytest.raises(ArchiveError) as info:
        snapshot_archive(io.BytesIO(archive), tmp_path / "snaps", LIMITS)
    assert time.monotonic() - started < 2
    assert info.value.code == "readme_too_large" and info.value.http_status == 413
    assert "README.md is 100 MB; the limit for a README is 1 MB" in str(info.value)
    assert not (tmp_path / "snaps").exists() or not os.listdir(tmp_path / "snaps")


def test_readme_in_a_wrapping_folder_is_the_root_readme(tmp_path):
    archive = make_archive({"repo/README.md": noise(2**20 + 1), "repo/index.html": "hi"})
    with pytest.raises(ArchiveError) as info:
        snapshot_archive(io.BytesIO(archive), tmp_path / "snaps", LIMITS)
    assert info.value.code == "readme_too_large"


def test_readmes_elsewhere_and_under_the_cap_are_fine(tmp_path):
    archive = make_archive({"README.md": noise(2**20), "docs/README.md": noise(2**20 + 10),
                            "index.html": "hi"})
    snap = snapshot_archive(io.BytesIO(archive), tmp_path / "snaps", LIMITS)
    assert "docs/README.md" in snap.files


def test_read_config_bounds_a_linked_readme(tmp_path):
    # A symbolic link escapes the archive's size check: the read itself is bounded.
    (tmp_path / "big.md").write_bytes(b"---\nsdk: static\n---\n" + b"x" * 5000)
    (tmp_path / "README.md").symlink_to("big.md")
    with pytest.raises(ConfigError, match="README.md is larger than 4 KiB"):
        read_config(tmp_path, {"index.html"}, space_sdk="static", max_bytes=4096)
    assert read_config(tmp_path, {"index.html"}, space_sdk="static", max_bytes=8192).sdk == "static"


def test_front_matter_over_64_kib_is_refused_clearly():
    text = "---\nsdk: static\nnotes: |\n" + "  filler line\n" * 6000 + "---\nbody\n"
    with pytest.raises(ConfigError, match="the front matter is longer than 64 KiB"):
        split_front_matter(text)
    small = "---\nsdk: static\nnotes: |\n" + "  filler line\n" * 100 + "---\nbody\n"
    assert split_front_matter(small)[0]["sdk"] == "static"


def test_unclosed_front_matter_is_body_as_before():
    data, body = split_front_matter("---\nnot closed\n" + "x\n" * 50000)
    assert data == {} and body.startswith("---")
