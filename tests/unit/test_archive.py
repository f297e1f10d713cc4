"""runner.archive: archive checks and content-addressed snapshots. Plain pytest, no Django."""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import shutil
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from runner.archive import ArchiveLimits, Snapshot, snapshot_archive
from runner.exceptions import ArchiveError, RunnerError

MiB = 2**20
GiB = 2**30

# A small repo used in many tests: (path, content, executable)
TREE = [
    ("README.md", b"---\ntitle: Demo\nsdk: gradio\n---\n", False),
    ("app.py", b"import gradio as gr\n", False),
    ("run.sh", b"#!/bin/sh\nexec python app.py\n", True),
    ("src/model/weights.txt", b"0.1 0.2 0.3\n" * 100, False),
    ("src/__init__.py", b"", False),
]
LINKS = [("docs", "src/model"), ("src/model/readme", "../../README.md")]


# ------------------------------------------------------------------------------------------
# archive builders


def make_zip(path: Path, files=TREE, links=(), dirs=(), prefix="", compression=zipfile.ZIP_DEFLATED,
             reverse=False):
    """files: (name, bytes, executable); links: (name, target); dirs: names (no slash)."""
    items = []
    for d in dirs:
        zi = zipfile.ZipInfo(prefix + d + "/")
        zi.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
        items.append((zi, b""))
    for name, data, exe in files:
        zi = zipfile.ZipInfo(prefix + name)
        zi.create_system = 3
        zi.external_attr = (stat.S_IFREG | (0o755 if exe else 0o644)) << 16
        zi.compress_type = compression
        items.append((zi, data))
    for name, target in links:
        zi = zipfile.ZipInfo(prefix + name)
        zi.create_system = 3
        zi.external_attr = (stat.S_IFLNK | 0o777) << 16
        items.append((zi, target.encode()))
    if reverse:
        items.reverse()
    with zipfile.ZipFile(path, "w") as zf:
        for zi, data in items:
            zf.writestr(zi, data)
    return path


def tar_member(name, data=None, *, type=tarfile.REGTYPE, mode=0o644, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode
    ti.linkname = linkname
    ti.uid = ti.gid = 4242
    ti.uname = ti.gname = "someone"
    if data is not None:
        ti.size = len(data)
    return ti, (io.BytesIO(data) if data is not None else None)


def make_tar(path: Path, members, compression="gz", fmt=tarfile.PAX_FORMAT):
    mode = "w:" + compression if compression else "w"
    with tarfile.open(path, mode, format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for ti, fobj in members:
            tf.addfile(ti, fobj)
    return path


def tree_members(files=TREE, links=(), dirs=(), prefix="", reverse=False):
    ms = [tar_member(prefix + d, type=tarfile.DIRTYPE, mode=0o755) for d in dirs]
    ms += [tar_member(prefix + n, d, mode=0o755 if x else 0o644) for n, d, x in files]
    ms += [tar_member(prefix + n, type=tarfile.SYMTYPE, linkname=t, mode=0o777) for n, t in links]
    return list(reversed(ms)) if reverse else ms


def deflate_zeros(n: int, chunk: int = MiB):
    """Raw deflate stream of n zero bytes, built in O(n / chunk) without compressing n bytes:
    after a full flush the compressor forgets its history, so every chunk compresses the same."""
    assert n % chunk == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    rest = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    return [first] + [rest] * (n // chunk - 1) + [c.flush()]


@functools.lru_cache(maxsize=None)
def crc_zeros(n: int) -> int:
    crc, block = 0, bytes(16 * MiB)
    while n:
        k = min(n, len(block))
        crc = zlib.crc32(block[:k] if k < len(block) else block, crc)
        n -= k
    return crc


def raw_zip(path: Path, members):
    """Write a zip by hand, so sizes and CRCs can be anything. Each member is a dict:
    name, chunks (the compressed bytes), crc, usize (true size), and optionally cd_usize (what the
    central directory declares), method (8 deflate / 0 stored), mode."""
    with open(path, "wb") as f:
        central = []
        for m in members:
            off = f.tell()
            name = m["name"].encode()
            csize = sum(len(c) for c in m["chunks"])
            method = m.get("method", 8)
            f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21,
                                m["crc"], csize, m["usize"], len(name), 0))
            f.write(name)
            for c in m["chunks"]:
                f.write(c)
            central.append((m, name, off, csize, method))
        cd = f.tell()
        for m, name, off, csize, method in central:
            attr = (m.get("mode", stat.S_IFREG | 0o644)) << 16
            f.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x031E, 20, 0, method, 0, 0x21,
                                m["crc"], csize, m.get("cd_usize", m["usize"]), len(name),
                                0, 0, 0, 0, attr, off))
            f.write(name)
        end = f.tell()
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central),
                            end - cd, cd, 0))
    return path


