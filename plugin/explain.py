"""``allotment explain``: per step, each field's final value, the source it came from, the
values other sources gave, and what the backend makes of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .fields import FIELDS
from .model import describe_value
from .profiles import Profile
from .resolve import Resolved

__all__ = ["EFFECTS", "Explained", "explain", "format_table"]


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
"""Backend -> its explainer; a backend without one (``local``) is explained in Kubernetes terms."""


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
    target: str
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


def explain(resolved: Resolved, profile: Profile, *, file: str | Path | None = None, pinned_by: str | None = None) -> Explained:
    """Explain one resolved step."""
    target = resolved.backend if resolved.backend in EFFECTS else "kubernetes"
    effects = EFFECTS[target](resolved, profile)
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
    if qos:
        notes.insert(0, f"qos {qos}")
    return Explained(resolved.step, str(file) if file is not None else None, resolved.backend, pinned_by, target, tuple(rows), tuple(notes))


def format_table(items: Sequence[Explained]) -> str:
    """The readable form: a heading per step and an aligned table of its fields."""
    blocks: list[str] = []
    for item in items:
        where = f" ({item.file})" if item.file else ""
        pinned = f", pinned by {item.pinned_by}" if item.pinned_by else ""
        lines = [f"step {item.step!r}{where}: runs on {item.backend}{pinned}"]
        lines += [f"  note: {n}" for n in item.notes]
        header = ("field", "value", "source", "other sources", item.target)
        table = [header] + [(r.field, r.shown, r.source, "; ".join(r.others) or "-", r.effect or "-") for r in item.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
            lines.append("  " + "  ".join(cells).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
