"""Sane bounds: values no machine a major cloud sells can give one step (docs/design.md §1).

A value above its bound is not an error (a bigger machine may come, and a private cluster may
have one), but a pod or job asking for it stays Pending forever, so resolution warns: the
warning is one of the step's notes (``explain`` shows it) and an
:class:`~allotment.errors.AllotmentWarning`. A value above the hard limits of
:mod:`allotment.fields` (a million cores, 1 EiB, 65,536 GPUs) is an error there.

The bounds are the largest single machines on offer (2025), per field, and where that number
comes from:

=========  ===========  ===========================================================================
field      bound        origin
=========  ===========  ===========================================================================
``cpu``    1920 cores   Google Cloud X4 ``x4-megamem-1920-metal``: 1,920 vCPUs (AWS's largest, the
                        U7i/U7in high-memory instances, have 896)
``memory`` 32Ti         AWS ``u7in-32tb.224xlarge`` and Google Cloud ``x4-megamem-1920-metal``:
                        32 TiB
``gpu``    16           Google Cloud ``a2-megagpu-16g``: 16 NVIDIA A100; AWS ``trn1.32xlarge`` and
                        ``trn2.48xlarge``: 16 Trainium devices (``aws.amazon.com/neuron``); NVIDIA
                        GPU instances elsewhere stop at 8
=========  ===========  ===========================================================================

``disk`` has no bound: a node's ephemeral storage is whatever volumes it is given.
``shared_memory`` is held to ``memory`` by resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .model import describe_value
from .sources import Sourced

__all__ = ["BOUNDS", "Bound", "beyond_bounds"]


@dataclass(frozen=True)
class Bound:
    """The largest value one machine on offer gives a field (in the unit the spec holds it)."""

    field: str
    value: int
    shown: str
    origin: str


BOUNDS: Final[Mapping[str, Bound]] = {
    "cpu": Bound("cpu", 1920 * 1000, "1920 cores", "Google Cloud x4-megamem-1920-metal"),
    "memory": Bound("memory", 32 * 1024 * 1024, "32Ti", "AWS u7in-32tb.224xlarge, Google Cloud x4-megamem-1920-metal"),
    "gpu": Bound("gpu", 16, "16 GPUs", "Google Cloud a2-megagpu-16g, 16 A100; AWS trn1.32xlarge, 16 Trainium devices"),
}
"""Field -> its sane bound (see the module's documentation)."""

_UNITS: Final = (("Pi", 1024**3), ("Ti", 1024**2), ("Gi", 1024))


def _about(field: str, value: int) -> str:
    """A large value in words a user reads: ``memory 10**9 MiB -> '976562500Mi' (about 954Ti)``."""
    shown = describe_value(field, value)
    if field == "memory":
        for suffix, mib in _UNITS:
            if value >= mib and value % mib:
                return f"{shown} (about {round(value / mib)}{suffix})"
    return shown


def beyond_bounds(step: str, winners: Mapping[str, Sourced]) -> tuple[str, ...]:
    """A warning for each value of ``step`` above its sane bound (:data:`BOUNDS`), in field order."""
    out: list[str] = []
    for name, bound in BOUNDS.items():
        won = winners.get(name)
        if won is None or not isinstance(won.value, int) or won.value <= bound.value:
            continue
        out.append(
            f"step {step!r}: {name}={_about(name, won.value)} from {won.source} is more than the largest machine a major "
            f"cloud sells ({bound.shown}: {bound.origin}); a pod or job asking for it stays Pending"
        )
    return tuple(out)
