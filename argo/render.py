"""``allotment render FILE --target argo``: the Argo manifests a Hera file defines.

Every ``Workflow``, ``WorkflowTemplate``, ``CronWorkflow`` and ``ClusterWorkflowTemplate``
among a file's module globals (each object once, in definition order; files in the order
:func:`allotment.discover.python_files` lists them) is built with allotment's fields
(:func:`allotment.argo.apply`) under the deployment's settings (``--with``, ``--set``,
``--policy``, ``--profile`` and their environment variables), and returned as one plain dict
per manifest; the CLI prints them as multi-document YAML. ``--namespace`` fills
``metadata.namespace`` where the workflow sets none.

Keys are ordered for reading: ``name`` first, then alphabetically (so a workflow's
``arguments`` come before its ``templates``); lists keep their order. Nothing random
goes in (no uuids; the shared-memory volume has a fixed name), so the same file renders the same
bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from allotment.facade import Settings, check_steps, load_module, python_files
from hera.workflows import Workflow

from .hooks import apply, using_settings
from .options import template_spec

__all__ = ["find_workflows", "order", "render", "render_workflow"]


def find_workflows(module: ModuleType) -> list[Workflow]:
    """The workflows among ``module``'s globals, each once, in definition order."""
    seen: set[int] = set()
    found: list[Workflow] = []
    for value in list(vars(module).values()):
        if isinstance(value, Workflow) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


def _rank(item: tuple[str, Any]) -> tuple[int, str]:
    key, value = item
    return (0 if key == "name" and isinstance(value, str) else 1, key)


def order(value: Any) -> Any:
    """``value`` with mapping keys in reading order (recursively); lists keep their order."""
    if isinstance(value, Mapping):
        return {k: order(v) for k, v in sorted(value.items(), key=_rank)}
    if isinstance(value, list):
        return [order(v) for v in value]
    return value


def render_workflow(workflow: Workflow, settings: Settings, namespace: str | None = None) -> dict[str, Any]:
    """One workflow's manifest with allotment's fields, as an ordered plain dict."""
    with using_settings(settings):
        document: dict[str, Any] = apply(workflow, settings).to_dict()
    if namespace and not document.get("metadata", {}).get("namespace"):
        document.setdefault("metadata", {})["namespace"] = namespace
    ordered: dict[str, Any] = order(document)
    return ordered


def render(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The manifests of every workflow the files under ``paths`` define."""
    workflows = [w for file in python_files(paths) for w in find_workflows(load_module(file))]
    steps = [spec.name for w in workflows for t in w.templates or [] if (spec := template_spec(t)) is not None]
    check_steps([*settings.withs, *settings.sets], steps)
    namespace = (options or {}).get("namespace")
    return [render_workflow(w, settings, namespace) for w in workflows]
