"""GPU discovery through NVML (nvidia-ml-py, the `pynvml` module): what a node registers.

Returns [] cleanly when the package, the driver or a GPU is missing, so every node calls it.
Plain values only (runner/ never imports Django).
"""
from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def discover() -> list[dict]:
    """[{"index", "name", "uuid", "memory_bytes"}] of the GPUs the NVIDIA driver sees, or []."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        log.debug("no NVIDIA driver: %s", exc)
        return []
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append({"index": index, "name": _text(pynvml.nvmlDeviceGetName(handle)),
                          "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)), "memory_bytes": int(memory.total)})
        return found
    except Exception as exc:  # noqa: BLE001 - a GPU that fails to answer: report none rather than crash
        log.warning("NVML answered but listing GPUs failed: %s", exc)
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def driver_version() -> str:
    try:
        import pynvml
        pynvml.nvmlInit()
        try:
            return _text(pynvml.nvmlSystemGetDriverVersion())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no package, no driver
        return ""
