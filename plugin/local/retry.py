"""Retries on the local backend: memory grows only after an OOM kill (docs/design.md §7.3).

Memory for try n = resolved memory x ``retry_memory_factor`` ^ (earlier tries that ended in an
OOM kill), rounded **up** to whole MiB, held to the caller's cap (a policy's memory cap, in MiB)
and never below the resolved memory: the core's one rule, :class:`allotment.growth.RetryGrowth`,
in float64 as every engine computes it (so 3000 MiB x 1.1 is 3301 MiB here as on Argo). Any other
failure retries with the memory the try had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AllotmentError
from ..growth import RetryGrowth
from .limits import Limits
from .run import StepResult, run_step
from .units import mib_text

__all__ = ["Tries", "memory_for_try", "run_with_retries"]


def memory_for_try(resolved_mib: int, factor: float | None, earlier_oom_kills: int, cap_mib: int | None = None) -> int:
    """Memory in MiB for the next try: ``resolved_mib`` x ``factor`` ^ ``earlier_oom_kills``, rounded up
    to whole MiB, at most ``cap_mib`` but never below ``resolved_mib`` (:meth:`RetryGrowth.memory_after`,
    the core's rule). No factor (None or 1) means no growth.

    >>> memory_for_try(1000, 1.5, 2)
    2250
    >>> memory_for_try(1000, 1.5, 2, cap_mib=2048)
    2048
    """
    if isinstance(earlier_oom_kills, bool) or not isinstance(earlier_oom_kills, int) or earlier_oom_kills < 0:
        raise AllotmentError(
            "is not a count", field="earlier_oom_kills", value=earlier_oom_kills, accepted="count the earlier tries, 0 or more"
        )
    if factor is None or factor <= 1 or earlier_oom_kills == 0:
        return resolved_mib
    return RetryGrowth(resolved_mib, float(factor), cap_mib).memory_after(earlier_oom_kills)


@dataclass(frozen=True)
class Tries:
    """Every try of one step, first first. ``final`` is the last; ``oom_kills`` counts OOM-killed tries."""

    tries: tuple[StepResult, ...]

    @property
    def final(self) -> StepResult:
        """The last try."""
        return self.tries[-1]

    @property
    def ok(self) -> bool:
        """True when the last try succeeded."""
        return self.final.ok

    @property
    def oom_kills(self) -> int:
        """How many tries ended in an OOM kill."""
        return sum(1 for t in self.tries if t.oom_killed)

    def get(self) -> Any:
        """The last try's return value, or its failure raised (see :meth:`StepResult.get`)."""
        return self.final.get()


def run_with_retries(
    limits: Limits,
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    retries: int,
    memory_cap_mib: int | None = None,
    on_try: Callable[[StepResult], None] | None = None,
    earlier_oom_kills: int = 0,
    **options: Any,
) -> Tries:
    """Run a step until it succeeds, at most ``retries`` + 1 tries, memory growing after OOM kills.

    ``limits.memory_mib`` is the resolved memory and ``limits.retry_memory_factor`` the growth (see
    :func:`memory_for_try`); ``memory_cap_mib`` is the cap the caller's policy allows (MiB).
    ``earlier_oom_kills``: OOM kills of tries an engine ran before these (an Airflow retry is a new
    process), counted as if they had happened here. ``on_try`` is called with each try's result
    as it ends. ``options`` go to :func:`run_step`. An :class:`~allotment.AllotmentError` that
    stops a try from starting (too few GPUs...) is raised.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise AllotmentError("is not a retry count", step=limits.step, field="retries", value=retries, accepted="use a whole number >= 0")
    if isinstance(earlier_oom_kills, bool) or not isinstance(earlier_oom_kills, int) or earlier_oom_kills < 0:
        raise AllotmentError(
            "is not a count", step=limits.step, field="earlier_oom_kills", value=earlier_oom_kills, accepted="a whole number >= 0"
        )
    results: list[StepResult] = []
    oom_kills = earlier_oom_kills
    for number in range(1, retries + 2):
        try_limits, notes = limits, []
        if limits.memory_mib is not None and oom_kills:
            factor = limits.retry_memory_factor
            memory = memory_for_try(limits.memory_mib, factor, oom_kills, memory_cap_mib)
            uncapped = memory_for_try(limits.memory_mib, factor, oom_kills)
            if memory != limits.memory_mib:
                where = f"try {number}, " if number > 1 else "an engine's earlier tries, "
                why = f"retry: {where}{mib_text(limits.memory_mib)} x {factor:g}^{oom_kills} (earlier OOM kills)"
                try_limits = limits.with_memory(memory, why)
                grown = f"memory {mib_text(limits.memory_mib)} -> {mib_text(memory)}"
                notes.append(f"{grown} after {oom_kills} OOM kill{'' if oom_kills == 1 else 's'} (retry_memory_factor {factor:g})")
            if uncapped != memory:
                notes.append(
                    f"memory growth held at {mib_text(memory)} by the cap {mib_text(memory_cap_mib or 0)} (would be {mib_text(uncapped)})"
                )
        result = run_step(try_limits, fn, args, kwargs, try_number=number, notes=notes, **options)
        results.append(result)
        if on_try is not None:
            on_try(result)
        if result.ok:
            break
        if result.oom_killed:
            oom_kills += 1
    return Tries(tuple(results))
