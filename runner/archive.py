"""Uploaded interface repos: check an archive, then turn it into an immutable snapshot.

An upload is a .zip, a gzip-compressed tar or a plain tar (recognised by its magic bytes, never
by its name). `snapshot_archive` reads the whole table of contents first and refuses the upload
(`ArchiveError`, see `runner.exceptions`) before anything is written if any member is unsafe:

* paths: absolute, drive letters, `..` anywhere, control characters, names that are not UTF-8
  -> ``unsafe_path``. A backslash is read as a folder separator (Windows zip tools write them),
  so ``..\\x`` or ``\\x`` are caught by the same rules;
* links: a symbolic link must be relative and, resolved inside the tree the way the kernel
  would (following the archive's other links), stay inside the repo; a tar hard link must name
  a regular file of the archive -> ``unsafe_link``. Nothing is ever written through a link;
* device files, FIFOs, sockets, unknown member types -> ``special_file``;
* the same path twice, or a path that is both a file and a folder -> ``duplicate_path``;
* caps (`ArchiveLimits`) on the upload size, the file count, each file's size, the total size
  and the compression ratio. They are checked on the declared sizes up front, and again on the
  bytes actually produced while extracting (a member producing more than it declared is
  refused), and the decompressed tar stream as a whole is bounded, so a bomb is refused after
  reading at most a bounded amount and never fills the disk. Nested archives are plain files.

Accepted archives are extracted into ``<snapshots_dir>/.tmp-*``, then renamed atomically to
``<snapshots_dir>/<content_hash>``. A single top-level folder wrapping everything (GitHub's
"download zip") is stripped; ``__MACOSX`` and ``.DS_Store`` entries are dropped. Only regular
files, symbolic links and the folders they need are created (no empty folders, so the tree is
exactly what the hash describes); files get mode 0644 (0755 if executable in the archive),
folders 0755; ownership, times and setuid bits from the archive are ignored.

This module is plain Python: no Django.
"""
from __future__ import annotations

import collections
import contextlib
import gzip
import hashlib
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from runner.exceptions import ArchiveError

__all__ = ["ArchiveLimits", "Snapshot", "check_archive", "snapshot_archive"]

_CHUNK = 1 << 20                 # streaming unit
_MAX_HEADER_READ = 1 << 20       # largest single read tarfile may ask for (pax / GNU long names)
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 4096
_MAX_LINK_TARGET_BYTES = 4095
_MAX_LINK_HOPS = 40
_TAR_OVERHEAD_PER_ENTRY = 4096   # header + long-name/pax blocks + padding, generously
_DROPPED = frozenset({"__MACOSX", ".DS_Store"})
_TMP_PREFIX = ".tmp-"
_NOT_AN_ARCHIVE = "the upload is not a readable .zip or .tar.gz archive"

_READ_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError,
    EOFError, OSError, NotImplementedError, RuntimeError, ValueError, struct.error,
    UnicodeError, KeyError, IndexError, OverflowError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 100 * 2**20      # size of the uploaded file itself -> 413 "archive_too_large"
    max_files: int = 5000                      # -> 413 "too_many_files"
    max_total_bytes: int = 500 * 2**20         # sum of uncompressed sizes -> 413 "too_large"
    max_file_bytes: int = 200 * 2**20          # one member -> 413 "file_too_large"
    max_ratio: float = 200.0                   # total uncompressed / archive size -> 422 "compression_ratio"
    # README.md at the repo root is the space's configuration, read in the upload request:
    # its own, much smaller cap -> 413 "readme_too_large" (0: none).
    max_readme_bytes: int = 0

    @property
    def max_entries(self) -> int:
        """Cap on raw archive entries of any kind (folders, dropped macOS files included)."""
        return 4 * self.max_files + 1000


@dataclass(frozen=True)
class Snapshot:
    content_hash: str        # hex sha256, see below
    path: Path               # <snapshots_dir>/<content_hash>
    files: tuple[str, ...]   # sorted relative posix paths of regular files
    total_bytes: int


# --------------------------------------------------------------------------------------------
# errors


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    raise AssertionError  # pragma: no cover


