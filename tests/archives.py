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
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