def gzip_with_zeros(path: Path, prefix: bytes, zeros: int, suffix: bytes = b""):
    """A .tar.gz whose decompressed stream is prefix + zeros * b"\\0" + suffix, built cheaply."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03")
        f.write(c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH))
        if zeros:
            assert zeros % MiB == 0
            first = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
            rest = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
            f.write(first)
            for _ in range(zeros // MiB - 1):
                f.write(rest)
        f.write(c.compress(suffix) + c.flush())
        crc = zlib.crc32(prefix)
        block = bytes(16 * MiB)
        left = zeros
        while left:  # CRC-32 of prefix + zeros + suffix, streaming the zeros
            k = min(left, len(block))
            crc = zlib.crc32(block if k == len(block) else block[:k], crc)
            left -= k
        crc = zlib.crc32(suffix, crc)
        f.write(struct.pack("<LL", crc, (len(prefix) + zeros + len(suffix)) & 0xFFFFFFFF))
    return path


def spec_hash(files, links=()):
    """The content hash exactly as specified, computed independently."""
    rows = [(n, f"{n}\0{'x' if x else '-'}\0{hashlib.sha256(d).hexdigest()}\n") for n, d, x in files]
    rows += [(n, f"{n}\0l\0{t}\n") for n, t in links]
    h = hashlib.sha256()
    for _, line in sorted(rows):
        h.update(line.encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------
# fixtures / assertions


@pytest.fixture
def snaps(tmp_path):
    return tmp_path / "snapshots"


def leftovers(snaps: Path):
    return sorted(os.listdir(snaps)) if snaps.exists() else []


def refused(src, snaps, code, status, *, limits=ArchiveLimits(), mentions=()):
    with pytest.raises(ArchiveError) as ei:
        snapshot_archive(src, snaps, limits)
    e = ei.value
    assert isinstance(e, RunnerError)
    assert (e.code, e.http_status) == (code, status), str(e)
    for word in mentions:
        assert word in str(e), (word, str(e))
    assert str(e) and str(e)[0].isalpha()
    assert leftovers(snaps) == [], "something was left behind in snapshots_dir"
    return e


# ------------------------------------------------------------------------------------------
# accepted archives


def test_zip_targz_and_tar_give_the_same_snapshot(tmp_path, snaps):
    z = make_zip(tmp_path / "a.zip", links=LINKS, dirs=["src", "src/model"])
    tgz = make_tar(tmp_path / "a.tar.gz", tree_members(links=LINKS, reverse=True))
    tar = make_tar(tmp_path / "a.tar", tree_members(links=LINKS), compression="", fmt=tarfile.GNU_FORMAT)
    s1 = snapshot_archive(z, snaps)
    s2 = snapshot_archive(tgz, snaps)
    s3 = snapshot_archive(tar, snaps)
    assert isinstance(s1, Snapshot)
    assert s1 == s2 == s3
    assert s1.content_hash == spec_hash(TREE, LINKS)
    assert s1.path == snaps / s1.content_hash
    assert s1.files == tuple(sorted(n for n, _, _ in TREE))
    assert s1.total_bytes == sum(len(d) for _, d, _ in TREE)
    assert leftovers(snaps) == [s1.content_hash]
    for name, data, _ in TREE:
        assert (s1.path / name).read_bytes() == data
    assert os.readlink(s1.path / "docs") == "src/model"
    assert (s1.path / "docs" / "weights.txt").read_bytes() == TREE[3][1]
    assert (s1.path / "src/model/readme").read_bytes() == TREE[0][1]


def test_hash_depends_on_content_mode_and_links(tmp_path, snaps):
    base = snapshot_archive(make_zip(tmp_path / "a.zip"), snaps).content_hash
    other = [(n, d + (b"!" if n == "app.py" else b""), x) for n, d, x in TREE]
    exe = [(n, d, x or n == "app.py") for n, d, x in TREE]
    hashes = {
        base,
        snapshot_archive(make_zip(tmp_path / "b.zip", files=other), snaps).content_hash,
        snapshot_archive(make_zip(tmp_path / "c.zip", files=exe), snaps).content_hash,
        snapshot_archive(make_zip(tmp_path / "d.zip", links=[("l", "app.py")]), snaps).content_hash,
    }
    assert len(hashes) == 4
    assert len(leftovers(snaps)) == 4


def test_source_may_be_a_file_object_or_a_stream(tmp_path, snaps):
    z = make_zip(tmp_path / "a.zip")
    expected = spec_hash(TREE)
    assert snapshot_archive(str(z), snaps).content_hash == expected
    with open(z, "rb") as f:
        f.read(10)  # position does not matter
        assert snapshot_archive(f, snaps).content_hash == expected
        assert not f.closed

    class Stream(io.RawIOBase):  # not seekable, like a socket
        def __init__(self, data):
            self.buf = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            data = self.buf.read(len(b))
            b[:len(data)] = data
            return len(data)

    assert snapshot_archive(Stream(z.read_bytes()), snaps).content_hash == expected
    assert leftovers(snaps) == [expected]


def test_github_wrapper_folder_is_stripped(tmp_path, snaps):
    z = make_zip(tmp_path / "gh.zip", prefix="myrepo-main/", dirs=["", "src", "src/model"])
    s = snapshot_archive(z, snaps)
    assert s.content_hash == spec_hash(TREE)
    assert (s.path / "README.md").is_file()
    assert not (s.path / "myrepo-main").exists()

    tgz = make_tar(tmp_path / "gh.tgz", tree_members(prefix="myrepo-main/", dirs=["", "src"]))
    assert snapshot_archive(tgz, snaps) == s


def test_two_top_level_folders_or_a_top_level_file_are_kept(tmp_path, snaps):
    files = [("a/x.txt", b"x", False), ("b/y.txt", b"y", False)]
    s = snapshot_archive(make_zip(tmp_path / "two.zip", files=files), snaps)
    assert s.files == ("a/x.txt", "b/y.txt")
    files = [("README.md", b"r", False)]
    assert snapshot_archive(make_zip(tmp_path / "one.zip", files=files), snaps).files == ("README.md",)


def test_only_one_wrapper_level_is_stripped(tmp_path, snaps):
    files = [("outer/inner/README.md", b"r", False)]
    assert snapshot_archive(make_zip(tmp_path / "a.zip", files=files), snaps).files == ("inner/README.md",)


def test_macos_junk_is_dropped_before_finding_the_wrapper(tmp_path, snaps):
    files = TREE + [(".DS_Store", b"junk", False), ("src/.DS_Store", b"junk", False)]
    z = make_zip(tmp_path / "mac.zip", prefix="repo/", files=files)
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("__MACOSX/", b"")
        zf.writestr("__MACOSX/repo/._README.md", b"\0\x05\x16\x07appledouble")
    s = snapshot_archive(z, snaps)
    assert s.content_hash == spec_hash(TREE)
    assert not (s.path / "__MACOSX").exists() and not (s.path / ".DS_Store").exists()


def test_tar_made_with_dot_prefix(tmp_path, snaps):
    ms = [tar_member("./", type=tarfile.DIRTYPE, mode=0o755)] + tree_members(prefix="./")
    s = snapshot_archive(make_tar(tmp_path / "dot.tgz", ms), snaps)
    assert s.content_hash == spec_hash(TREE)


def test_directory_entries_are_fine_but_empty_folders_are_not_created(tmp_path, snaps):
    z = make_zip(tmp_path / "d.zip", dirs=["src", "empty", "empty/deeper"])
    s = snapshot_archive(z, snaps)
    assert s.content_hash == spec_hash(TREE)
    assert not (s.path / "empty").exists()


def test_backslash_separators_from_windows_zips(tmp_path, snaps):
    files = [("README.md", b"r", False), ("src\\app.py", b"a", False)]
    s = snapshot_archive(make_zip(tmp_path / "win.zip", files=files), snaps)
    assert s.files == ("README.md", "src/app.py")


def test_hard_links_inside_the_archive_are_copied(tmp_path, snaps):
    ms = tree_members() + [tar_member("copy.txt", type=tarfile.LNKTYPE, linkname="src/model/weights.txt")]
    s = snapshot_archive(make_tar(tmp_path / "h.tgz", ms), snaps)
    weights = TREE[3][1]
    assert (s.path / "copy.txt").read_bytes() == weights
    assert "copy.txt" in s.files
    assert s.total_bytes == sum(len(d) for _, d, _ in TREE) + len(weights)
    assert s.content_hash == spec_hash(TREE + [("copy.txt", weights, False)])


def test_reupload_is_idempotent(tmp_path, snaps):
    z = make_zip(tmp_path / "a.zip")
    s1 = snapshot_archive(z, snaps)
    marker = (s1.path / "README.md").stat()
    s2 = snapshot_archive(z, snaps)
    s3 = snapshot_archive(make_tar(tmp_path / "a.tgz", tree_members()), snaps)
    assert s1 == s2 == s3
    assert leftovers(snaps) == [s1.content_hash]
    after = (s1.path / "README.md").stat()
    assert (after.st_ino, after.st_mtime_ns) == (marker.st_ino, marker.st_mtime_ns)


def test_permissions_ignore_umask_setuid_and_owners(tmp_path, snaps):
    ms = [
        tar_member("README.md", b"r", mode=0o600),
        tar_member("suid", b"#!/bin/sh\n", mode=0o4777),
        tar_member("group-exec", b"x", mode=0o610),
        tar_member("private", type=tarfile.DIRTYPE, mode=0o700),
        tar_member("private/secret.txt", b"s", mode=0o000),
    ]
    old = os.umask(0o077)
    try:
        s = snapshot_archive(make_tar(tmp_path / "p.tgz", ms), snaps)
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(os.lstat(p).st_mode)

    assert mode(s.path) == 0o755
    assert mode(s.path / "private") == 0o755
    assert mode(s.path / "README.md") == 0o644
    assert mode(s.path / "private/secret.txt") == 0o644
    assert mode(s.path / "suid") == 0o755
    assert mode(s.path / "group-exec") == 0o755
    if os.geteuid() == 0:
        assert os.lstat(s.path / "README.md").st_uid == 0  # not 4242 from the archive

    z = make_zip(tmp_path / "p.zip", files=[("a.sh", b"#!", True), ("b.txt", b"b", False)])
    old = os.umask(0o077)
    try:
        s = snapshot_archive(z, snaps)
    finally:
        os.umask(old)
    assert (mode(s.path / "a.sh"), mode(s.path / "b.txt")) == (0o755, 0o644)


def test_windows_zip_without_unix_modes(tmp_path, snaps):
    z = tmp_path / "dos.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zi = zipfile.ZipInfo("README.md")
        zi.create_system = 0
        zi.external_attr = 0x20  # FILE_ATTRIBUTE_ARCHIVE
        zf.writestr(zi, b"hi")
    s = snapshot_archive(z, snaps)
    assert stat.S_IMODE(os.stat(s.path / "README.md").st_mode) == 0o644


# ------------------------------------------------------------------------------------------
# refusals: format


def test_garbage_is_not_an_archive(tmp_path, snaps):
    p = tmp_path / "x.zip"
    p.write_bytes(os.urandom(4096))
    e = refused(p, snaps, "not_an_archive", 422)
    assert "not a readable .zip or .tar.gz archive" in str(e)
    p.write_bytes(b"")
    refused(p, snaps, "not_an_archive", 422)
    p.write_bytes(b"just some text\n" * 100)
    refused(p, snaps, "not_an_archive", 422)


def test_gzip_that_is_not_a_tar(tmp_path, snaps):
    p = tmp_path / "x.tar.gz"
    p.write_bytes(gzip.compress(b"hello world\n" * 100))
    refused(p, snaps, "not_an_archive", 422)
    p.write_bytes(gzip.compress(make_zip(tmp_path / "a.zip").read_bytes()))
    refused(p, snaps, "not_an_archive", 422)


def test_name_does_not_matter_magic_bytes_do(tmp_path, snaps):
    z = make_zip(tmp_path / "a.zip")
    renamed = tmp_path / "archive.tar.gz"
    renamed.write_bytes(z.read_bytes())
    assert snapshot_archive(renamed, snaps).content_hash == spec_hash(TREE)


def test_bzip2_tar_is_refused(tmp_path, snaps):
    refused(make_tar(tmp_path / "a.tar.bz2", tree_members(), compression="bz2"), snaps,
            "not_an_archive", 422)


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_truncated_archives(tmp_path, snaps, kind):
    big = [("big.bin", os.urandom(300_000), False)] + TREE
    if kind == "zip":
        p = make_zip(tmp_path / "a.zip", files=big)
    else:
        p = make_tar(tmp_path / "a.tgz", tree_members(files=big))
    data = p.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        p.write_bytes(data[:cut])
        refused(p, snaps, "not_an_archive", 422)


def test_corrupt_zip_member_found_during_extraction(tmp_path, snaps):
    payload = os.urandom(200_000)
    p = make_zip(tmp_path / "a.zip", files=TREE + [("z-last.bin", payload, False)],
                 compression=zipfile.ZIP_STORED)
    data = bytearray(p.read_bytes())
    i = data.index(payload[:64]) + 100_000
    data[i] ^= 0xFF  # flips a byte of the last member: only its CRC check notices
    p.write_bytes(bytes(data))
    refused(p, snaps, "not_an_archive", 422, mentions=["z-last.bin"])


def test_corrupt_targz_found_during_extraction(tmp_path, snaps):
    payload = os.urandom(300_000)
    p = make_tar(tmp_path / "a.tgz", tree_members(files=TREE + [("z.bin", payload, False)]))
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0x55
    p.write_bytes(bytes(data))
    refused(p, snaps, "not_an_archive", 422)


def test_corrupt_targz_trailer(tmp_path, snaps):
    p = make_tar(tmp_path / "a.tgz", tree_members())
    data = bytearray(p.read_bytes())
    data[-8] ^= 0xFF  # CRC-32 of the gzip member
    p.write_bytes(bytes(data))
    refused(p, snaps, "not_an_archive", 422)


def test_encrypted_zip_member(tmp_path, snaps):
    p = make_zip(tmp_path / "a.zip")
    data = bytearray(p.read_bytes())
    # set the "encrypted" flag on every central directory entry
    i = 0
    while (i := data.find(b"PK\x01\x02", i)) >= 0:
        data[i + 8] |= 1
        i += 4
    p.write_bytes(bytes(data))
    refused(p, snaps, "not_an_archive", 422, mentions=["encrypted"])


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar"])
def test_empty_archives(tmp_path, snaps, kind):
    if kind == "zip":
        p = tmp_path / "e.zip"
        zipfile.ZipFile(p, "w").close()
        refused(p, snaps, "empty_archive", 422)
        make_zip(p, files=[], dirs=["a", "a/b"])
        refused(p, snaps, "empty_archive", 422)
        make_zip(p, files=[("__MACOSX/._x", b"junk", False), (".DS_Store", b"j", False)])
        refused(p, snaps, "empty_archive", 422)
        make_zip(p, files=[], links=[("l", "x")])
        refused(p, snaps, "empty_archive", 422)
    else:
        p = make_tar(tmp_path / "e.tar", [], compression="gz" if kind == "tgz" else "")
        refused(p, snaps, "empty_archive", 422)
        p = make_tar(p, [tar_member("d", type=tarfile.DIRTYPE)], compression="gz" if kind == "tgz" else "")
        refused(p, snaps, "empty_archive", 422)


# ------------------------------------------------------------------------------------------
# refusals: paths, links, special files, duplicates


UNSAFE_NAMES = [
    "/etc/passwd",
    "../evil.txt",
    "src/../../evil.txt",
    "src/../README2.md",
    "..",
    "C:/Windows/evil.txt",
    "c:evil.txt",
    "..\\evil.txt",
    "src\\..\\..\\evil.txt",
    "\\\\server\\share\\evil.txt",
    "\\evil.txt",
    "bad\nname.txt",
    "bell\x07.txt",
    "x" * 300,
]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_unsafe_paths(tmp_path, snaps, kind, name):
    files = TREE + [(name, b"pwned", False)]
    if kind == "zip":
        p = make_zip(tmp_path / "u.zip", files=files)
    else:
        p = make_tar(tmp_path / "u.tgz", tree_members(files=files))
    refused(p, snaps, "unsafe_path", 422, mentions=[repr(name)[1:30]])
    assert not (tmp_path / "evil.txt").exists()


def test_non_utf8_tar_name(tmp_path, snaps):
    ms = tree_members() + [tar_member("caf\udce9.txt", b"x")]
    p = make_tar(tmp_path / "n.tgz", ms, fmt=tarfile.GNU_FORMAT)
    refused(p, snaps, "unsafe_path", 422, mentions=["UTF-8"])


UNSAFE_LINKS = [
    [("l", "/etc/passwd")],
    [("l", "../outside")],
    [("src/l", "../../outside")],
    [("l", "src/../../outside")],
    [("l", "C:/x")],
    [("l", "..\\x")],
    [("l", "")],
    [("src/up", ".."), ("esc", "src/up/..")],        # lexically inside, really outside
    [("a", "b"), ("b", "a")],                        # loop
    [("a", "a/x")],                                  # self loop
]


@pytest.mark.parametrize("links", UNSAFE_LINKS, ids=lambda ls: ",".join(f"{a}->{b}" for a, b in ls))
@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_unsafe_symlinks(tmp_path, snaps, kind, links):
    if kind == "zip":
        p = make_zip(tmp_path / "l.zip", links=links)
    else:
        p = make_tar(tmp_path / "l.tgz", tree_members(links=links))
    refused(p, snaps, "unsafe_link", 422)


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_nothing_is_written_through_a_symlink(tmp_path, snaps, kind):
    (tmp_path / "victim").mkdir()
    links = [("d", "src")]
    files = TREE + [("d/x.txt", b"through the link", False)]
    if kind == "zip":
        p = make_zip(tmp_path / "t.zip", files=files, links=links, reverse=True)
    else:
        p = make_tar(tmp_path / "t.tgz", tree_members(files=files, links=links, reverse=True))
    refused(p, snaps, "unsafe_link", 422, mentions=["d/x.txt"])


def test_symlinks_staying_inside_are_fine(tmp_path, snaps):
    links = [("src/up", ".."), ("ok", "src/up/app.py"), ("dangling", "nowhere/at/all"), ("self", ".")]
    s = snapshot_archive(make_tar(tmp_path / "ok.tgz", tree_members(links=links)), snaps)
    assert s.content_hash == spec_hash(TREE, links)
    assert (s.path / "ok").read_bytes() == b"import gradio as gr\n"


@pytest.mark.parametrize("linkname", ["/etc/passwd", "../outside", "missing.txt", "src", "docs",
                                      "hl", "me"])
def test_unsafe_hard_links(tmp_path, snaps, linkname):
    ms = tree_members(links=[("docs", "src/model")], dirs=["src"])
    ms += [tar_member("hl", type=tarfile.LNKTYPE, linkname="me"),
           tar_member("me", type=tarfile.LNKTYPE, linkname=linkname)]
    refused(make_tar(tmp_path / "h.tgz", ms), snaps, "unsafe_link", 422)


def test_hard_link_outside_the_wrapper(tmp_path, snaps):
    ms = tree_members(prefix="repo/")
    ms += [tar_member("repo/hl", type=tarfile.LNKTYPE, linkname="other/app.py")]
    refused(make_tar(tmp_path / "h.tgz", ms), snaps, "unsafe_link", 422)


@pytest.mark.parametrize("type_", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_special_files_in_tar(tmp_path, snaps, type_):
    ms = tree_members() + [tar_member("dev/thing", type=type_)]
    refused(make_tar(tmp_path / "s.tgz", ms), snaps, "special_file", 422, mentions=["dev/thing"])


@pytest.mark.parametrize("ftype", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_special_files_in_zip(tmp_path, snaps, ftype):
    p = make_zip(tmp_path / "s.zip")
    with zipfile.ZipFile(p, "a") as zf:
        zi = zipfile.ZipInfo("null")
        zi.create_system = 3
        zi.external_attr = (ftype | 0o666) << 16
        zf.writestr(zi, b"")
    refused(p, snaps, "special_file", 422, mentions=["null"])


def test_special_file_even_under_macosx(tmp_path, snaps):
    ms = tree_members() + [tar_member("__MACOSX/fifo", type=tarfile.FIFOTYPE)]
    refused(make_tar(tmp_path / "s.tgz", ms), snaps, "special_file", 422)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicates(tmp_path, snaps):
    p = make_zip(tmp_path / "d.zip", files=TREE + [("app.py", b"second", False)])
    refused(p, snaps, "duplicate_path", 422, mentions=["app.py"])
    p = make_tar(tmp_path / "d.tgz", tree_members(files=TREE + [("./app.py", b"second", False)]))
    refused(p, snaps, "duplicate_path", 422, mentions=["app.py"])
    # a path that is both a file and a folder
    p = make_zip(tmp_path / "d2.zip", files=TREE + [("app.py/x", b"x", False)])
    refused(p, snaps, "duplicate_path", 422, mentions=["app.py"])
    # a symlink and a file with the same path
    p = make_tar(tmp_path / "d3.tgz", tree_members(links=[("app.py", "README.md")]))
    refused(p, snaps, "duplicate_path", 422)
    # the same folder twice is harmless
    ms = [tar_member("src", type=tarfile.DIRTYPE)] + tree_members(dirs=["src"])
    assert snapshot_archive(make_tar(tmp_path / "ok.tgz", ms), snaps).content_hash == spec_hash(TREE)


# ------------------------------------------------------------------------------------------
# refusals: caps


def test_archive_too_large(tmp_path, snaps):
    p = make_zip(tmp_path / "a.zip")
    refused(p, snaps, "archive_too_large", 413, limits=ArchiveLimits(max_archive_bytes=100))

    class Stream(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):  # endless
            b[:] = bytes(len(b))
            return len(b)

    refused(Stream(), snaps, "archive_too_large", 413, limits=ArchiveLimits(max_archive_bytes=MiB))


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_too_many_files(tmp_path, snaps, kind):
    limits = ArchiveLimits(max_files=len(TREE) - 1)
    p = make_zip(tmp_path / "a.zip") if kind == "zip" else make_tar(tmp_path / "a.tgz", tree_members())
    refused(p, snaps, "too_many_files", 413, limits=limits)
    assert snapshot_archive(p, snaps, ArchiveLimits(max_files=len(TREE))).files


def test_too_many_entries_of_any_kind(tmp_path, snaps):
    limits = ArchiveLimits(max_files=2)
    dirs = [f"d{i}" for i in range(limits.max_entries + 1)]
    p = make_zip(tmp_path / "a.zip", files=TREE[:1], dirs=dirs)
    refused(p, snaps, "too_many_files", 413, limits=limits)


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_file_too_large(tmp_path, snaps, kind):
    limits = ArchiveLimits(max_file_bytes=500)
    p = make_zip(tmp_path / "a.zip") if kind == "zip" else make_tar(tmp_path / "a.tgz", tree_members())
    refused(p, snaps, "file_too_large", 413, limits=limits, mentions=["src/model/weights.txt"])


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_total_too_large(tmp_path, snaps, kind):
    limits = ArchiveLimits(max_total_bytes=1000)
    p = make_zip(tmp_path / "a.zip") if kind == "zip" else make_tar(tmp_path / "a.tgz", tree_members())
    refused(p, snaps, "too_large", 413, limits=limits)


def test_hard_links_count_towards_the_caps(tmp_path, snaps):
    big = os.urandom(100_000)
    ms = [tar_member("big.bin", big)]
    ms += [tar_member(f"copy{i}", type=tarfile.LNKTYPE, linkname="big.bin") for i in range(20)]
    p = make_tar(tmp_path / "h.tgz", ms)
    refused(p, snaps, "too_large", 413, limits=ArchiveLimits(max_total_bytes=1_000_000))


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_compression_ratio(tmp_path, snaps, kind):
    files = TREE + [("zeros.bin", bytes(4 * MiB), False)]
    if kind == "zip":
        p = make_zip(tmp_path / "a.zip", files=files)
    else:
        p = make_tar(tmp_path / "a.tgz", tree_members(files=files))
    refused(p, snaps, "compression_ratio", 422)
    s = snapshot_archive(p, snaps, ArchiveLimits(max_ratio=10_000))
    assert (s.path / "zeros.bin").stat().st_size == 4 * MiB


# ------------------------------------------------------------------------------------------
# bombs and lies


def test_raw_zip_helper_is_sound(tmp_path, snaps):
    n = 8 * MiB
    p = raw_zip(tmp_path / "z.zip", [{"name": "zeros.bin", "chunks": deflate_zeros(n),
                                      "crc": crc_zeros(n), "usize": n}])
    s = snapshot_archive(p, snaps, ArchiveLimits(max_ratio=1e9))
    assert (s.path / "zeros.bin").read_bytes() == bytes(n)


def test_zip_bomb_single_member(tmp_path, snaps):
    n = 2 * GiB
    p = raw_zip(tmp_path / "bomb.zip", [{"name": "zeros.bin", "chunks": deflate_zeros(n),
                                         "crc": crc_zeros(n), "usize": n}])
    assert p.stat().st_size < 3 * MiB
    t = time.monotonic()
    refused(p, snaps, "file_too_large", 413, mentions=["zeros.bin"])
    assert time.monotonic() - t < 20


def test_zip_bomb_many_members(tmp_path, snaps):
    n = 64 * MiB
    chunks = deflate_zeros(n)
    members = [{"name": f"z{i}.bin", "chunks": chunks, "crc": crc_zeros(n), "usize": n}
               for i in range(32)]  # 2 GB in 32 honest members under the per-file cap
    p = raw_zip(tmp_path / "bomb.zip", members)
    t = time.monotonic()
    refused(p, snaps, "compression_ratio", 422)
    # even with the ratio check out of the way, the total cap stops it
    refused(p, snaps, "too_large", 413, limits=ArchiveLimits(max_ratio=1e9))
    assert time.monotonic() - t < 20


def test_nested_zip_is_just_a_file(tmp_path, snaps):
    n = 512 * MiB
    inner = raw_zip(tmp_path / "inner.zip", [{"name": "zeros.bin", "chunks": deflate_zeros(n),
                                              "crc": crc_zeros(n), "usize": n}])
    outer = make_zip(tmp_path / "outer.zip", files=TREE + [("inner.zip", inner.read_bytes(), False)],
                     compression=zipfile.ZIP_STORED)
    t = time.monotonic()
    s = snapshot_archive(outer, snaps)
    assert time.monotonic() - t < 20
    assert (s.path / "inner.zip").read_bytes() == inner.read_bytes()
    assert s.total_bytes < 2 * MiB


def test_targz_bomb_single_member(tmp_path, snaps):
    n = 2 * GiB
    header = tarfile.TarInfo("zeros.bin")
    header.size = n
    p = gzip_with_zeros(tmp_path / "bomb.tgz", header.tobuf(tarfile.GNU_FORMAT), n, bytes(1024))
    assert p.stat().st_size < 3 * MiB
    t = time.monotonic()
    refused(p, snaps, "file_too_large", 413)
    assert time.monotonic() - t < 20


def test_targz_bomb_many_members(tmp_path, snaps):
    # sixteen 128 MB members, each under the per-file cap; the decompressed stream is 2 GB
    n = 128 * MiB
    p = tmp_path / "bomb.tgz"
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero_block = None
    with open(p, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03")
        for i in range(16):
            ti = tarfile.TarInfo(f"z{i}.bin")
            ti.size = n
            f.write(c.compress(ti.tobuf(tarfile.GNU_FORMAT)) + c.flush(zlib.Z_FULL_FLUSH))
            first = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
            zero_block = zero_block or c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
            f.write(first + zero_block * (n // MiB - 2))
        f.write(c.compress(bytes(1024)) + c.flush())
        f.write(struct.pack("<LL", 0, 0))  # never reached
    t = time.monotonic()
    refused(p, snaps, "compression_ratio", 422)
    refused(p, snaps, "too_large", 413, limits=ArchiveLimits(max_ratio=1e9))
    assert time.monotonic() - t < 20


def test_targz_with_zeros_after_the_tar(tmp_path, snaps):
    """A valid small tar followed by 2 GB of zeros: the stream itself is bounded."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for ti, f in tree_members():
            tf.addfile(ti, f)
    p = gzip_with_zeros(tmp_path / "tail.tgz", buf.getvalue(), 2 * GiB)
    t = time.monotonic()
    refused(p, snaps, "compression_ratio", 422)
    assert time.monotonic() - t < 20