def _not_an_archive(detail: str = "") -> ArchiveError:
    return ArchiveError(f"{_NOT_AN_ARCHIVE} ({detail})" if detail else _NOT_AN_ARCHIVE,
                        code="not_an_archive", http_status=422)


def _unsafe_path(name: str, why: str) -> ArchiveError:
    return ArchiveError(f"the path {name!r} is not safe: {why}",
                        code="unsafe_path", http_status=422)


def _unsafe_link(name: str, target: str, why: str) -> ArchiveError:
    return ArchiveError(f"the link {name!r} -> {target!r} is refused: {why}",
                        code="unsafe_link", http_status=422)


@contextlib.contextmanager
def _reading(what: str = "") -> Iterator[None]:
    """Turn a decoder's complaint (corrupt, truncated, unsupported data) into not_an_archive."""
    try:
        yield
    except ArchiveError:
        raise
    except _READ_ERRORS as e:
        detail = f"{what}: {e}" if what else str(e)
        raise _not_an_archive(detail or type(e).__name__) from e


class _Budget:
    """Running totals, shared by the up-front check (declared sizes) and extraction (real bytes)."""

    def __init__(self, limits: ArchiveLimits, archive_bytes: int):
        self.limits = limits
        self.archive_bytes = archive_bytes
        self.total = 0

    def check_file(self, name: str, size: int) -> None:
        if size > self.limits.max_file_bytes:
            raise ArchiveError(
                f"the file {name!r} is {_size(size)} uncompressed; the limit is "
                f"{_size(self.limits.max_file_bytes)} per file",
                code="file_too_large", http_status=413)

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.limits.max_total_bytes:
            raise _too_large(self.limits)
        if self.total > self.limits.max_ratio * self.archive_bytes:
            raise _ratio_error(self.limits, self.archive_bytes)


README = "README.md"


def _check_readme(m: "_Member", parts: tuple[str, ...], limits: ArchiveLimits) -> None:
    """Refuse an oversized README.md at the repo root, on its declared size, before extraction."""
    if limits.max_readme_bytes and parts == (README,) and m.size > limits.max_readme_bytes:
        raise ArchiveError(
            f"README.md is {_size(m.size)}; the limit for a README is {_size(limits.max_readme_bytes)} "
            "(README_MAX_BYTES): keep long documents in other files",
            code="readme_too_large", http_status=413)


def _too_large(limits: ArchiveLimits) -> ArchiveError:
    return ArchiveError(
        f"the archive expands to more than {_size(limits.max_total_bytes)}, the limit for a repo",
        code="too_large", http_status=413)


def _ratio_error(limits: ArchiveLimits, archive_bytes: int) -> ArchiveError:
    return ArchiveError(
        f"the archive expands to more than {limits.max_ratio:g} times its own size "
        f"({_size(archive_bytes)}); this looks like a compression bomb",
        code="compression_ratio", http_status=422)


# --------------------------------------------------------------------------------------------
# paths


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _parts(name: str, *, link_target_of: str | None = None) -> tuple[str, ...]:
    """Split an archive path into safe components ('.' and empty ones dropped); () is the root.

    With `link_target_of`, failures are reported as unsafe_link (for tar hard link targets)."""

    def refuse(why: str) -> ArchiveError:
        if link_target_of is not None:
            return _unsafe_link(link_target_of, name, why)
        return _unsafe_path(name, why)

    if _CONTROL.search(name):
        raise refuse("it contains control characters")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("the name is not valid UTF-8") from None
    if len(raw) > _MAX_PATH_BYTES:
        raise refuse("the path is too long")
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        raise refuse("absolute paths are not allowed")
    if _DRIVE.match(norm):
        raise refuse("drive letters are not allowed")
    parts = tuple(p for p in norm.split("/") if p not in ("", "."))
    if ".." in parts:
        raise refuse("'..' is not allowed")
    if any(len(p.encode("utf-8")) > _MAX_NAME_BYTES for p in parts):
        raise refuse("a name is longer than 255 bytes")
    return parts


