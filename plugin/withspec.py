"""The runtime ``with`` grammar (and ``set``, which uses the same one).

::

    specs  ::= spec (";" spec)*                    # env ALLOTMENT_WITH; --with repeats
    spec   ::= backend                             # only choose the backend: "kubernetes"
             | [target ":"] key "=" value ("," key "=" value)*
    target ::= backend | step | step "." backend

Examples: ``kubernetes:cpu=8,memory=32768``, ``batch:gpu=2``, ``memory=65536`` (every step,
on whatever backend it runs), ``train.kubernetes:memory=64Gi`` (step ``train`` when it runs
on Kubernetes), ``train:memory=64Gi``. A number with no unit is MiB for memory, disk and
shared memory, and cores for cpu. A name before ``:`` that is no backend is a step name;
:func:`check_steps` rejects one that names no step.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from difflib import get_close_matches
from typing import Final

from .decorators import BACKENDS
from .errors import AllotmentError, FieldError
from .fields import FIELDS, PARSERS
from .model import Resources
from .sources import Source

__all__ = ["RUNTIME_KEYS", "WITH_KEYS", "WithSpec", "check_steps", "parse_runtime", "parse_with", "parse_withs", "with_from_mapping"]

WITH_KEYS: Final = tuple(f for f in FIELDS if f != "retry_memory_factor")
"""Keys a runtime spec may carry: resource fields only."""

_STEP = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
"""A step name: a function name or task id, dotted inside an Airflow TaskGroup (``grp.train``)."""


@dataclass(frozen=True)
class WithSpec:
    """One parsed spec. ``kind`` is ``with`` (raises floors) or ``set`` (replaces values)."""

    text: str
    origin: str
    kind: str
    step: str | None
    backend: str | None
    resources: Resources

    @property
    def source(self) -> Source:
        """How explain and errors name this spec: ``with --with 'kubernetes:cpu=8'``."""
        return Source(self.kind, f"{self.origin} {self.text!r}")

    def applies_to(self, step: str, backend: str) -> bool:
        """True when this spec is for ``step`` running on ``backend``."""
        return (self.step is None or self.step == step) and (self.backend is None or self.backend == backend)


def _pointer(text: str, start: int, end: int) -> str:
    """``text`` with a caret line under ``text[start:end]``."""
    return f"    {text}\n    {' ' * start}{'^' * max(1, end - start)}"


def _error(origin: str, text: str, start: int, end: int, problem: str, accepted: str) -> AllotmentError:
    return AllotmentError(problem, source=f"{origin} {text!r}", accepted=accepted, pointer=_pointer(text, start, end))


def parse_with(text: str, origin: str = "--with", kind: str = "with") -> WithSpec:
    """Parse one spec; errors point at the offending part of ``text``."""
    accepted_keys = f"keys are {', '.join(WITH_KEYS)}"
    if not text.strip():
        raise AllotmentError("is empty", source=f"{origin} {text!r}", accepted="write e.g. 'kubernetes:cpu=8,memory=32768'")
    head, sep, body = text.partition(":")
    if not sep and "=" not in text:
        # A lone name: only choose the backend.
        if text not in BACKENDS:
            raise _error(origin, text, 0, len(text), f"{text!r} is not a backend", f"backends are {', '.join(BACKENDS)}")
        if kind == "set":
            raise _error(origin, text, 0, len(text), "chooses no value", "write e.g. 'train:memory=2048'")
        return WithSpec(text, origin, kind, None, text, Resources())
    if not sep:
        head, body, offset = "", text, 0
    else:
        offset = len(head) + 1
    step: str | None = None
    backend: str | None = None
    if sep:
        name, dot, suffix = head.rpartition(".")
        if dot and (suffix in BACKENDS or get_close_matches(suffix, BACKENDS, n=1, cutoff=0.75)):
            # step.backend; a step name may itself hold dots (an Airflow task in a TaskGroup: grp.train)
            if not _STEP.fullmatch(name):
                raise _error(origin, text, 0, len(name), f"{name!r} is not a step name", "use the step's name (its task id)")
            if suffix not in BACKENDS:
                start = len(name) + 1
                close = get_close_matches(suffix, BACKENDS, n=1, cutoff=0.75)
                raise _error(
                    origin,
                    text,
                    start,
                    start + len(suffix),
                    f"{suffix!r} is not a backend (did you mean {close[0]!r}?)",
                    f"backends are {', '.join(BACKENDS)}",
                )
            step, backend = name, suffix
        elif head in BACKENDS:
            backend = head
        elif _STEP.fullmatch(head):
            step = head
        else:
            raise _error(
                origin, text, 0, len(head), f"{head!r} is neither a backend nor a step name", f"backends are {', '.join(BACKENDS)}"
            )
    if not body:
        raise _error(origin, text, offset, offset + 1, "has no key=value after ':'", accepted_keys)
    values: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    position = offset
    for part in body.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key or not value:
            raise _error(origin, text, position, position + max(1, len(part)), f"{part!r} is not key=value", accepted_keys)
        if key not in WITH_KEYS:
            raise _error(origin, text, position, position + len(key), f"unknown key {key!r}", accepted_keys)
        if key in values:
            raise _error(origin, text, position, position + len(key), f"key {key!r} is repeated", "give each key once")
        values[key] = value
        spans[key] = (position + len(key) + 1, position + len(part))
        position += len(part) + 1
    parsed: dict[str, object] = {}
    for key, value in values.items():
        try:
            parsed[key] = PARSERS[key](value)
        except FieldError as e:
            raise e.with_context(step=step, source=f"{origin} {text!r}", pointer=_pointer(text, *spans[key])) from e
    return WithSpec(text, origin, kind, step, backend, Resources.normalized(**parsed))


def parse_withs(texts: str | Iterable[str], origin: str = "--with", kind: str = "with", sep: str = ";") -> tuple[WithSpec, ...]:
    """Parse several specs: a ``;``-separated string (env form) or an iterable of specs."""
    if isinstance(texts, str):
        parts = [p.strip() for p in texts.split(sep)] if texts.strip() else []
        if any(not p for p in parts):
            raise AllotmentError(
                "has an empty spec between separators", source=f"{origin} {texts!r}", accepted=f"separate specs with a single {sep!r}"
            )
    else:
        parts = list(texts)
    return tuple(parse_with(p, origin, kind) for p in parts)


def check_steps(specs: Sequence[WithSpec], steps: Iterable[str]) -> None:
    """Reject a spec that names a step that does not exist (likely a typo, or a misspelt backend)."""
    known = sorted(set(steps))
    for spec in specs:
        if spec.step is not None and spec.step not in known:
            raise AllotmentError(
                f"names step {spec.step!r}, which does not exist",
                source=f"{spec.origin} {spec.text!r}",
                accepted=f"steps are {', '.join(known) or '(none)'}; backends are {', '.join(BACKENDS)}",
            )


RUNTIME_KEYS: Final = ("with", "set", "tasks")
"""Keys of a run's runtime block (Airflow's ``dag_run.conf["allotment"]``)."""


def _texts(value: object, origin: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise AllotmentError(
        f"is a {type(value).__name__}, not a spec",
        field=origin,
        value=value,
        accepted="use a string such as 'memory=64Gi' or a list of them",
    )


def with_from_mapping(step: str, fields: Mapping[str, object], origin: str, accepted: str) -> WithSpec:
    """A ``with`` spec for one step given as a mapping of fields (``{"memory": "64Gi", "cpu": 8}``);
    only resource fields (:data:`WITH_KEYS`) are accepted."""
    unknown = [key for key in fields if key not in WITH_KEYS]
    if unknown:
        raise AllotmentError(f"has key {unknown[0]!r}, which is no resource field", field=origin, has_value=False, accepted=accepted)
    resources = Resources.from_input(fields, step=step, source=origin)
    text = ",".join(f"{k}={v}" for k, v in fields.items())
    return WithSpec(text, origin, "with", step, None, resources)


def _step_specs(step: str, value: object, origin: str, accepted: str) -> tuple[WithSpec, ...]:
    if isinstance(value, Mapping):
        return (with_from_mapping(step, value, origin, accepted),)
    out: list[WithSpec] = []
    for text in _texts(value, origin):
        spec = parse_with(text, origin)
        if spec.step is not None:
            raise AllotmentError(
                f"names step {spec.step!r} inside the entry for task {step!r}",
                source=f"{origin} {text!r}",
                accepted="write the fields only, e.g. 'memory=64Gi' or 'kubernetes:memory=64Gi'",
            )
        out.append(replace(spec, step=step))
    return tuple(out)


def parse_runtime(
    block: object, origin: str, *, accepted: str, steps: Collection[str] | None = None
) -> tuple[tuple[WithSpec, ...], tuple[WithSpec, ...]]:
    """The ``with`` and ``set`` specs of a run's runtime block: a mapping with ``with`` (specs for
    every step), ``set`` (replacements) and ``tasks`` (step -> a spec string, a list of them, or a
    mapping of fields). Anything but resource fields is an error (``accepted`` says what to write).
    ``steps``: the run's steps, to reject an entry for a step that does not exist."""
    accepted = f"{accepted}; only resource fields ({', '.join(WITH_KEYS)}) can be changed at run time"
    if not isinstance(block, Mapping):
        raise AllotmentError(f"is a {type(block).__name__}, not a mapping", field=origin, value=block, accepted=accepted)
    unknown = [key for key in block if key not in RUNTIME_KEYS]
    if unknown:
        raise AllotmentError(
            f"has key {unknown[0]!r}; it takes only {', '.join(RUNTIME_KEYS)}", field=origin, has_value=False, accepted=accepted
        )
    withs: list[WithSpec] = []
    sets: list[WithSpec] = []
    if "with" in block:
        where = f"{origin}['with']"
        withs += [spec for text in _texts(block["with"], where) for spec in parse_withs(text, where)]
    if "set" in block:
        where = f"{origin}['set']"
        sets += [spec for text in _texts(block["set"], where) for spec in parse_withs(text, where, kind="set")]
    tasks = block.get("tasks") or {}
    if not isinstance(tasks, Mapping):
        raise AllotmentError(
            f"is a {type(tasks).__name__}, not a mapping of task_id to spec", field=f"{origin}['tasks']", value=tasks, accepted=accepted
        )
    for step, value in tasks.items():
        where = f"{origin}['tasks'][{step!r}]"
        if steps is not None and step not in steps:
            raise AllotmentError(
                f"names task {step!r}, which this DAG does not have",
                field=where,
                has_value=False,
                accepted=f"tasks are {', '.join(sorted(steps))}",
            )
        withs += _step_specs(str(step), value, where, accepted)
    if steps is not None:
        check_steps([*withs, *sets], steps)
    return tuple(withs), tuple(sets)