def test_huge_pax_header_is_not_read_into_memory(tmp_path, snaps):
    n = 1 * GiB
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    pax.size = n
    p = gzip_with_zeros(tmp_path / "pax.tgz", pax.tobuf(tarfile.USTAR_FORMAT), n, bytes(1024))
    t = time.monotonic()
    refused(p, snaps, "not_an_archive", 422, mentions=["header"])
    assert time.monotonic() - t < 20


def test_zip_central_directory_understates_the_size(tmp_path, snaps):
    """Declared 1 KB, really 256 MB of zeros (and the CRC of the real data): refused without
    inflating the whole member and without leaving anything behind."""
    n = 256 * MiB
    p = raw_zip(tmp_path / "liar.zip", TREE_RAW() + [
        {"name": "zeros.bin", "chunks": deflate_zeros(n), "crc": crc_zeros(n), "usize": n,
         "cd_usize": 1024}])
    t = time.monotonic()
    refused(p, snaps, "not_an_archive", 422, mentions=["zeros.bin"])
    assert time.monotonic() - t < 20


def test_zip_central_directory_overstates_the_size(tmp_path, snaps):
    data = b"hello\n"
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunks = [c.compress(data) + c.flush()]
    p = raw_zip(tmp_path / "liar.zip", TREE_RAW() + [
        {"name": "short.txt", "chunks": chunks, "crc": zlib.crc32(data), "usize": len(data),
         "cd_usize": 4096}])
    refused(p, snaps, "not_an_archive", 422, mentions=["short.txt"])