def _check_link_target(name: str, target: str) -> None:
    if not target:
        raise _unsafe_link(name, target, "the target is empty")
    if _CONTROL.search(target):
        raise _unsafe_link(name, target, "the target contains control characters")
    try:
        raw = target.encode("utf-8")
    except UnicodeEncodeError:
        raise _unsafe_link(name, target, "the target is not valid UTF-8") from None
    if len(raw) > _MAX_LINK_TARGET_BYTES:
        raise _unsafe_link(name, target, "the target is too long")
    if target.startswith("/") or _DRIVE.match(target):
        raise _unsafe_link(name, target, "absolute targets are not allowed")
    if "\\" in target:
        raise _unsafe_link(name, target, "backslashes are not allowed in link targets")


def _resolve_escapes(link: tuple[str, ...], symlinks: dict[tuple[str, ...], str]) -> str | None:
    """Resolve `link` the way the kernel would, inside the tree, following the archive's own
    symbolic links. Returns why it is unsafe, or None if it stays inside the repo."""
    parts = list(link[:-1])
    pending = collections.deque(symlinks[link].split("/"))
    hops = 0
    while pending:
        c = pending.popleft()
        if c in ("", "."):
            continue
        if c == "..":
            if not parts:
                return "it points outside the repo"
            parts.pop()
            continue
        parts.append(c)
        target = symlinks.get(tuple(parts))
        if target is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return "too many levels of symbolic links"
            parts.pop()
            pending.extendleft(reversed(target.split("/")))
    return None


# --------------------------------------------------------------------------------------------
# reading archives


@dataclass
class _Member:
    name: str                    # as written in the archive, for messages
    kind: str                    # "file" | "dir" | "symlink" | "hardlink"
    size: int = 0                # declared uncompressed size (files)
    executable: bool = False
    target: str = ""             # symlink target / hard link target as written
    ref: object = None           # ZipInfo / TarInfo
    parts: tuple[str, ...] = ()
    target_parts: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()      # hard links: the regular file they share content with
    digest: str = field(default="", repr=False)


class _Source:
    def members(self) -> Iterator[_Member]:
        raise NotImplementedError

    def open(self, member: _Member) -> BinaryIO:
        raise NotImplementedError

    def order(self, member: _Member) -> int:
        return 0

    def finish(self) -> None:
        """Called after extraction; may read the rest of the stream to verify it."""

    def close(self) -> None:
        pass


class _ZipSource(_Source):
    _SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}

    def __init__(self, fh: BinaryIO, limits: ArchiveLimits):
        # A cheap look at the end record first, so that a central directory announcing
        # millions of entries is refused before zipfile builds an object for each.
        try:
            endrec = zipfile._EndRecData(fh)  # type: ignore[attr-defined]  # noqa: SLF001  (no public API reads the central directory's counts)
        except Exception:  # noqa: BLE001 - private helper; zipfile below gives the real verdict
            endrec = None
        if endrec and (
            endrec[zipfile._ECD_ENTRIES_TOTAL] > limits.max_entries  # type: ignore[attr-defined]  # noqa: SLF001  (no public API reads the central directory's counts)
            # a lying count: a directory record is ~100 bytes, 1 KB each is very generous
            or endrec[zipfile._ECD_SIZE] > limits.max_entries * 1024  # type: ignore[attr-defined]  # noqa: SLF001  (no public API reads the central directory's counts)
        ):
            raise _too_many(limits)
        fh.seek(0)
        with _reading():
            self.zf = zipfile.ZipFile(fh)

    def members(self) -> Iterator[_Member]:
        for info in self.zf.infolist():
            name = info.filename
            mode = info.external_attr >> 16
            ftype = stat.S_IFMT(mode)
            if name.endswith("/") or ftype == stat.S_IFDIR:
                yield _Member(name, "dir", ref=info)
                continue
            if info.flag_bits & 0x1:
                raise _not_an_archive(f"{name!r} is encrypted")
            if info.compress_type not in self._SUPPORTED:
                raise _not_an_archive(f"{name!r} uses an unsupported compression method")
            if ftype == stat.S_IFLNK:
                if info.file_size > _MAX_LINK_TARGET_BYTES:
                    raise _unsafe_link(name, "...", "the target is too long")
                with _reading(repr(name)), self.zf.open(info) as f:
                    raw = f.read(_MAX_LINK_TARGET_BYTES + 1)
                try:
                    target = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _unsafe_link(name, repr(raw)[2:-1], "the target is not valid UTF-8") from None
                yield _Member(name, "symlink", target=target, ref=info)
            elif ftype in (0, stat.S_IFREG):
                yield _Member(name, "file", size=info.file_size, executable=bool(mode & 0o111),
                              ref=info)
            else:
                raise _special(name, ftype)

    def open(self, member: _Member) -> BinaryIO:
        return self.zf.open(member.ref)  # type: ignore[arg-type,return-value]

    def order(self, member: _Member) -> int:
        return member.ref.header_offset  # type: ignore[attr-defined]  # noqa: SLF001  (no public API reads the central directory's counts)

    def close(self) -> None:
        self.zf.close()


