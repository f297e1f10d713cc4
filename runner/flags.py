"""The flag files nginx reads per request, so that what they say changes without a reload.

* ``<routes_dir>/../slots/<label>.b`` exists while slot b of a two-slot container route serves
  (a blue/green switch is one file created or removed; ``.moved`` records when a slot last
  moved, for ``proxy.wait_applied``);
* ``<routes_dir>/../frames/<label>`` exists while only the hub may frame the app (README
  ``disable_embedding: true``; issue 14).

Each route file tests its flags with ``if (-f ...)``, cached per worker for at most a second
(runner/proxy.py). ``config`` is a ``proxy.ProxyConfig``; labels are validated here, as the
file names nginx reads. Plain Python, no Django.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

from runner.exceptions import RouteError

SLOTS = ("a", "b")
TMP_PREFIX = ".tmp-"          # temp files never match the proxy's "*.conf" include
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_label(text: str) -> bool:
    return bool(_LABEL_RE.fullmatch(text))


def validate_label(label: str) -> str:
    """Return ``label`` if it is a DNS-safe label (``[a-z0-9-]{1,63}``, no leading or
    trailing '-'); raise :class:`RouteError` otherwise."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise RouteError(f"invalid route label {label!r}: expected 1-63 of [a-z0-9-], "
                         "not starting or ending with '-'")
    return label


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _flag_dir(directory: Path) -> None:
    # Searchable by the proxy's workers, which check the flags and may run as another user: a
    # flag they cannot see reads as absent (whatever the umask made of the directory).
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # another user's directory: theirs to set
        os.chmod(directory, 0o755)


# --------------------------------------------------------------------------- blue/green slots
def slot_flag(label: str, config) -> Path:
    return config.slots_dir / f"{validate_label(label)}.b"


def active_slot(label: str, config) -> str:
    """The slot the proxy sends ``label``'s requests to: "b" while its flag exists, else "a"."""
    return "b" if slot_flag(label, config).exists() else "a"


def set_active_slot(label: str, slot: str, config) -> bool:
    """Point ``label``'s two-slot route at ``slot``, effective for the next request of every
    proxy worker (nginx checks the flag file per request). Returns whether it moved."""
    if slot not in SLOTS:
        raise RouteError(f"invalid slot {slot!r}: expected one of {SLOTS}")
    flag = slot_flag(label, config)
    if slot == "a":
        try:
            flag.unlink()
        except FileNotFoundError:
            return False
        _slot_moved(config)
        return True
    if flag.exists():
        return False
    _flag_dir(config.slots_dir)
    write_atomic(flag, "b\n")
    _slot_moved(config)
    return True


def _slot_moved(config) -> None:
    """Record when a slot last moved: wait_applied() waits until every worker can see it."""
    write_atomic(config.slots_dir / ".moved", f"{time.time():.3f}\n")


# --------------------------------------------------------------------------- embedding
def frames_flag(label: str, config) -> Path:
    return config.frames_dir / validate_label(label)


def embedding_allowed(label: str, config) -> bool:
    """Whether the proxy lets any site frame ``label``'s app (no frames flag)."""
    return not frames_flag(label, config).exists()


def set_embedding(label: str, allowed: bool, config) -> bool:
    """Let any site frame ``label``'s public app, or only the hub (and the app itself); takes
    effect within a second, with no reload. Returns whether it changed."""
    flag = frames_flag(label, config)
    if allowed:
        try:
            flag.unlink()
        except FileNotFoundError:
            return False
        return True
    if flag.exists():
        return False
    _flag_dir(config.frames_dir)
    write_atomic(flag, "hub-only\n")
    return True