def TREE_RAW():
    out = []
    for name, data, exe in TREE:
        out.append({"name": name, "chunks": [data], "crc": zlib.crc32(data), "usize": len(data),
                    "method": 0, "mode": stat.S_IFREG | (0o755 if exe else 0o644)})
    return out


def test_bytes_are_counted_while_extracting(tmp_path, snaps, monkeypatch):
    """If the decoder ever produced more than a member declares, extraction stops at once."""
    p = make_zip(tmp_path / "a.zip")

    class Endless(io.RawIOBase):
        produced = 0

        def readable(self):
            return True

        def readinto(self, b):
            Endless.produced += len(b)
            b[:] = bytes(len(b))
            return len(b)

    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: Endless())
    t = time.monotonic()
    refused(p, snaps, "not_an_archive", 422)
    assert time.monotonic() - t < 20
    assert Endless.produced <= 4 * MiB


@pytest.mark.parametrize("gz", [False, True])
def test_tar_without_end_of_archive_blocks_is_fine(tmp_path, snaps, gz):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for ti, f in tree_members():
            tf.addfile(ti, f)
    raw = buf.getvalue().rstrip(b"\0")
    raw += bytes(-len(raw) % 512)
    p = tmp_path / "noend.tar"
    p.write_bytes(gzip.compress(raw) if gz else raw)
    assert snapshot_archive(p, snaps).content_hash == spec_hash(TREE)


