"""``allotment render --target kubernetes``: per step, the plain Kubernetes data it becomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..discover import Step
from ..render import render_steps
from ..resolve import Resolved
from ..settings import Settings
from .compile import compile_pod

__all__ = ["render"]


def render(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One document per step that runs on Kubernetes: ``step``, ``file``, then the container
    ``resources`` and the pod's ``volumes``, ``volumeMounts``, ``nodeSelector``, ``tolerations``
    (the first try's), and ``notes`` when memory grows after OOM kills (the engine that runs the pod
    applies it). Steps pinned to another backend are skipped with a note on stderr."""

    def document(step: Step, resolved: Resolved) -> dict[str, Any]:
        out: dict[str, Any] = {"step": step.name, "file": step.file.as_posix(), **compile_pod(resolved, settings.profile).to_dict()}
        factor = resolved.value("retry_memory_factor")
        if factor is not None and factor != 1:
            out["notes"] = [
                f"retry_memory_factor {factor}: these are the first try's resources; memory x{factor} after each OOM kill "
                "(no other failure), applied by the engine that runs the pod (Airflow's operators and executors, Argo's podSpecPatch)"
            ]
        return out

    return render_steps(paths, settings, "kubernetes", document)
