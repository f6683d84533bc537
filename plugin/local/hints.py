"""Right-sizing hints from one try's measurements. The rules, in order:

1. **OOM-killed**: ``memory: OOM-killed at <cap> — ask for more``; suggested: the cap x 1.5, rounded
   up to a multiple of 256 MiB.
2. **failed** (any other failure): ``failed (<exception type or signal>)``; no suggestion, since a
   failed try says nothing reliable about what the step needs.
3. **memory under-used**: the peak is below 50% of the memory asked: ``memory: <asked> asked, <peak>
   used — try <suggested>``, suggested = peak x 1.25 (headroom), rounded up to a multiple of 256 MiB,
   given only when it is below the ask.
4. otherwise ``ok``.

CPU gets no hint: the average over the wall time (CPU time / wall) understates a step's bursts,
and on the local backend cores are whole (affinity), so a fractional ask cannot be checked here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from .units import MIB, mib_text, used_mib_text

__all__ = ["GRANULE_MIB", "HEADROOM", "OOM_GROWTH", "UNDER_USE_BELOW", "Hint", "hint_for", "round_up_mib"]

UNDER_USE_BELOW: Final = 0.5
"""A peak below this fraction of the ask gets a memory hint."""
HEADROOM: Final = 1.25
"""Suggested memory = peak x this, before rounding."""
OOM_GROWTH: Final = 1.5
"""Suggested memory after an OOM kill = the cap x this, before rounding."""
GRANULE_MIB: Final = 256
"""Suggestions are rounded up to a multiple of this many MiB."""


@dataclass(frozen=True)
class Hint:
    """``text`` for the table; ``field`` it is about (``memory``) and ``suggested_mib`` where it suggests a value."""

    text: str
    field: str | None = None
    suggested_mib: int | None = None

    def document(self) -> dict[str, object]:
        """The hint as the report's ``hint`` object."""
        return {"text": self.text, "field": self.field, "suggested_mib": self.suggested_mib}


def round_up_mib(num_bytes: float) -> int:
    """``num_bytes`` in MiB, rounded up to a multiple of :data:`GRANULE_MIB` (at least one granule)."""
    granules = max(1, math.ceil(num_bytes / (GRANULE_MIB * MIB)))
    return granules * GRANULE_MIB


def hint_for(outcome: str, asked_mib: int | None, peak_bytes: int | None, failure: str | None = None) -> Hint:
    """The hint for one try: its ``outcome`` (``succeeded``, ``failed``, ``oom_killed``), the memory it
    had (``asked_mib``), its measured peak (``peak_bytes``) and, for a failure, a short ``failure`` name."""
    if outcome == "oom_killed":
        if asked_mib is None:
            return Hint("memory: OOM-killed — ask for more", "memory")
        return Hint(f"memory: OOM-killed at {mib_text(asked_mib)} — ask for more", "memory", round_up_mib(asked_mib * MIB * OOM_GROWTH))
    if outcome != "succeeded":
        return Hint(f"failed ({failure})" if failure else "failed")
    if asked_mib is not None and peak_bytes is not None and peak_bytes < UNDER_USE_BELOW * asked_mib * MIB:
        suggested = round_up_mib(peak_bytes * HEADROOM)
        if suggested < asked_mib:
            return Hint(
                f"memory: {mib_text(asked_mib)} asked, {used_mib_text(peak_bytes)} used — try {mib_text(suggested)}", "memory", suggested
            )
    return Hint("ok")
