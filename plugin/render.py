"""What every render target shares: the steps under some paths, resolved for one backend."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .discover import Step, iter_steps
from .resolve import Resolved
from .settings import Settings
from .withspec import check_steps

__all__ = ["resolved_steps"]


def resolved_steps(paths: Sequence[Path], settings: Settings, backend: str) -> Iterator[tuple[Step, Resolved]]:
    """Each step under ``paths`` resolved for ``backend`` (the deployment's backend for the render);
    a step pinned to another backend is skipped with a note on stderr. Runtime specs that name a
    step which does not exist are an error."""
    steps = list(iter_steps(paths))
    check_steps([*settings.withs, *settings.sets], [s.name for s in steps])
    for step in steps:
        resolved = settings.resolve(step.spec, step=step.name, backend=backend, defaults=step.defaults, extra=step.extra)
        if resolved.backend != backend:
            print(
                f"allotment: step {step.name!r} runs on {resolved.backend} (@{resolved.backend}); not rendered for {backend}",
                file=sys.stderr,
            )
            continue
        yield step, resolved
