"""``allotment render --target kubernetes``: per step, the plain Kubernetes data it becomes."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .discover import Step, iter_steps
from .k8s import kubernetes_parts
from .resolve import Resolved
from .settings import Settings
from .withspec import check_steps

__all__ = ["render_kubernetes", "resolved_steps"]


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


def render_kubernetes(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One document per step that runs on Kubernetes: ``step``, ``file``, then the container
    ``resources`` and the pod's ``volumes``, ``volumeMounts``, ``nodeSelector``, ``tolerations``.
    Steps pinned to another backend are skipped with a note on stderr."""
    return [
        {"step": step.name, "file": step.file.as_posix(), **kubernetes_parts(resolved, settings.profile)}
        for step, resolved in resolved_steps(paths, settings, "kubernetes")
    ]
