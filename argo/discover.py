"""Steps in Hera files, for ``allotment explain``: every resourced template of every workflow
a file defines, on Kubernetes, with the workflow's own defaults (:func:`allotment.argo.defaults`).

Registered in :data:`allotment.faces.STEP_FINDERS` under ``hera``: called only for files that
imported Hera.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from allotment.facade import AllotmentError, Resolved, Settings, Source, Step

from .hooks import plan_one, plan_sources
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
            steps.append(
                Step(
                    spec.name, spec, obj, file, backend="kubernetes", defaults=defaults, resolver=_resolver(workflow, template, spec, file)
                )
            )
    return steps


def _resolver(workflow: Any, template: Any, spec: Any, file: Path) -> Any:
    """How ``explain`` resolves the template: as building the workflow does (resolved, then fitted
    into the template's own fields, so a clash there is the same error in both)."""

    def resolve(settings: Settings, *, conf: Any = None) -> Resolved:
        if conf is not None:
            raise AllotmentError(
                f"is a template of a Hera workflow ({file}), whose runs take submit parameters, not a conf",
                step=spec.name,
                field="--conf",
                has_value=False,
                accepted="preview an Argo run with -p <template>-<field>=VALUE",
            )
        return plan_one(workflow, template, spec, settings, plan_sources(workflow)).resolved

    return resolve