class _BoundedStream:
    """Read-only, seekable view of a (decompressed) stream for tarfile, refusing to go past
    `cap` bytes and refusing oversized single reads (a pax header declaring gigabytes would
    otherwise be read into memory in one go). Forward seeks read and discard in chunks, so the
    decompressed position is always known; a backward seek rewinds to the start. A plain
    (uncompressed) file is simply seeked."""

    def __init__(self, inner: BinaryIO, cap: float, cap_error: Callable[[], ArchiveError],
                 decompressing: bool):
        self.inner = inner
        self.cap = cap
        self.cap_error = cap_error
        self.decompressing = decompressing
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > _MAX_HEADER_READ:
            raise _not_an_archive("a tar header is unreasonably large")
        if self.pos + n > self.cap:
            raise self.cap_error()
        data = self.inner.read(n)
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self.pos
        elif whence != os.SEEK_SET:
            raise OSError("unsupported seek")
        if offset > self.cap:
            raise self.cap_error()
        if not self.decompressing:
            self.pos = self.inner.seek(offset)
            return self.pos
        if offset < self.pos:
            self.inner.seek(0)
            self.pos = 0
        while self.pos < offset:
            data = self.inner.read(min(_CHUNK, offset - self.pos))
            if not data:
                break
            self.pos += len(data)
        return self.pos


class _TarSource(_Source):
    def __init__(self, fh: BinaryIO, compressed: bool, archive_bytes: int, limits: ArchiveLimits):
        ratio_cap = limits.max_ratio * archive_bytes
        if compressed:
            content_cap = min(limits.max_total_bytes, ratio_cap)
            cap_error: Callable[[], ArchiveError] = (
                (lambda: _ratio_error(limits, archive_bytes)) if ratio_cap < limits.max_total_bytes
                else (lambda: _too_large(limits)))
            cap: float = int(content_cap) + limits.max_entries * _TAR_OVERHEAD_PER_ENTRY + 10240
            self.gz: gzip.GzipFile | None = gzip.GzipFile(fileobj=fh, mode="rb")
            inner: BinaryIO = self.gz  # type: ignore[assignment]
        else:
            # The file itself is the bound; reads past its end just come back short.
            self.gz = None
            cap = float("inf")
            cap_error = _not_an_archive
            inner = fh
        self.stream = _BoundedStream(inner, cap, cap_error, decompressing=compressed)
        with _reading():
            self.tf = tarfile.TarFile(fileobj=self.stream, mode="r",  # type: ignore[arg-type]
                                      encoding="utf-8", errors="surrogateescape")

    def members(self) -> Iterator[_Member]:
        while True:
            with _reading():
                ti = self.tf.next()
            if ti is None:
                return
            name = ti.name
            if ti.isreg():
                yield _Member(name, "file", size=ti.size, executable=bool(ti.mode & 0o111), ref=ti)
            elif ti.isdir():
                yield _Member(name, "dir", ref=ti)
            elif ti.issym():
                yield _Member(name, "symlink", target=ti.linkname, ref=ti)
            elif ti.islnk():
                yield _Member(name, "hardlink", target=ti.linkname,
                              executable=bool(ti.mode & 0o111), ref=ti)
            else:
                raise _special(name, {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                                      tarfile.FIFOTYPE: stat.S_IFIFO}.get(ti.type, -1))

    def open(self, member: _Member) -> BinaryIO:
        f = self.tf.extractfile(member.ref)  # type: ignore[arg-type]
        assert f is not None
        return f  # type: ignore[return-value]

    def order(self, member: _Member) -> int:
        return member.ref.offset_data  # type: ignore[attr-defined]  # noqa: SLF001  (no public API reads the central directory's counts)

    def finish(self) -> None:
        # Read what is left of a compressed stream (end blocks, padding, the gzip trailer) so
        # that a bad CRC or corrupt data anywhere is noticed. Bounded like everything else.
        if self.gz is not None:
            while self.stream.read(int(min(_CHUNK, max(self.stream.cap - self.stream.pos, 1)))):
                pass

    def close(self) -> None:
        self.tf.close()
        if self.gz is not None:
            self.gz.close()


