"""The Argo face's own switches on functions, templates and workflows, and reading the spec a Hera
template carries. Reading only: :mod:`allotment.argo.templates` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from allotment.facade import Resources, StepSpec, innermost, spec_of

__all__ = ["ARGO_ATTR", "ArgoOptions", "options_of", "template_options", "template_spec", "workflow_defaults", "workflow_options"]

ARGO_ATTR: Final = "__allotment_argo__"
"""Where the face keeps its own switches (an :class:`ArgoOptions`) on a function, template or workflow."""


@dataclass(frozen=True)
class ArgoOptions:
    """The face's switches on a function, template or workflow (None: not said here).
    Immutable and plain, so Hera's deep copies of templates copy it safely."""

    overridable: bool | None = None
    defaults: Resources | None = None


def options_of(obj: Any) -> ArgoOptions:
    """The switches set on ``obj`` itself (all None when none)."""
    found = getattr(obj, ARGO_ATTR, None)
    return found if isinstance(found, ArgoOptions) else ArgoOptions()


def template_spec(template: Any) -> StepSpec | None:
    """The spec a Hera template carries: the one on its source function (Script), the one
    :func:`allotment.argo.attach` gave it, or both combined (a repeated decorator is an error)."""
    attached = spec_of(template) if getattr(template, "__wrapped__", None) is not None else None
    source = getattr(template, "source", None)
    from_source = spec_of(source) if callable(source) else None
    if attached is None or from_source is None:
        return attached or from_source
    combined = from_source
    for layer in attached.layers:
        combined = combined.add(layer)
    return combined


def template_options(template: Any) -> ArgoOptions:
    """The face's switches on a template, or else on its source function."""
    own = options_of(template)
    if own != ArgoOptions():
        return own
    source = getattr(template, "source", None)
    return options_of(innermost(source)) if callable(source) else ArgoOptions()


def workflow_options(workflow: Any) -> ArgoOptions:
    """The face's switches on a workflow (``overridable``, ``defaults``)."""
    return options_of(workflow)


def workflow_defaults(workflow: Any) -> Resources | None:
    """The workflow-level defaults :func:`allotment.argo.defaults` set, if any."""
    return options_of(workflow).defaults
