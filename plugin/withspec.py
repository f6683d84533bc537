"""The runtime ``with`` grammar (and ``set``, which uses the same one).

::

    specs  ::= spec (";" spec)*                    # env ALLOTMENT_WITH; --with repeats
    spec   ::= backend                             # only choose the backend: "kubernetes"
             | [target ":"] key "=" value ("," key "=" value)*
    target ::= backend | step | step "." backend

Examples: ``kubernetes:cpu=8,memory=32768``, ``batch:gpu=2``, ``memory=65536`` (every step,
on whatever backend it runs), ``train.kubernetes:memory=64Gi`` (step ``train`` when it runs
on Kubernetes), ``train:memory=64Gi``. A number with no unit is MiB for memory, disk and
shared memory, and cores for cpu. A name before ``:`` that is no backend is a step name; a
dotted name ends in a backend only when its last part is exactly one (``grp.train.kubernetes``),
so a task id in a TaskGroup whose last part merely looks like a backend (``etl.locale``,
``grp.batches``) is a step name. :func:`check_steps` decides with the known step names: it
rejects a name that names no step, with a did-you-mean for a near step or a misspelt backend.
On the command line each ``--with`` is one spec: ``;`` separates specs only in the
environment's and the config's one-string form.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from difflib import get_close_matches
from typing import Any, Final

from .decorators import BACKENDS
from .errors import AllotmentError, FieldError, debug_cause, shown
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


def parse_with(text: str, origin: str = "--with", kind: str = "with", *, split_on: str | None = None) -> WithSpec:
    """Parse one spec; errors point at the offending part of ``text``. ``split_on``: the separator
    of the string ``text`` came from (``;`` for the environment's form), None when ``text`` is one
    spec on its own (a ``--with`` option), where a ``;`` is a mistake worth naming."""
    accepted_keys = f"keys are {', '.join(WITH_KEYS)}"
    if not text.strip():
        raise AllotmentError("is empty", source=f"{origin} {text!r}", accepted="write e.g. 'kubernetes:cpu=8,memory=32768'")
    if split_on is None and ";" in text:
        at = text.index(";")
        parts = [part.strip() for part in text.split(";") if part.strip()]
        env = "ALLOTMENT_SET" if kind == "set" else "ALLOTMENT_WITH"
        if origin.startswith("--"):
            accepted = f"repeat {origin} for each spec: " + " ".join(f"{origin} {part!r}" for part in parts)
        else:
            accepted = "give a list of specs: [" + ", ".join(repr(part) for part in parts) + "]"
        raise _error(origin, text, at, at + 1, f"holds ';', which separates specs only in {env}", accepted)
    head, sep, body = text.partition(":")
    if not sep and "=" not in text:
        # A lone name: only choose the backend.
        if text not in BACKENDS:
            close = get_close_matches(text, BACKENDS, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _error(
                origin,
                text,
                0,
                len(text),
                f"names no backend{hint} and holds no key=value",
                f"backends are {', '.join(BACKENDS)}; a spec is e.g. 'kubernetes:cpu=8' or 'memory=64Gi'",
            )
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
        if dot and suffix in BACKENDS:
            # step.backend; a step name may itself hold dots (an Airflow task in a TaskGroup: grp.train)
            if not _STEP.fullmatch(name):
                raise _error(origin, text, 0, len(name), f"{name!r} is not a step name", "use the step's name (its task id)")
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
            raise e.with_context(step=step, source=f"{origin} {text!r}", pointer=_pointer(text, *spans[key])) from debug_cause(e)
    return WithSpec(text, origin, kind, step, backend, Resources.normalized(**parsed))


def parse_withs(texts: str | Iterable[str], origin: str = "--with", kind: str = "with", sep: str = ";") -> tuple[WithSpec, ...]:
    """Parse several specs: a ``;``-separated string (env form) or an iterable of specs."""
    if isinstance(texts, str):
        parts = [p.strip() for p in texts.split(sep)] if texts.strip() else []
        if any(not p for p in parts):
            raise AllotmentError(
                "has an empty spec between separators", source=f"{origin} {texts!r}", accepted=f"separate specs with a single {sep!r}"
            )
        return tuple(parse_with(p, origin, kind, split_on=sep) for p in parts)
    items = list(texts)
    for item in items:
        if not isinstance(item, str):
            raise AllotmentError(
                f"has the item {shown(item)}, a {type(item).__name__}, not a spec", source=origin, accepted="give each spec as a string"
            )
    return tuple(parse_with(p, origin, kind) for p in items)


def _text_keys(mapping: Mapping[Any, object], where: str, accepted: str) -> None:
    """Every key of ``mapping`` is text (a run's conf from JSON has nothing else; a Python caller might)."""
    for key in mapping:
        if type(key) is not str:
            raise AllotmentError(
                f"has the key {shown(key)}, a {type(key).__name__}, not text", field=where, has_value=False, accepted=accepted
            )


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean ...?)`` for a step name that names no step: a near step name, the backend a
    misspelt one names (``kubrenetes``), or a step on a misspelt backend (``train.kubernets``)."""
    near = get_close_matches(name, known, n=1, cutoff=0.75)
    if near:
        return f" (did you mean step {near[0]!r}?)"
    backend = get_close_matches(name, BACKENDS, n=1, cutoff=0.75)
    if backend:
        return f" (did you mean the backend {backend[0]!r}?)"
    prefix, dot, suffix = name.rpartition(".")
    backend = get_close_matches(suffix, BACKENDS, n=1, cutoff=0.75) if dot else []
    if backend:
        step = f"step {prefix!r}" if prefix in known else f"{prefix!r}"
        return f" (did you mean {step} on the backend {backend[0]!r}: '{prefix}.{backend[0]}'?)"
    return ""


def check_steps(specs: Sequence[WithSpec], steps: Iterable[str]) -> None:
    """Reject a spec that names a step that does not exist (likely a typo, or a misspelt backend),
    with a did-you-mean from the known step names and the backends."""
    known = sorted(set(steps))
    for spec in specs:
        if spec.step is not None and spec.step not in known:
            end = len(spec.step) if spec.text.startswith((f"{spec.step}:", f"{spec.step}.")) else 0
            raise AllotmentError(
                f"names step {spec.step!r}, which does not exist{_did_you_mean(spec.step, known)}",
                source=f"{spec.origin} {spec.text!r}",
                accepted=f"steps are {', '.join(known) or '(none)'}; backends are {', '.join(BACKENDS)}",
                pointer=_pointer(spec.text, 0, end) if end else None,
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
    _text_keys(fields, origin, accepted)
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
    _text_keys(block, origin, accepted)
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
    _text_keys(tasks, f"{origin}['tasks']", accepted)
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