def _special(name: str, ftype: int) -> ArchiveError:
    what = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
            stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}.get(ftype, "an unsupported kind of entry")
    return ArchiveError(f"the entry {name!r} is {what}; only regular files, folders and links are allowed",
                        code="special_file", http_status=422)


def _too_many(limits: ArchiveLimits) -> ArchiveError:
    return ArchiveError(f"the archive holds more than {limits.max_files} files",
                        code="too_many_files", http_status=413)


def _detect(head: bytes) -> str | None:
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tgz"
    if len(head) >= 512:
        if head[257:262] == b"ustar":
            return "tar"
        if head[:512] == bytes(512):          # an empty tar is just zero blocks
            return "tar"
        try:                                   # old v7 tar: no magic, but a valid checksum
            tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
            return "tar"
        except tarfile.TarError:
            pass
    return None


# --------------------------------------------------------------------------------------------
# the plan: everything decided before a byte is written


@dataclass
class _Plan:
    files: list[_Member]
    hardlinks: list[_Member]
    symlinks: list[_Member]


def _plan(source: _Source, limits: ArchiveLimits, archive_bytes: int) -> _Plan:
    budget = _Budget(limits, archive_bytes)
    kept: list[_Member] = []
    entries = 0
    counted = 0
    for m in source.members():
        entries += 1
        if entries > limits.max_entries:
            raise _too_many(limits)
        m.parts = _parts(m.name)
        if any(p in _DROPPED for p in m.parts):
            continue
        if not m.parts:
            if m.kind == "dir":
                continue                       # "./" or the like
            raise _unsafe_path(m.name, "the entry has no name")
        if m.kind != "dir":
            counted += 1
            if counted > limits.max_files:
                raise _too_many(limits)
        if m.kind == "file":
            # Checked first, so a huge README is refused as such (not as a bomb) at once.
            _check_readme(m, m.parts, limits)
            budget.check_file(m.name, m.size)
            budget.add(m.size)
        kept.append(m)

    if not any(m.kind in ("file", "hardlink") for m in kept):
        raise ArchiveError("the archive contains no files", code="empty_archive", http_status=422)

    # A single folder wrapping everything (GitHub's "download zip") is the repo root.
    wrapper: str | None = None
    tops = {m.parts[0] for m in kept}
    if len(tops) == 1:
        top = next(iter(tops))
        if all(len(m.parts) > 1 or m.kind == "dir" for m in kept):
            wrapper = top
    if wrapper is not None:
        for m in kept:
            m.parts = m.parts[1:]
            if m.kind == "file":
                _check_readme(m, m.parts, limits)
        kept = [m for m in kept if m.parts]

    by_path: dict[tuple[str, ...], _Member] = {}
    for m in kept:
        other = by_path.get(m.parts)
        if other is not None:
            if other.kind == "dir" and m.kind == "dir":
                continue
            raise ArchiveError(f"the path {'/'.join(m.parts)!r} appears more than once in the archive",
                               code="duplicate_path", http_status=422)
        by_path[m.parts] = m
    for m in kept:
        for i in range(1, len(m.parts)):
            parent = by_path.get(m.parts[:i])
            if parent is None or parent.kind == "dir":
                continue
            if parent.kind == "symlink":
                raise _unsafe_link(parent.name, parent.target,
                                   f"{m.name!r} would be written through it")
            raise ArchiveError(f"the path {'/'.join(parent.parts)!r} is both a file and a folder",
                               code="duplicate_path", http_status=422)

    symlinks: dict[tuple[str, ...], str] = {}
    for m in kept:
        if m.kind == "symlink":
            _check_link_target(m.name, m.target)
            symlinks[m.parts] = m.target
    for m in kept:
        if m.kind == "symlink":
            why = _resolve_escapes(m.parts, symlinks)
            if why:
                raise _unsafe_link(m.name, m.target, why)

    hardlinks = [m for m in kept if m.kind == "hardlink"]
    for m in hardlinks:
        target = _parts(m.target, link_target_of=m.name)
        if wrapper is not None:
            if not target or target[0] != wrapper:
                raise _unsafe_link(m.name, m.target, "it points outside the repo")
            target = target[1:]
        m.target_parts = target
    for m in hardlinks:
        seen = {m.parts}
        node = by_path.get(m.target_parts)
        while node is not None and node.kind == "hardlink" and node.parts not in seen:
            seen.add(node.parts)
            node = by_path.get(node.target_parts)
        if node is None or node.kind != "file":
            raise _unsafe_link(m.name, m.target, "a hard link must name a file of the archive")
        m.resolved = node.parts
        m.size = node.size
        budget.check_file(m.name, node.size)
        budget.add(node.size)

    return _Plan(
        files=[m for m in kept if m.kind == "file"],
        hardlinks=[m for m in kept if m.kind == "hardlink"],
        symlinks=[m for m in kept if m.kind == "symlink"],
    )


