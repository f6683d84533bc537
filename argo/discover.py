"""Steps in Hera files, for ``allotment explain``: every resourced template of every workflow
a file defines, on Kubernetes, with the workflow's own defaults (:func:`allotment.argo.defaults`).

Registered in :data:`allotment.faces.STEP_FINDERS` under ``hera``: called only for files that
imported Hera.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from allotment.facade import Source, Step

from .hooks import plan_sources
from .options import template_spec
from .render import find_workflows

__all__ = ["find_steps"]


def find_steps(module: ModuleType, file: Path) -> list[Step]:
    """One step per resourced template of each workflow among ``module``'s globals."""
    steps: list[Step] = []
    for workflow in find_workflows(module):
        defaults: tuple[tuple[Any, Source], ...] = tuple(plan_sources(workflow))
        for template in workflow.templates or []:
            spec = template_spec(template)
            if spec is None:
                continue
            source = getattr(template, "source", None)
            # The source function (Script) or the template itself (Container): the object whose
            # innermost function carries the spec, so a module-level @script is not listed twice.
            obj = source if callable(source) else template
            steps.append(Step(spec.name, spec, obj, file, backend="kubernetes", defaults=defaults))
    return steps
