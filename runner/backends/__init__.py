"""The backend interface (base.py) and its engines; the hub builds one from its settings."""
from __future__ import annotations

from .base import Backend, BuildSpec, ContainerState, ImageInfo, RunSpec

__all__ = ["Backend", "BuildSpec", "ContainerState", "ImageInfo", "RunSpec"]
