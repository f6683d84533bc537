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

from allotment.facade import Resolved, Settings, Source, Step

from .hooks import _overridable, plan_sources
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
                    resolver=_resolver(spec, template, workflow, defaults, file),
                )
            )
    return steps


ARGO_COUNT: Final = (
    "on Argo, which shows an attempt only the one before it, an attempt after any other failure counts every retry before "
    "it but one as an OOM kill (x factor^(retries-1); docs/design.md §7.3)"
)


def _resolver(spec: Any, template: Any, workflow: Any, defaults: Any, file: Path) -> Callable[..., Resolved]:
    """How the Argo face resolves the template, with the memory ladder as Argo grows it: held to
    the cap for runtime input when a submit parameter can set the memory (as the template's
    ``podSpecPatch``, :mod:`allotment.argo.plan`)."""

    def resolve(settings: Settings, *, conf: Any = None) -> Resolved:
        base = Step(spec.name, spec, template, file, backend="kubernetes", defaults=defaults)
        resolved = base.resolve(settings, conf=conf)  # the core's resolution (and its refusal of a run's conf)
        growth = resolved.retry_growth(settings.policy, runtime_input=_overridable(template, workflow, settings))
        if growth is None:
            return resolved
        return dataclasses.replace(resolved, notes=(*resolved.notes, growth.ladder_note(then=ARGO_COUNT)))

    return resolve
