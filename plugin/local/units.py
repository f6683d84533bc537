"""How the local backend writes amounts for people: asked values in the spec's own words
(``2 cpu``, ``6Gi``, ``1500Mi``) and measured values rounded for a table (``310Mi``, ``3.1Gi``,
``0.4 cpu``, ``3.1 s``). Standard library only; every function is pure and deterministic."""

from __future__ import annotations

import math
from typing import Final

from ..quantity import format_mib

__all__ = ["MIB", "cpu_text", "mib_text", "seconds_text", "used_cores_text", "used_mib_text"]

MIB: Final = 1024 * 1024
"""Bytes in one MiB."""


def mib_text(mib: int) -> str:
    """An asked amount given in MiB, as Kubernetes writes it: ``6144 -> '6Gi'``, ``1500 -> '1500Mi'``."""
    return format_mib(mib)


def cpu_text(millicores: int) -> str:
    """An asked CPU amount given in millicores, in cores: ``2000 -> '2 cpu'``, ``500 -> '0.5 cpu'``, ``1250 -> '1.25 cpu'``."""
    whole, part = divmod(millicores, 1000)
    if part == 0:
        return f"{whole} cpu"
    return f"{whole}.{part:03d}".rstrip("0") + " cpu"


def used_mib_text(num_bytes: int) -> str:
    """A measured amount given in bytes: below 1 GiB in whole MiB rounded up (``310Mi``), below
    10 GiB in GiB with one decimal (``3.1Gi``), else in whole GiB (``16Gi``)."""
    mib = math.ceil(num_bytes / MIB)
    if mib < 1024:
        return f"{mib}Mi"
    gib = num_bytes / (1024 * MIB)
    if gib < 10:
        return f"{gib:.1f}Gi"
    return f"{round(gib)}Gi"


def used_cores_text(cores: float) -> str:
    """Average cores used (CPU time / wall time), one decimal: ``0.39 -> '0.4 cpu'``."""
    return f"{cores:.1f} cpu"


def seconds_text(seconds: float) -> str:
    """A duration in seconds: ``3.1 s`` below 10 s, ``41 s`` below 10 minutes, else ``12m05s``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{round(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"
