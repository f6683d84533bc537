"""Resolution (docs/design.md §2): from everything said about a step to the values it runs with.

Per field, in this order:

1. step sources (``@resources``, the backend decorator, an operator's ``resources=``) and the
   runtime ``with`` specs that apply combine by **maximum**; text fields must agree;
2. defaults fill only fields no source set: the workflow's own defaults first, then the
   seed defaults (cpu 1 core, memory 4096 MiB) — a default is never part of the maximum;
3. ``set`` specs replace a value, lowering it included (only where the policy allows);
4. the policy checks the result.

Resolution is pure; a :class:`Resolved` is immutable and remembers the source of every
value, which is what ``allotment explain`` shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from .bounds import beyond_bounds
from .decorators import BACKENDS, StepSpec
from .errors import AllotmentError, AllotmentWarning
from .fields import FIELDS
from .growth import LADDER_NOTE, LADDER_RUNGS, RetryGrowth
from .model import Resources, describe_value
from .policy import Policy
from .sources import Contributions, Source, Sourced
from .targets import MIG_PROFILE, NVIDIA_GPU
from .withspec import WithSpec

__all__ = ["LADDER_NOTE", "LADDER_RUNGS", "SEED_DEFAULTS", "Resolved", "RetryGrowth", "replace_values", "resolve"]

SEED_DEFAULTS: Final = Resources.normalized(cpu=1000, memory=4096)
"""Filled in last, only where nothing else set a value: 1 core, 4096 MiB."""

_DEFAULT = Source("default", "(built in)")
"""The source of the seed defaults, as explain and errors name it: ``default (built in)``."""


@dataclass(frozen=True)
class Resolved:
    """The resolved spec of one step on one backend."""

    step: str
    backend: str
    winners: Mapping[str, Sourced]
    contributions: Contributions
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    notes: tuple[str, ...] = ()

    @property
    def resources(self) -> Resources:
        """The final values as a :class:`Resources`."""
        return Resources.normalized(**{name: s.value for name, s in self.winners.items()})

    def value(self, name: str) -> Any:
        """A field's final value, or None."""
        won = self.winners.get(name)
        return None if won is None else won.value

    def retry_growth(self, policy: Policy | None = None, *, runtime_input: bool = False) -> RetryGrowth | None:
        """How memory grows after OOM kills (None: it does not: no ``retry_memory_factor``, or 1).

        The one rule every engine uses (Airflow's operators and executors, Argo's expressions,
        AWS Batch, the local backend; docs/design.md §7.3): the cap is
        ``policy.memory_cap(runtime=...)``, the stricter one for runtime input when the memory
        came from a ``with``/``set`` or, ``runtime_input``, when the engine lets a run replace it
        (an Argo submit parameter)."""
        factor = self.value("retry_memory_factor")
        memory = self.value("memory")
        if not factor or factor == 1 or memory is None:
            return None
        runtime = runtime_input or self.winners["memory"].source.is_runtime
        cap = policy.memory_cap(runtime=runtime) if policy is not None else None
        return RetryGrowth(int(memory), float(factor), cap, policy.origin if policy is not None and cap is not None else None, runtime)

    def with_memory_after(self, oom_kills: int, policy: Policy | None = None, *, try_number: int | None = None) -> Resolved:
        """This spec for a try that follows ``oom_kills`` earlier tries ended by an OOM kill
        (docs/design.md §7.3): memory x ``retry_memory_factor`` ^ ``oom_kills``, rounded up to whole
        MiB in float64, held to the policy's memory cap (a note says so) and never below the
        resolved memory. Any other failure of an earlier try (an eviction, a lost spot instance, a
        bug) does not count, so a try after one asks for the memory the try before it had.

        ``try_number`` (1 = first) only names the try in the notes. The one function every engine
        path calls with the count it learned from the engine's own records."""
        if isinstance(oom_kills, bool) or not isinstance(oom_kills, int) or oom_kills < 0:
            raise AllotmentError(
                "is not a count of OOM kills",
                step=self.step,
                field="oom_kills",
                value=repr(oom_kills),
                accepted="count the earlier tries that ended in an OOM kill: a whole number, 0 or more",
            )
        growth = self.retry_growth(policy)
        if growth is None or oom_kills == 0:
            return self
        memory, factor = growth.memory, growth.factor
        grown = growth.uncapped(oom_kills)
        after = _after(oom_kills)
        detail = f"(after {after}: {describe_value('memory', memory)} x {factor}^{oom_kills})"
        notes = list(self.notes)
        held = growth.memory_after(oom_kills)
        if held != grown and growth.cap is not None:
            notes.append(
                f"memory growth after {after} held at {describe_value('memory', held)} by the cap "
                f"{describe_value('memory', growth.cap)} of policy {growth.cap_origin or ''} "
                f"(would be {'more than ' if growth.beyond_maximum(oom_kills) else ''}{describe_value('memory', grown)})"
            )
        elif growth.beyond_maximum(oom_kills):
            notes.append(
                f"memory growth after {after} held at {describe_value('memory', held)} (1Ei), the most memory "
                "allotment accepts (more than any machine has)"
            )
        which = f"try {try_number}: " if try_number is not None else ""
        notes.append(
            f"{which}memory {describe_value('memory', memory)} -> {describe_value('memory', held)} "
            f"after {after} of earlier tries (retry_memory_factor {factor})"
        )
        # A grown runtime value stays runtime input, so runtime.caps keep applying to it.
        retry = Sourced("memory", held, Source("retry", detail, runtime=growth.runtime))
        winners = dict(self.winners)
        winners["memory"] = retry
        return Resolved(
            self.step,
            self.backend,
            MappingProxyType(winners),
            self.contributions.merge(Contributions(frozenset({retry}))),
            self.options,
            tuple(notes),
        )


