"""``allotment explain``: per step, each field's final value, the source it came from, the
values other sources gave, and what the backend makes of it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .errors import AllotmentError, FieldError, debug_cause
from .fields import FIELDS, PARSERS
from .growth import LADDER_NOTE
from .model import describe_value
from .policy import Policy
from .profiles import Profile
from .quantity import QuantityError, parse_quantity
from .resolve import Resolved, replace_values
from .sources import Source, Sourced
from .targets import TARGETS

__all__ = ["EFFECTS", "SUBMITTED", "Explained", "explain", "format_table", "parameter_fields", "parse_parameter", "submitted"]


def _kubernetes_effects(resolved: Resolved, profile: Profile) -> dict[str, str]:
    from .kubernetes import kubernetes_effects

    return kubernetes_effects(resolved, profile)


def _batch_effects(resolved: Resolved, profile: Profile) -> dict[str, str]:
    from .batch import batch_effects

    return batch_effects(resolved, profile)


EFFECTS: Final[dict[str, Callable[[Resolved, Profile], dict[str, str]]]] = {
    "kubernetes": _kubernetes_effects,
    "batch": _batch_effects,
}
"""Backend -> its explainer. A backend without one (``local``) compiles nothing: its steps get no
column of effects, and a note says so."""

LOCAL_NOTE: Final = (
    "runs on local: nothing is compiled for it (the local backend runs the callable on this machine); "
    "choose another backend to see what a step becomes there (--backend kubernetes, or --with batch)"
)


@dataclass(frozen=True)
class Row:
    """One field of one step."""

    field: str
    value: Any
    shown: str
    source: str
    others: tuple[str, ...]
    effect: str


@dataclass(frozen=True)
class Explained:
    """One step, explained."""

    step: str
    file: str | None
    backend: str
    pinned_by: str | None
    target: str | None
    """The backend whose effects the last column shows; None where nothing is compiled (local)."""
    rows: tuple[Row, ...]
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json``."""
        return {
            "step": self.step,
            "file": self.file,
            "backend": self.backend,
            "pinned_by": self.pinned_by,
            "target": self.target,
            "fields": [
                {"field": r.field, "value": r.value, "shown": r.shown, "source": r.source, "others": list(r.others), "effect": r.effect}
                for r in self.rows
            ],
            "notes": list(self.notes),
        }


def explain(
    resolved: Resolved, profile: Profile, *, file: str | Path | None = None, pinned_by: str | None = None, policy: Policy | None = None
) -> Explained:
    """Explain one resolved step. ``policy``: the one its engine applies, whose memory cap holds
    the growth after OOM kills (the ladder note, :meth:`RetryGrowth.describe_ladder`)."""
    target = resolved.backend if resolved.backend in EFFECTS else None
    effects = EFFECTS[target](resolved, profile) if target is not None else {}
    rows: list[Row] = []
    for name in FIELDS:
        won = resolved.winners.get(name)
        if won is None:
            continue
        others = tuple(f"{s.source} {describe_value(name, s.value)}" for s in resolved.contributions.for_field(name) if s != won)
        rows.append(Row(name, won.value, describe_value(name, won.value), str(won.source), others, effects.get(name, "")))
    qos = resolved.options.get("qos")
    notes = list(resolved.notes)
    if target == "batch":
        from .batch import batch_notes

        notes += batch_notes(resolved)
    growth = resolved.retry_growth(policy)
    if growth is not None and not any(note.startswith(LADDER_NOTE) for note in notes):  # a face may have said it for its engine
        notes.append(growth.ladder_note())
    if qos:
        notes.insert(0, f"qos {qos}")
    if target is None:
        notes.append(LOCAL_NOTE)
    return Explained(resolved.step, str(file) if file is not None else None, resolved.backend, pinned_by, target, tuple(rows), tuple(notes))


