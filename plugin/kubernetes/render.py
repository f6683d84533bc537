"""``allotment render --target kubernetes``: per step, the plain Kubernetes data it becomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..render import render_steps
from ..settings import Settings
from .compile import compile_pod

__all__ = ["render"]


def render(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One document per step that runs on Kubernetes: ``step``, ``file``, then the container
    ``resources`` and the pod's ``volumes``, ``volumeMounts``, ``nodeSelector``, ``tolerations``.
    Steps pinned to another backend are skipped with a note on stderr."""
    return render_steps(
        paths,
        settings,
        "kubernetes",
        lambda step, resolved: {"step": step.name, "file": step.file.as_posix(), **compile_pod(resolved, settings.profile).to_dict()},
    )