def test_zip_with_a_lying_entry_count(tmp_path, snaps):
    """The end record says 3 entries, the central directory holds 3000: the real count is checked."""
    limits = ArchiveLimits(max_files=10)
    p = make_zip(tmp_path / "a.zip", files=[(f"f{i}", b"", False) for i in range(3000)])
    data = bytearray(p.read_bytes())
    i = data.rfind(b"PK\x05\x06")
    data[i + 8:i + 12] = struct.pack("<HH", 3, 3)
    p.write_bytes(bytes(data))
    refused(p, snaps, "too_many_files", 413, limits=limits)


def test_truncated_tar_member(tmp_path, snaps):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for ti, f in tree_members():
            tf.addfile(ti, f)
    ti = tarfile.TarInfo("big.bin")
    ti.size = 100_000
    raw = buf.getvalue()[:-1024 * 9]  # drop the end-of-archive blocks, keep the members
    raw = raw.rstrip(b"\0")
    raw += bytes(-len(raw) % 512) + ti.tobuf(tarfile.GNU_FORMAT) + b"only a little data"
    p = tmp_path / "t.tar"
    p.write_bytes(raw)
    refused(p, snaps, "not_an_archive", 422)


# ------------------------------------------------------------------------------------------
# nothing left behind when something else goes wrong


def test_failure_while_writing_leaves_nothing(tmp_path, snaps, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "symlink", boom)
    p = make_zip(tmp_path / "a.zip", links=LINKS)
    with pytest.raises(OSError) as ei:
        snapshot_archive(p, snaps)
    assert not isinstance(ei.value, ArchiveError)
    assert leftovers(snaps) == []


def test_losing_a_race_to_an_identical_upload(tmp_path, snaps, monkeypatch):
    real_rename = os.rename

    def rename(src, dst):  # another worker finishes the same snapshot first
        shutil.copytree(src, dst, symlinks=True)
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    s = snapshot_archive(make_zip(tmp_path / "a.zip", links=LINKS), snaps)
    assert leftovers(snaps) == [s.content_hash]
    assert (s.path / "README.md").read_bytes() == TREE[0][1]


def test_errors_are_runner_errors_with_codes():
    e = ArchiveError("nope", code="unsafe_path")
    assert (str(e), e.code, e.http_status) == ("nope", "unsafe_path", 422)
    assert ArchiveError("big", code="too_large", http_status=413).http_status == 413