def _after(oom_kills: int) -> str:
    """``1 OOM kill``, ``2 OOM kills``."""
    return f"{oom_kills} OOM kill" + ("" if oom_kills == 1 else "s")


def resolve(
    spec: StepSpec | None,
    *,
    step: str | None = None,
    backend: str = "local",
    withs: Sequence[WithSpec] = (),
    sets: Sequence[WithSpec] = (),
    defaults: Sequence[tuple[Resources, Source]] = (),
    extra: Sequence[tuple[Resources, Source]] = (),
    policy: Policy | None = None,
) -> Resolved:
    """Resolve one step.

    ``spec``: what its decorators recorded (None: no decorator). ``backend``: the
    deployment's backend, used when no decorator pins one. ``withs``/``sets``: runtime specs
    (those for other steps or backends are skipped). ``defaults``: workflow-level defaults,
    first one first. ``extra``: further step sources, e.g. an operator's ``resources=``.
    """
    name = step or (spec.name if spec else None)
    if name is None:
        raise AllotmentError("resolve() needs a step name or a spec")
    if backend not in BACKENDS:
        raise AllotmentError("is not a backend", field="backend", value=backend, accepted=f"backends are {', '.join(BACKENDS)}")
    on = spec.backend if spec and spec.backend else backend
    sources: list[tuple[Resources, Source]] = [(layer.resources, Source(layer.source)) for layer in (spec.layers if spec else ())]
    sources += list(extra)
    applying = [w for w in withs if w.applies_to(name, on) and not w.resources.is_empty()]
    for w in applying:
        if policy:
            policy.check_runtime("with", str(w.source), step=name)
        sources.append((w.resources, w.source))
    merged = Contributions().merge(*(Contributions.of(resources, source) for resources, source in sources), step=name)
    winners = merged.winners()

    # Defaults fill gaps only. A GPU type or vendor default does not make a CPU step a GPU step.
    for resources, source in [*defaults, (SEED_DEFAULTS, _DEFAULT)]:
        for field_name, value in resources.items():
            if field_name in winners:
                continue
            if field_name in ("gpu_type", "gpu_vendor") and not (winners.get("gpu") and winners["gpu"].value):
                continue
            filled = Sourced(field_name, value, source)  # type: ignore[arg-type]
            winners[field_name] = filled
            merged = merged.replaced(filled)

    for s in [s for s in sets if s.applies_to(name, on) and not s.resources.is_empty()]:
        if policy:
            policy.check_runtime("set", str(s.source), step=name)
        for field_name, value in s.resources.items():
            previous = winners.get(field_name)
            if previous is not None and previous.source.kind == "set" and previous.value != value:
                raise AllotmentError(
                    f"conflicts with {field_name}={describe_value(field_name, previous.value)!r} from {previous.source}",
                    step=name,
                    field=field_name,
                    value=describe_value(field_name, value),
                    source=str(s.source),
                    accepted="give one 'set' per field",
                )
            replaced = Sourced(field_name, value, s.source)  # type: ignore[arg-type]
            winners[field_name] = replaced
            merged = merged.replaced(replaced)

    ordered = {f: winners[f] for f in FIELDS if f in winners}
    _check_consistency(name, ordered)
    if policy:
        policy.check(name, ordered)
    options = spec.options(on) if spec else MappingProxyType({})
    return Resolved(name, on, MappingProxyType(ordered), merged, options, _warn(beyond_bounds(name, ordered)))


