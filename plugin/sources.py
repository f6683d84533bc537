"""Where a value came from, and values that remember it (provenance, docs/design.md §2).

A :class:`Source` names one place a value was written: a decorator, a runtime ``with``
spec, a default, an explicit ``set``. A :class:`Sourced` is one field's value from one
source. :class:`Contributions` is the set of every source's value per field; merging two
is set union, so merging is commutative, associative and idempotent by construction,
and the winner of a field (the maximum; the agreed value for text fields) is derived.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import AllotmentError
from .fields import FIELDS, NUMERIC_FIELDS
from .model import Resources, describe_value

__all__ = ["SOURCE_RANK", "Contributions", "Source", "Sourced"]

SOURCE_RANK: Final[dict[str, int]] = {
    "@resources": 0,
    "resources=": 1,
    "@kubernetes": 2,
    "@batch": 2,
    "with": 5,
    "workflow default": 7,
    "default": 8,
    "set": 9,
}
"""Order in which sources are listed, and which one is named when two give the same value."""


@dataclass(frozen=True, order=True)
class Source:
    """One place values come from. ``kind`` is e.g. ``@resources``, ``with``, ``default``;
    ``detail`` says which one (``--with 'kubernetes:cpu=8'``, ``env ALLOTMENT_WITH``)."""

    rank: int = field(init=False, repr=False)
    kind: str
    detail: str = ""
    runtime: bool = field(default=False, compare=False)
    """Set on derived values (a retry's memory) that grew from runtime input."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rank", SOURCE_RANK.get(self.kind, 4))

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}" if self.detail else self.kind

    @property
    def is_runtime(self) -> bool:
        """True for values given at deploy or run time (``with`` and ``set``)."""
        return self.kind in ("with", "set") or self.runtime


@dataclass(frozen=True, order=True)
class Sourced:
    """One field's value from one source."""

    field: str
    value: int | float | str
    source: Source

    def __str__(self) -> str:
        return f"{describe_value(self.field, self.value)} from {self.source}"


def _winner_key(item: Sourced) -> tuple[object, ...]:
    # Largest value wins; among equal values the lowest-ranked source is named.
    return (item.value, -item.source.rank, tuple(-ord(c) for c in item.source.kind + "\0" + item.source.detail))


@dataclass(frozen=True)
class Contributions:
    """Every source's value, per field. Immutable; :meth:`merge` returns a new one."""

    items: frozenset[Sourced] = frozenset()

    @classmethod
    def of(cls, resources: Resources, source: Source) -> Contributions:
        """The fields ``resources`` sets, all from ``source``."""
        return cls(frozenset(Sourced(name, value, source) for name, value in resources.items()))  # type: ignore[arg-type]

    def merge(self, *others: Contributions, step: str | None = None) -> Contributions:
        """All contributions of ``self`` and ``others`` (set union: commutative, associative,
        idempotent, with the empty one as identity); raises, naming ``step``, when text fields
        disagree. :func:`allotment.resolve.resolve` combines a step's sources with this."""
        items = self.items.union(*(o.items for o in others))
        merged = Contributions(items)
        merged.check_agreement(step)
        return merged

    def replaced(self, item: Sourced) -> Contributions:
        """These contributions and ``item``, a value that takes no part in the maximum or the
        agreement of text fields: a default that fills a gap, or a ``set`` that replaces a value."""
        return Contributions(self.items | {item})

    def check_agreement(self, step: str | None = None) -> None:
        """Text fields (``gpu_type``, ``gpu_vendor``) must have one value across sources."""
        for name in FIELDS:
            if name in NUMERIC_FIELDS:
                continue
            values = sorted(self.for_field(name), key=lambda s: (s.source.rank, s.source.kind, s.source.detail))
            distinct = {s.value for s in values}
            if len(distinct) > 1:
                first = values[0]
                other = next(s for s in values if s.value != first.value)
                raise AllotmentError(
                    f"conflicts with {name}={other.value!r} from {other.source}",
                    step=step,
                    field=name,
                    value=first.value,
                    source=str(first.source),
                    accepted="text fields must agree across sources; remove one, or replace it with a 'set' override",
                )

    def for_field(self, name: str) -> list[Sourced]:
        """This field's contributions, listed by source rank (decorators first, defaults last)."""
        return sorted((s for s in self.items if s.field == name), key=lambda s: (s.source.rank, str(s.source), str(s.value)))

    def winner(self, name: str) -> Sourced | None:
        """The value that counts for ``name``: the maximum (numbers) or the agreed value (text)."""
        candidates = [s for s in self.items if s.field == name]
        if not candidates:
            return None
        return max(candidates, key=_winner_key)

    def winners(self) -> dict[str, Sourced]:
        """Field -> winning value, for every field some source set, in field order (the same choice
        as :meth:`winner`, made in one pass over the items)."""
        best: dict[str, Sourced] = {}
        for item in self.items:
            held = best.get(item.field)
            if held is None or item.value > held.value or (item.value == held.value and _winner_key(item) > _winner_key(held)):  # type: ignore[operator]
                best[item.field] = item
        return {name: best[name] for name in FIELDS if name in best}

    def resources(self) -> Resources:
        """The winning values as a :class:`Resources`."""
        return Resources.normalized(**{name: s.value for name, s in self.winners().items()})

    def __iter__(self) -> Iterator[Sourced]:
        return iter(sorted(self.items, key=lambda s: (FIELDS.index(s.field), s.source.rank, str(s.source))))

    def __len__(self) -> int:
        return len(self.items)


def contributions(pairs: Iterable[tuple[Resources, Source]]) -> Contributions:
    """Contributions of several (resources, source) pairs."""
    return Contributions().merge(*(Contributions.of(r, s) for r, s in pairs))


def as_mapping(winners: Mapping[str, Sourced]) -> dict[str, object]:
    """Field -> plain value."""
    return {name: s.value for name, s in winners.items()}
