"""Small helpers of the Docker backend (runner/backends/docker.py): bridge names, the build
output reader, Docker's timestamps."""
from __future__ import annotations

import hashlib
import queue
import socket


def bridge_name(network: str) -> str:
    """The Linux bridge of a project network: "dhnet" and a hash of its name (15 characters at
    most, the kernel's limit); scripts/isolate.sh filters every "dhnet+" interface."""
    return "dhnet" + hashlib.sha1(network.encode()).hexdigest()[:10]


def read_into(stream, output: queue.SimpleQueue) -> None:
    """Move a build's output chunks into `output`, then ("end", None) or ("error", exception)."""
    try:
        for chunk in stream:
            output.put(("chunk", chunk))
        output.put(("end", None))
    except Exception as exc:  # noqa: BLE001 - handed to the thread that drives the build
        output.put(("error", exc))


def hang_up(responses: list) -> None:
    """Close a build's connection under its reader: shutdown() wakes a blocked read at once,
    and the engine, seeing its client gone, cancels the build."""
    for response in responses:
        try:
            sock = response.raw.connection.sock
            sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        response.close()


def epoch_or_none(ts: float | None) -> float | None:
    return ts if ts is not None and ts > 0 else None


def parse_ts(stamp: str) -> float | None:
    """Docker's RFC 3339 timestamps with nanoseconds -> epoch seconds."""
    from datetime import datetime, timezone

    try:
        head, _, frac = stamp.rstrip("Z").partition(".")
        base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        return base + float("0." + (frac or "0")[:6])
    except ValueError:
        return None