# --------------------------------------------------------------------------------------------
# extraction


class _Tree:
    """Creates folders inside a fresh temporary root, 0755, never following links."""

    def __init__(self, root: Path):
        self.root = root
        self.made: set[tuple[str, ...]] = {()}

    def path(self, parts: tuple[str, ...]) -> Path:
        return self.root.joinpath(*parts)

    def parents(self, parts: tuple[str, ...]) -> None:
        for i in range(1, len(parts)):
            sub = parts[:i]
            if sub not in self.made:
                p = self.path(sub)
                os.mkdir(p, 0o755)
                os.chmod(p, 0o755)  # whatever the umask
                self.made.add(sub)


def _create(path: Path, executable: bool) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o755 if executable else 0o644)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _extract_file(source: _Source, m: _Member, tree: _Tree, budget: _Budget) -> None:
    tree.parents(m.parts)
    fd = _create(tree.path(m.parts), m.executable)
    h = hashlib.sha256()
    n = 0
    try:
        with _reading(repr(m.name)):
            f = source.open(m)
        try:
            while True:
                with _reading(repr(m.name)):
                    chunk = f.read(_CHUNK)
                if not chunk:
                    break
                n += len(chunk)
                if n > m.size:
                    raise _not_an_archive(f"{m.name!r} holds more data than its header declares")
                budget.check_file(m.name, n)
                budget.add(len(chunk))
                h.update(chunk)
                _write_all(fd, chunk)
        finally:
            with contextlib.suppress(Exception):
                f.close()
    finally:
        os.close(fd)
    if n != m.size:
        raise _not_an_archive(f"{m.name!r} is shorter than its header declares")
    m.digest = h.hexdigest()


def _extract(source: _Source, plan: _Plan, root: Path, limits: ArchiveLimits,
             archive_bytes: int) -> None:
    tree = _Tree(root)
    budget = _Budget(limits, archive_bytes)
    for m in sorted(plan.files, key=source.order):
        _extract_file(source, m, tree, budget)
    with _reading():
        source.finish()
    digests = {m.parts: m for m in plan.files}
    for m in plan.hardlinks:
        budget.add(m.size)
        src = digests[m.resolved]
        tree.parents(m.parts)
        fd = _create(tree.path(m.parts), m.executable)
        try:
            with open(tree.path(src.parts), "rb") as f:
                while chunk := f.read(_CHUNK):
                    _write_all(fd, chunk)
        finally:
            os.close(fd)
        m.digest = src.digest
    for m in plan.symlinks:
        tree.parents(m.parts)
        os.symlink(m.target, tree.path(m.parts))


def _content_hash(plan: _Plan) -> str:
    lines: list[tuple[str, bytes]] = []
    for m in plan.files + plan.hardlinks:
        path = "/".join(m.parts)
        lines.append((path, f"{path}\0{'x' if m.executable else '-'}\0{m.digest}\n".encode()))
    for m in plan.symlinks:
        path = "/".join(m.parts)
        lines.append((path, f"{path}\0l\0{m.target}\n".encode()))
    h = hashlib.sha256()
    for _, line in sorted(lines):
        h.update(line)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# entry point


