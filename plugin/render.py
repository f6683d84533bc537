"""``allotment render --target kubernetes``: per step, the plain Kubernetes data it becomes."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .discover import iter_steps
from .k8s import kubernetes_parts
from .settings import Settings
from .withspec import check_steps

__all__ = ["render_kubernetes"]


def render_kubernetes(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One document per step that runs on Kubernetes: ``step``, ``file``, then the container
    ``resources`` and the pod's ``volumes``, ``volumeMounts``, ``nodeSelector``, ``tolerations``.
    Steps pinned to another backend are skipped with a note on stderr."""
    steps = list(iter_steps(paths))
    check_steps([*settings.withs, *settings.sets], [s.name for s in steps])
    documents: list[dict[str, Any]] = []
    for step in steps:
        resolved = settings.resolve(step.spec, step=step.name, backend="kubernetes", defaults=step.defaults, extra=step.extra)
        if resolved.backend != "kubernetes":
            print(
                f"allotment: step {step.name!r} runs on {resolved.backend} (@{resolved.backend}); not rendered for kubernetes",
                file=sys.stderr,
            )
            continue
        documents.append({"step": step.name, "file": step.file.as_posix(), **kubernetes_parts(resolved, settings.profile)})
    return documents
