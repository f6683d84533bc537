"""Steps in Hera files, for ``allotment explain``: every resourced template of every workflow
a file defines, on Kubernetes, with the workflow's own defaults (:func:`allotment.argo.defaults`),
and the memory ladder as Argo grows it (its cap, and how Argo counts OOM kills).

Registered in :data:`allotment.faces.STEP_FINDERS` under ``hera``: called only for files that
imported Hera.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from allotment.facade import AllotmentError, Resolved, Settings, Source, Step

from .hooks import _overridable, plan_one, plan_sources
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
                    spec.name,
                    spec,
                    obj,
                    file,
                    backend="kubernetes",
                    defaults=defaults,
                    resolver=_resolver(workflow, template, spec, file),
                )
            )
    return steps


ARGO_COUNT: Final = (
    "on Argo, which shows an attempt only the one before it, an attempt after any other failure counts every retry before "
    "it but one as an OOM kill (x factor^(retries-1); docs/design.md §7.3)"
)


def _resolver(workflow: Any, template: Any, spec: Any, file: Path) -> Callable[..., Resolved]:
    """How ``explain`` resolves the template: as building the workflow does (resolved, then fitted
    into the template's own fields, so a clash there is the same error in both), with the memory
    ladder as Argo grows it: held to the cap for runtime input when a submit parameter can set the
    memory (as the template's ``podSpecPatch``, :mod:`allotment.argo.plan`)."""

    def resolve(settings: Settings, *, conf: Any = None) -> Resolved:
        if conf is not None:
            raise AllotmentError(
                f"is a template of a Hera workflow ({file}), whose runs take submit parameters, not a conf",
                step=spec.name,
                field="--conf",
                has_value=False,
                accepted="preview an Argo run with -p <template>-<field>=VALUE",
            )
        resolved = plan_one(workflow, template, spec, settings, plan_sources(workflow)).resolved
        growth = resolved.retry_growth(settings.policy, runtime_input=_overridable(template, workflow, settings))
        if growth is None:
            return resolved
        return dataclasses.replace(resolved, notes=(*resolved.notes, growth.ladder_note(then=ARGO_COUNT)))

    return resolve