def _open_upload(src: str | Path | BinaryIO, limits: ArchiveLimits,
                 stack: contextlib.ExitStack) -> tuple[BinaryIO, int]:
    if isinstance(src, (str, os.PathLike)):
        fh: BinaryIO = stack.enter_context(open(src, "rb"))
    else:
        fh = src
        seekable = getattr(fh, "seekable", None)
        if not (seekable and seekable()):
            spool = stack.enter_context(tempfile.TemporaryFile())
            copied = 0
            while chunk := fh.read(_CHUNK):
                copied += len(chunk)
                if copied > limits.max_archive_bytes:
                    raise _archive_too_large(copied, limits, at_least=True)
                spool.write(chunk)
            fh = spool  # type: ignore[assignment]
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    if size > limits.max_archive_bytes:
        raise _archive_too_large(size, limits)
    return fh, size


def _archive_too_large(size: int, limits: ArchiveLimits, at_least: bool = False) -> ArchiveError:
    return ArchiveError(
        f"the archive is {'more than ' if at_least else ''}{_size(size)}; "
        f"the limit is {_size(limits.max_archive_bytes)}",
        code="archive_too_large", http_status=413)


def check_archive(src: str | Path | BinaryIO, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Every check of `snapshot_archive` (raising the same ArchiveError), writing nothing: for
    a git push's intermediate commits, whose trees must pass as their tip's does."""
    with contextlib.ExitStack() as stack:
        fh, archive_bytes = _open_upload(src, limits, stack)
        kind = _detect(fh.read(512))
        fh.seek(0)
        if kind is None:
            raise _not_an_archive()
        source = _ZipSource(fh, limits) if kind == "zip" else _TarSource(fh, kind == "tgz", archive_bytes, limits)
        stack.callback(source.close)
        _plan(source, limits, archive_bytes)
        source.finish()


def snapshot_archive(src: str | Path | BinaryIO, snapshots_dir: Path,
                     limits: ArchiveLimits = ArchiveLimits()) -> Snapshot:
    """Validate the whole archive before writing anything, then extract it into a temp dir inside
    snapshots_dir, compute the content hash, and atomically rename it to snapshots_dir/<hash>
    (if that already exists, discard the temp copy and return the existing one: content-addressed,
    immutable). Raises ArchiveError; on any error nothing is left behind in snapshots_dir.

    `src` is a path or a binary file object (read from its start; it is not closed). The
    content hash is sha256 over, for each regular file in sorted path order,
    ``path \\0 ("x"|"-") \\0 sha256(content) \\n`` and for each symbolic link
    ``path \\0 l \\0 target \\n``, so the same tree has the same hash whatever the format."""
    snapshots_dir = Path(snapshots_dir)
    with contextlib.ExitStack() as stack:
        fh, archive_bytes = _open_upload(src, limits, stack)
        head = fh.read(512)
        fh.seek(0)
        kind = _detect(head)
        if kind is None:
            raise _not_an_archive()
        source: _Source
        if kind == "zip":
            source = _ZipSource(fh, limits)
        else:
            source = _TarSource(fh, kind == "tgz", archive_bytes, limits)
        stack.callback(source.close)

        plan = _plan(source, limits, archive_bytes)

        snapshots_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=snapshots_dir))
        try:
            _extract(source, plan, tmp, limits, archive_bytes)
            content_hash = _content_hash(plan)
            os.chmod(tmp, 0o755)
            final = snapshots_dir / content_hash
            if final.is_dir():
                shutil.rmtree(tmp)
            else:
                try:
                    os.rename(tmp, final)
                except OSError:
                    if not final.is_dir():     # lost a race to an identical upload: fine
                        raise
                    shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    files = sorted(("/".join(m.parts), m.size) for m in plan.files + plan.hardlinks)
    return Snapshot(
        content_hash=content_hash,
        path=final,
        files=tuple(p for p, _ in files),
        total_bytes=sum(s for _, s in files),
    )