def _warn(texts: tuple[str, ...]) -> tuple[str, ...]:
    """``texts`` as notes (``warning: ...``), each also issued as an :class:`AllotmentWarning`."""
    for text in texts:
        warnings.warn(text, AllotmentWarning, stacklevel=3)
    return tuple(f"warning: {text}" for text in texts)


def replace_values(resolved: Resolved, values: Sequence[Sourced], policy: Policy | None = None) -> Resolved:
    """``resolved`` with ``values`` replacing its own, as a ``set`` replaces (lowering included),
    checked as :func:`resolve` checks its result: consistency, the policy (``runtime.caps`` for
    values whose source is runtime input) and the sane bounds. For input an engine applies after
    allotment compiled the step, e.g. Argo's submit parameters (``allotment explain -p``)."""
    if not values:
        return resolved
    winners = dict(resolved.winners)
    contributions = resolved.contributions
    for item in values:
        winners[item.field] = item
        contributions = contributions.replaced(item)
    ordered = {f: winners[f] for f in FIELDS if f in winners}
    _check_consistency(resolved.step, ordered)
    if policy:
        policy.check(resolved.step, ordered)
    notes = tuple(n for n in resolved.notes if not n.startswith("warning: "))
    return Resolved(
        resolved.step,
        resolved.backend,
        MappingProxyType(ordered),
        contributions,
        resolved.options,
        notes + _warn(beyond_bounds(resolved.step, ordered)),
    )


def _check_consistency(step: str, winners: Mapping[str, Sourced]) -> None:
    memory, shm = winners.get("memory"), winners.get("shared_memory")
    if memory is not None and shm is not None and int(shm.value) > int(memory.value):
        raise AllotmentError(
            f"is more than memory={describe_value('memory', memory.value)} from {memory.source} "
            "(shared memory is charged to the step's memory)",
            step=step,
            field="shared_memory",
            value=describe_value("shared_memory", shm.value),
            source=str(shm.source),
            accepted=f"ask for at most {describe_value('memory', memory.value)} of shared memory, or more memory",
        )
    gpu, gpu_type, vendor = winners.get("gpu"), winners.get("gpu_type"), winners.get("gpu_vendor")
    if gpu_type is not None and not (gpu and gpu.value):
        raise AllotmentError(
            "asks for a GPU type but no GPU",
            step=step,
            field="gpu_type",
            value=gpu_type.value,
            source=str(gpu_type.source),
            accepted="set gpu to 1 or more as well",
        )
    if (
        gpu_type is not None
        and MIG_PROFILE.fullmatch(str(gpu_type.value))
        and vendor is not None
        and vendor.value not in ("nvidia", NVIDIA_GPU)
    ):
        raise AllotmentError(
            f"is a MIG profile, which needs gpu_vendor 'nvidia' (got {vendor.value!r} from {vendor.source})",
            step=step,
            field="gpu_type",
            value=gpu_type.value,
            source=str(gpu_type.source),
            accepted="drop gpu_vendor or set it to 'nvidia'",
        )
