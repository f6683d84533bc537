"""Memory that grows after OOM kills (docs/design.md §7.3): the one rule every engine uses.

:meth:`allotment.resolve.Resolved.retry_growth` gives a step's :class:`RetryGrowth` (its memory,
factor and policy cap); every engine path asks it for the memory of a try after ``k`` earlier
OOM kills (:meth:`RetryGrowth.memory_after`). Standard library only, so the local backend
(``import allotment.local``) uses the same rule without loading pydantic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from .fields import MAX_MIB
from .quantity import format_mib

__all__ = ["LADDER_NOTE", "LADDER_RUNGS", "RetryGrowth"]


def _mib(value: int) -> str:
    """A memory amount in the words a user reads (``16Gi``), as :func:`allotment.model.describe_value` says it."""
    return format_mib(value)


LADDER_RUNGS: Final = 3
"""How many OOM kills :meth:`RetryGrowth.ladder` shows at most (``explain``)."""

LADDER_NOTE: Final = "memory on retries: "
"""How the ladder note of ``explain`` starts (:meth:`RetryGrowth.ladder_note`); a face whose
engine grows memory its own way (Argo) gives its own note, which ``explain`` then shows instead."""


@dataclass(frozen=True)
class RetryGrowth:
    """Memory that grows after OOM kills: a try that follows ``k`` earlier tries ended by an OOM
    kill asks for ``memory x factor^k`` MiB, rounded up, held to ``cap`` (MiB, from policy
    ``cap_origin``), never below ``memory``. Only OOM kills count (docs/design.md §7.3): an
    eviction, a lost spot instance or a plain error retries with the memory it had.

    Computed in float64, as Argo's expr-lang computes it, so every engine asks for the same
    size: ``110 x 1.1`` is 122 MiB (one above the exact 121). ``runtime``: the memory is (or
    can be) runtime input, so the cap is the stricter one for runtime input.

    Growth is also held to ``maximum``, the memory field's hard maximum (1 EiB,
    :data:`allotment.fields.MAX_MIB`), with or without a policy: ``64Gi`` with factor 16 and no
    cap would ask for 2^44 MiB after 7 OOM kills, and the float overflows near 300. The note of
    :meth:`Resolved.with_memory_after` says when the maximum held it."""

    memory: int
    factor: float
    cap: int | None = None
    cap_origin: str | None = None
    runtime: bool = False
    maximum: int = MAX_MIB

    def _grown(self, oom_kills: int) -> float:
        try:
            return self.memory * self.factor ** max(0, oom_kills)
        except OverflowError:  # factor ** k beyond float64
            return math.inf

    def beyond_maximum(self, oom_kills: int) -> bool:
        """Whether the growth after ``oom_kills`` OOM kills would pass :attr:`maximum`."""
        return self._grown(oom_kills) > self.maximum

    def uncapped(self, oom_kills: int) -> int:
        """The memory (MiB) after ``oom_kills`` OOM kills before the policy cap, at most :attr:`maximum`."""
        grown = self._grown(oom_kills)
        return self.maximum if grown > self.maximum else math.ceil(grown)

    @property
    def limit(self) -> int:
        """The most any try asks for: the policy cap (never below the first try's memory) or :attr:`maximum`."""
        return min(max(self.cap, self.memory), self.maximum) if self.cap is not None else self.maximum

    def memory_after(self, oom_kills: int) -> int:
        """The memory (MiB) of a try after ``oom_kills`` earlier OOM kills: grown, held to the cap
        and the maximum, never below the first try's."""
        grown = self.uncapped(oom_kills)
        if self.cap is not None and grown > self.cap:
            return min(max(self.cap, self.memory), self.maximum)
        return grown

    def ladder(self, rungs: int = LADDER_RUNGS) -> tuple[int, ...]:
        """The memory (MiB) after 0, 1, ... OOM kills: at most ``rungs`` + 1 values, ending early
        at the first one the cap (or the maximum) holds."""
        out: list[int] = []
        for kills in range(rungs + 1):
            out.append(self.memory_after(kills))
            if kills and (out[-1] >= self.limit or out[-1] == out[-2]):
                break
        return tuple(out)

    def describe_ladder(self, rungs: int = LADDER_RUNGS) -> str:
        """The ladder in words (``allotment explain``), e.g. ``try 1: 16Gi; after an OOM kill:
        24Gi; then 32Gi (held by the cap 32Gi of policy policy.yaml; 36Gi without it); any other
        failure retries with the memory it had``."""
        steps = self.ladder(rungs)
        parts = [f"try 1: {_mib(steps[0])}"]
        for kills, mib in enumerate(steps[1:], 1):
            parts.append(("after an OOM kill: " if kills == 1 else "then ") + _mib(mib))
        last = len(steps) - 1
        kind = "the runtime cap" if self.runtime else "the cap"  # runtime input: the stricter cap for it
        cap = f"{kind} {_mib(self.cap)} of policy {self.cap_origin or ''}" if self.cap is not None else ""
        if self.cap is not None and self.cap < self.memory:
            parts[-1] += f" (no growth: {cap} is below the first try's memory)"
        elif steps[-1] < self.uncapped(last) and self.cap is not None and steps[-1] == self.cap:
            wanted = ("more than " if self.beyond_maximum(last) else "") + _mib(self.uncapped(last))
            parts[-1] += f" (held by {cap}; {wanted} without it)"
        elif steps[-1] >= self.maximum:
            parts[-1] += " (1Ei, the most memory allotment accepts)"
        else:
            parts.append(f"x{self.factor:g} after each further OOM kill" + (f", up to {cap}" if cap else ", up to 1Ei"))
        return "; ".join(parts) + "; any other failure retries with the memory it had"

    def ladder_note(self, rungs: int = LADDER_RUNGS, *, then: str = "") -> str:
        """The ``explain`` note: :data:`LADDER_NOTE`, the ladder, and ``then`` (how an engine differs)."""
        return LADDER_NOTE + self.describe_ladder(rungs) + (f"; {then}" if then else "")
