"""What every render target of the core shares: the steps under some paths, resolved for one
backend, each built into a document; and the tally the CLI reports (steps found, skipped,
errors).

Outside the CLI the first error is raised, naming the file. The CLI opens a :func:`tally`, and
an error of one step (or one file that fails to load) is counted there instead, so that every
step's error is reported before the command exits non-zero.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .discover import Step, in_file, iter_steps
from .errors import AllotmentError, debug_cause
from .resolve import Resolved
from .settings import Settings
from .withspec import check_steps

__all__ = ["Tally", "render_steps", "tally"]

T = TypeVar("T")


@dataclass
class Tally:
    """What one command met: the steps found, the backend of each step resolved for it, those
    skipped (pinned to another backend: that backend), and the errors (each naming its file)."""

    steps: list[Step] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[AllotmentError] = field(default_factory=list)


_current: ContextVar[Tally | None] = ContextVar("allotment_tally", default=None)


@contextlib.contextmanager
def tally() -> Iterator[Tally]:
    """Count what the block meets; errors of single steps and files are collected, not raised."""
    counted = Tally()
    token = _current.set(counted)
    try:
        yield counted
    finally:
        _current.reset(token)


def current_tally() -> Tally | None:
    """The tally :func:`tally` opened, if any."""
    return _current.get()


def render_steps(paths: Sequence[Path], settings: Settings, backend: str, build: Callable[[Step, Resolved], T]) -> list[T]:
    """``build(step, resolved)`` for each step under ``paths`` resolved for ``backend`` (the
    deployment's backend for the render); a step pinned to another backend is skipped with a note
    on stderr. Runtime specs that name a step which does not exist are an error."""
    counted = _current.get()
    steps = list(iter_steps(paths, counted.errors if counted is not None else None))
    if counted is not None:
        counted.steps += steps
    check_steps([*settings.withs, *settings.sets], [s.name for s in steps])
    out: list[T] = []
    for step in steps:
        try:
            resolved = settings.resolve(step.spec, step=step.name, backend=backend, defaults=step.defaults, extra=step.extra)
            if resolved.backend != backend:
                print(
                    f"allotment: step {step.name!r} runs on {resolved.backend} (@{resolved.backend}); not rendered for {backend}",
                    file=sys.stderr,
                )
                if counted is not None:
                    counted.skipped.append(resolved.backend)
                continue
            out.append(build(step, resolved))
            if counted is not None:
                counted.resolved.append(backend)
        except AllotmentError as e:
            if counted is None:
                raise in_file(e, step.file) from debug_cause(e)
            counted.errors.append(in_file(e, step.file))
    return out