def format_table(items: Sequence[Explained]) -> str:
    """The readable form: a heading per step and an aligned table of its fields."""
    blocks: list[str] = []
    for item in items:
        where = f" ({item.file})" if item.file else ""
        pinned = f", pinned by {item.pinned_by}" if item.pinned_by else ""
        lines = [f"step {item.step!r}{where}: runs on {item.backend}{pinned}"]
        lines += [f"  {n}" if n.startswith("warning: ") else f"  note: {n}" for n in item.notes]
        header: tuple[str, ...] = ("field", "value", "source", "other sources")
        table = [header] + [(r.field, r.shown, r.source, "; ".join(r.others) or "-") for r in item.rows]
        if item.target is not None:
            header += (item.target,)
            table = [header] + [(*row, r.effect or "-") for row, r in zip(table[1:], item.rows, strict=True)]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
            lines.append("  " + "  ".join(cells).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


# -- Argo submit parameters (``allotment explain -p train-memory=64Gi``) -----------------------

SUBMITTED: Final = "submit parameter"
"""The source kind of a value a run submits (Argo's ``-p``): it replaces the compiled value, as a
``set`` does, and is runtime input, so ``runtime.caps`` apply to it."""

_PLAIN_NUMBER: Final = re.compile(r"[0-9.]+")
_MIB_FIELDS: Final = ("memory", "disk", "shared_memory")


def parse_parameter(text: str, origin: str = "-p") -> tuple[str, str]:
    """``NAME=VALUE`` as ``(NAME, VALUE)``."""
    name, eq, value = text.partition("=")
    if not eq or not name or not value:
        raise AllotmentError(
            "is not NAME=VALUE", source=f"{origin} {text!r}", accepted="write it as argo submit takes it, e.g. -p train-memory=64Gi"
        )
    return name, value


def parameter_fields(name: str) -> list[tuple[str, str]]:
    """The readings of a parameter name as ``(template, field)``: ``<template>-<suffix>`` with the
    suffix of :data:`allotment.targets.TARGETS` (``train-shared-memory`` is ``(train,
    shared_memory)`` and, were a template named ``train-shared``, ``(train-shared, memory)``),
    longest suffix first."""
    readings = [
        (name[: -len(target.parameter) - 1], target.field)
        for target in TARGETS.values()
        if target.parameter and name.endswith(f"-{target.parameter}") and len(name) > len(target.parameter) + 1
    ]
    return sorted(readings, key=lambda reading: len(reading[0]))


def submitted(field: str, text: str, *, step: str, source: str) -> int:
    """The value Argo's run gets from a submit parameter, in the unit the spec holds (as the Argo
    face's ``podSpecPatch`` reads it): memory, disk and shared memory take a plain number as MiB,
    and anything else as a Kubernetes quantity (``64Gi``; ``1e9`` is bytes); cpu is a Kubernetes
    CPU quantity; gpu a count."""
    try:
        if field in _MIB_FIELDS and not _PLAIN_NUMBER.fullmatch(text):
            try:
                amount = parse_quantity(text)
            except QuantityError as e:
                raise FieldError(
                    "is not a Kubernetes quantity", field=field, value=text, accepted="use a quantity such as '64Gi' or a number of MiB"
                ) from e
            mib = math.ceil(amount / (1024 * 1024))
            if mib <= 0:
                raise FieldError("must be more than 0", field=field, value=text, accepted="use a quantity such as '64Gi'")
            value = PARSERS[field](mib)  # the same bounds as every other value
        else:
            value = PARSERS[field](text)
    except FieldError as e:
        raise e.with_context(step=step, source=source) from debug_cause(e)
    assert isinstance(value, int)
    return value


def with_submitted(resolved: Resolved, parameters: Mapping[str, tuple[str, str]], policy: Policy | None) -> Resolved:
    """``resolved`` as an Argo run gets it with ``parameters`` submitted (field -> (parameter
    name, value)): each replaces the compiled value and is checked by ``policy`` as runtime input."""
    values = [
        Sourced(field, submitted(field, text, step=resolved.step, source=f"-p {name}={text}"), Source(SUBMITTED, f"-p {name}={text}", True))
        for field, (name, text) in parameters.items()
    ]
    return replace_values(resolved, values, policy)
