"""What a Hera user writes: specs on Container templates, template and workflow switches.

Script templates need nothing from here: ``@resources``/``@kubernetes`` stacked above or
below Hera's ``@script`` put the spec on the script's source function, which is where the
face looks (:func:`template_spec`). For everything else:

``attach(template, cpu=2, memory="1Gi", kubernetes={"qos": "guaranteed"})``
    puts a spec on an existing Hera ``Container`` (or ``Script``) object; the fields are
    those of ``@resources``, ``kubernetes=`` takes those of ``@kubernetes``. Validation and
    error messages are the core decorators' own: the spec is recorded by applying them to a
    stand-in function named after the template, which the template keeps as ``__wrapped__``
    (so ``allotment explain`` finds a module-level Container like a decorated function).

``container(name=..., image=..., allotment={...}, kubernetes={...}, **hera_kwargs)``
    a Hera ``Container`` with a spec (``attach`` applied at construction).

``overridable(False)``
    turns the submit-time parameters off for a template (decorate a ``@script`` function,
    above or below ``@script``, or call it on a Container/Script) or for a whole workflow
    (call it on the Workflow). The template's switch wins over the workflow's.

``defaults(workflow, cpu=2, memory="8Gi", ...)``
    workflow-level defaults: they fill only the fields no source set (docs/design.md §2), before
    allotment's seed defaults, for every resourced template of that workflow.

Each call that uses Hera also registers the pre-build hooks (:func:`allotment.argo.install`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from allotment.facade import AllotmentError, Resources, innermost
from allotment.facade import kubernetes as kubernetes_decorator
from allotment.facade import resources as resources_decorator

from .hooks import install
from .options import ARGO_ATTR, options_of

__all__ = ["attach", "container", "defaults", "overridable"]

T = TypeVar("T")


def _is_template(obj: Any) -> bool:
    from hera.workflows import Container, Script

    return isinstance(obj, (Container, Script))


def _is_workflow(obj: Any) -> bool:
    from hera.workflows import Workflow

    return isinstance(obj, Workflow)


def _stub(name: str) -> Callable[[], None]:
    def step() -> None:  # pragma: no cover - never called; it only carries the spec
        raise RuntimeError(f"allotment's stand-in for template {name!r} is not meant to be called")

    step.__name__ = step.__qualname__ = name
    return step


def attach(template: T, /, *, kubernetes: Mapping[str, Any] | None = None, **fields: Any) -> T:
    """Put an allotment spec on a Hera ``Container`` or ``Script`` and return it.

    ``fields`` are ``@resources``' (``cpu``, ``memory``, ``gpu``, ``gpu_type``, ``gpu_vendor``,
    ``disk``, ``shared_memory``, ``retry_memory_factor``); ``kubernetes`` takes
    ``@kubernetes``' keywords (``qos``, ``node_selector``, ``tolerations`` and the fields).
    Attaching twice to the same template is an error, as a repeated decorator is.
    """
    install()
    if not _is_template(template):
        raise AllotmentError(
            f"attach() got a {type(template).__name__}",
            accepted="pass a hera.workflows Container or Script; for a @script function use @resources/@kubernetes",
        )
    name = str(getattr(template, "name", None) or "")
    if not name:
        raise AllotmentError("attach() got a template without a name", accepted="give the Container a name first")
    if getattr(template, "__wrapped__", None) is not None:
        raise AllotmentError("has an allotment spec already", step=name, accepted="call attach() once per template")
    stub = _stub(name)
    if fields or kubernetes is None:
        resources_decorator(**fields)(stub)
    if kubernetes is not None:
        if not isinstance(kubernetes, Mapping):
            raise AllotmentError(
                f"attach(kubernetes=...) got a {type(kubernetes).__name__}", step=name, accepted="use a dict of @kubernetes keywords"
            )
        kubernetes_decorator(**kubernetes)(stub)
    # A function deep-copies as itself, so the spec survives Hera's copies of the template.
    object.__setattr__(template, "__wrapped__", stub)
    return template


def container(*, allotment: Mapping[str, Any] | None = None, kubernetes: Mapping[str, Any] | None = None, **hera_kwargs: Any) -> Any:
    """A Hera ``Container(**hera_kwargs)`` carrying ``@resources`` fields from ``allotment`` and
    ``@kubernetes`` keywords from ``kubernetes``. The Container's own ``resources``,
    ``volumes``, ``node_selector`` and ``tolerations`` stay and are merged with allotment's."""
    from hera.workflows import Container

    return attach(Container(**hera_kwargs), kubernetes=kubernetes, **dict(allotment or {}))


def overridable(flag: bool = True) -> Callable[[T], T]:
    """Turn the submit-time parameters on (``True``, the default) or off for a template or workflow.

    ``@overridable(False)`` on a ``@script`` function (above or below ``@script``),
    ``overridable(False)(container)``, or ``overridable(False)(workflow)``.
    """
    if not isinstance(flag, bool):
        raise AllotmentError("overridable() takes True or False", field="overridable", value=flag, accepted="use True or False")

    def apply(target: T) -> T:
        install()
        holder = target if (_is_template(target) or _is_workflow(target)) else innermost(target)
        if not (callable(holder) or _is_template(holder) or _is_workflow(holder)):
            raise AllotmentError(
                f"overridable() was applied to a {type(target).__name__}",
                accepted="apply it to a @script function, a Container/Script template or a Workflow",
            )
        object.__setattr__(holder, ARGO_ATTR, replace(options_of(holder), overridable=flag))
        return target

    return apply


def defaults(workflow: T, /, **fields: Any) -> T:
    """Workflow-level defaults for every resourced template of ``workflow`` (fill gaps only).

    Takes ``@resources``' fields. Calling it again replaces the earlier defaults.
    """
    install()
    if not _is_workflow(workflow):
        raise AllotmentError(
            f"defaults() got a {type(workflow).__name__}",
            accepted="pass a hera.workflows Workflow, WorkflowTemplate or CronWorkflow",
        )
    name = str(getattr(workflow, "name", None) or getattr(workflow, "generate_name", None) or "workflow")
    parsed = Resources.from_input(fields, source=f"allotment.argo.defaults({name})")
    object.__setattr__(workflow, ARGO_ATTR, replace(options_of(workflow), defaults=parsed))
    return workflow
