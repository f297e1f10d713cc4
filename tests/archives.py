"""Build repo archives in memory for tests and benchmarks."""
from __future__ import annotations

import io
import tarfile
import zipfile


def make_archive(files: dict[str, str | bytes], *, fmt: str = "tar.gz") -> bytes:
    """An in-memory .tar.gz (default) or .zip of `files` (path -> content)."""
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, content in files.items():
                zf.writestr(path, content)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for path, content in files.items():
                _add_file(tf, path, content)
    return buf.getvalue()


def _add_file(tf: tarfile.TarFile, path: str, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


class _Zeros(io.RawIOBase):
    """`size` bytes of one repeated line, produced on demand (no 100 MB string in memory)."""

    def __init__(self, size: int, line: bytes):
        self.left = size
        self.chunk = line * (65536 // len(line) + 1)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left, len(self.chunk))
        b[:n] = self.chunk[:n]
        self.left -= n
        return n


def make_big_file_archive(big_path: str, big_size: int, files: dict[str, str | bytes], *,
                          line: bytes = b"All work and no play.\n") -> bytes:
    """A .tar.gz with one highly compressible file of `big_size` bytes first, then `files`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        info = tarfile.TarInfo(big_path)
        info.size = big_size
        info.mode = 0o644
        tf.addfile(info, io.BufferedReader(_Zeros(big_size, line), 1 << 20))
        for path, content in files.items():
            _add_file(tf, path, content)
    return buf.getvalue()
