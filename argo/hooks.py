"""Hera's pre-build hooks: allotment's specs become Argo template fields when a workflow is built.

Hera runs the pre-build hooks registered for an object's exact class on every ``build()``, and
``to_dict()``, ``to_yaml()``, ``to_file()``, ``create()``, ``lint()``, ``update()``,
``create_as_workflow()`` and ``hera generate yaml`` all build. :func:`install` registers one
hook for ``Workflow`` and one for each subclass of it (``WorkflowTemplate``, ``CronWorkflow``,
``ClusterWorkflowTemplate`` and the user's; a subclass defined later registers its own as it
is defined, through ``Workflow.__init_subclass__``), and a guard on ``Script`` and
``Container`` that fails a build in which a resourced template escaped the workflow hook.

Nobody needs to call it: every decorated step calls it once Hera is imported
(``allotment.faces.connect_engines``; where a step is decorated before Hera is imported, right
after Hera's import), importing this module calls it, and so does every helper of
``allotment.argo``. It is idempotent.

The hook works on the workflow, not on single templates, because a template's parameters
and defaults belong to the workflow. It never changes the user's objects: it returns a
copy of the workflow whose resourced templates are copies with allotment's fields set, and
marks those copies so that a second pass (Hera runs hooks on every ``build()``, and twice for a
CronWorkflow) returns them as they are. So ``to_dict()`` twice gives the same result.

This module has no ``from __future__ import annotations``: Hera finds a hook by its return
annotation, which must be the class itself, not a string. The annotations are set explicitly
below all the same.
"""

import copy
from collections.abc import Callable
from typing import Any

from allotment.facade import AllotmentError, PodParts, Resources, Settings, Source, agree_option, current_settings, using_settings
from hera.shared import global_config
from hera.workflows import ClusterWorkflowTemplate, Container, CronWorkflow, Script, Workflow, WorkflowTemplate
from hera.workflows import models as m

from .options import template_options, template_spec, workflow_defaults, workflow_options
from .plan import TemplatePlan, plan_template

__all__ = [
    "APPLIED",
    "HOOK_MARK",
    "TEMPLATE_CLASSES",
    "WORKFLOW_CLASSES",
    "apply",
    "install",
    "plans",
    "using_settings",
    "workflow_classes",
]

WORKFLOW_CLASSES = (Workflow, WorkflowTemplate, CronWorkflow, ClusterWorkflowTemplate)
TEMPLATE_CLASSES = (Script, Container)
APPLIED = "__allotment_applied__"
"""Marks a workflow copy, and a template copy, that already has allotment's fields."""


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _user_parts(template: Any) -> PodParts:
    resources = template._build_resources()
    parts: dict[str, Any] = {}
    if resources is not None:
        dumped = _dump(resources)
        parts["resources"] = {k: dumped[k] for k in ("requests", "limits") if dumped.get(k)}
    parts["volumes"] = [_dump(v) for v in template._build_volumes() or []]
    parts["volumeMounts"] = [_dump(v) for v in template._build_volume_mounts() or []]
    parts["nodeSelector"] = dict(template.node_selector or {})
    parts["tolerations"] = [_dump(t) if not isinstance(t, dict) else dict(t) for t in template.tolerations or []]
    return PodParts.from_dict(parts)


def _label(template: Any) -> str:
    return f"{type(template).__name__} {template.name!r}"


def _overridable(template: Any, workflow: Any, settings: Settings) -> bool:
    if settings.policy is not None and not settings.policy.allows_submit_parameters():
        return False
    own: bool | None = template_options(template).overridable
    if own is not None:
        return own
    flag = workflow_options(workflow).overridable
    return True if flag is None else flag


def _workflow_name(workflow: Any) -> str:
    return str(workflow.name or workflow.generate_name or type(workflow).__name__)


def plan_sources(workflow: Workflow) -> list[tuple[Resources, Source]]:
    """The workflow-level defaults of ``workflow`` with their source (empty when none)."""
    wf_defaults = workflow_defaults(workflow)
    return [(wf_defaults, Source("workflow default", f"allotment.argo.defaults({_workflow_name(workflow)})"))] if wf_defaults else []


def plans(workflow: Workflow, settings: Settings | None = None) -> list[tuple[int, Any, TemplatePlan]]:
    """(index in ``workflow.templates``, template, plan) for every resourced template."""
    specs = [
        (index, template, spec)
        for index, template in enumerate(workflow.templates or [])
        if isinstance(template, (Script, Container)) and (spec := template_spec(template)) is not None
    ]
    if not specs:
        return []  # a workflow without allotment specs: nothing to read, nothing to do
    settings = settings or current_settings()
    defaults = plan_sources(workflow)
    return [(index, template, plan_one(workflow, template, spec, settings, defaults)) for index, template, spec in specs]


def plan_one(workflow: Workflow, template: Any, spec: Any, settings: Settings, defaults: list[tuple[Resources, Source]]) -> TemplatePlan:
    """The plan of one resourced template of ``workflow``: its spec resolved on Kubernetes and
    fitted into the template's own fields (what building the workflow does, and what ``explain``
    asks, so both fail alike)."""
    resolved = settings.resolve(spec, backend="kubernetes", defaults=defaults)
    if resolved.backend != "kubernetes":
        raise AllotmentError(
            f"is pinned to {resolved.backend} by @{resolved.backend}, but {_label(template)} runs on Argo (Kubernetes)",
            step=resolved.step,
            accepted=f"drop @{resolved.backend} from this step, or use @kubernetes",
        )
    _check_options(template, workflow, resolved.options, resolved.step)
    return plan_template(
        str(template.name),
        resolved,
        settings,
        _user_parts(template),
        user_source=f"{_label(template)}'s own fields",
        overridable=_overridable(template, workflow, settings),
        user_pod_spec_patch=template.pod_spec_patch,
        user_retry=_retry(template),
    )


def _retry(template: Any) -> dict[str, Any] | None:
    built = template._build_retry_strategy()
    return None if built is None else _dump(built)


def _check_options(template: Any, workflow: Any, options: Any, step: str) -> None:
    # Hera's global default image counts as not given: the template took it, the user did not write it.
    own_image = None if template.image == global_config.image else template.image
    agree_option(step, "image", own_image, f"of {_label(template)}", "image", options.get("image"), "kubernetes")
    agree_option(
        step,
        "namespace",
        workflow.namespace,
        "of the workflow",
        "namespace",
        options.get("namespace"),
        "kubernetes",
        accepted="an Argo step runs in its workflow's namespace; give it there",
    )


def _apply_plan(template: Any, plan: TemplatePlan) -> Any:
    new = copy.copy(template)
    image = plan.resolved.options.get("image")
    if image is not None:
        new.image = image
    merged, added = plan.fit.merged, plan.fit.added
    requests = dict(merged.resources.requests) if merged.resources is not None else {}
    limits = dict(merged.resources.limits) if merged.resources is not None else {}
    claims = getattr(template._build_resources(), "claims", None)
    new.resources = m.ResourceRequirements(
        requests={k: m.Quantity(v) for k, v in requests.items()} or None,
        limits={k: m.Quantity(v) for k, v in limits.items()} or None,
        claims=claims,
    )
    if added.volumes:
        new.volumes = _as_list(template.volumes) + [m.Volume.model_validate(dict(v)) for v in added.volumes]
    if added.volume_mounts:
        new.volume_mounts = list(template.volume_mounts or []) + [m.VolumeMount.model_validate(dict(v)) for v in added.volume_mounts]
    if merged.node_selector:
        new.node_selector = dict(merged.node_selector)
    if added.tolerations:
        new.tolerations = list(template.tolerations or []) + [m.Toleration.model_validate(dict(t)) for t in added.tolerations]
    if plan.pod_spec_patch is not None:
        new.pod_spec_patch = plan.pod_spec_patch
    if plan.retry_strategy is not None:
        new.retry_strategy = m.RetryStrategy.model_validate(plan.retry_strategy)
    object.__setattr__(new, APPLIED, True)
    return new


def _arguments(workflow: Workflow, parameters: list[dict[str, str]]) -> m.Arguments:
    built = workflow._build_arguments()
    existing = list(built.parameters or []) if built is not None else []
    names = [p.name for p in existing]
    for parameter in parameters:
        if parameter["name"] in names:
            raise AllotmentError(
                f"workflow parameter {parameter['name']!r} is defined twice (allotment generates it for a template's submit-time override)",
                source=f"workflow {_workflow_name(workflow)}",
                accepted="rename your parameter or template, or turn the overrides off with allotment.argo.overridable(False)",
            )
        names.append(parameter["name"])
    ours = [m.Parameter(name=p["name"], value=p["value"], description=p["description"]) for p in parameters]
    return m.Arguments(artifacts=built.artifacts if built is not None else None, parameters=existing + ours)


def apply(workflow: Workflow, settings: Settings | None = None) -> Workflow:
    """A copy of ``workflow`` with allotment's fields on every resourced template and the
    submit-time parameters among its arguments. ``settings``: the deployment's (default: the
    ones :func:`using_settings` set, else read from the environment). ``workflow`` itself is
    not changed; a copy that has them already, or a workflow without allotment specs, is
    returned as it is."""
    if getattr(workflow, APPLIED, False):
        return workflow
    planned = plans(workflow, settings)
    if not planned:
        return workflow
    new = copy.copy(workflow)
    templates = list(workflow.templates or [])
    parameters: list[dict[str, str]] = []
    for index, template, plan in planned:
        templates[index] = _apply_plan(template, plan)
        parameters += plan.parameters
    new.templates = templates
    if parameters:
        new.arguments = _arguments(workflow, parameters)
    object.__setattr__(new, APPLIED, True)
    return new


HOOK_MARK = "__allotment_hook__"
"""Marks allotment's hooks among Hera's (and its ``Workflow.__init_subclass__``)."""

_INIT_SUBCLASS = "__init_subclass__"


def _make_hook(cls: type) -> Callable[[Any], Any]:
    def hook(workflow: Any) -> Any:
        return apply(workflow)

    hook.__name__ = hook.__qualname__ = f"allotment_{cls.__name__}_hook"
    hook.__annotations__ = {"workflow": cls, "return": cls}
    setattr(hook, HOOK_MARK, True)
    return hook


def _make_guard(cls: type) -> Callable[[Any], Any]:
    def guard(template: Any) -> Any:
        if not getattr(template, APPLIED, False) and (spec := template_spec(template)) is not None:
            raise AllotmentError(
                f"{_label(template)} carries an allotment spec, but the workflow that holds it was built without "
                "allotment's pre-build hook, so the spec would be lost",
                step=spec.name,
                accepted="build it as allotment.argo.apply(workflow).to_yaml() (or .create()), or call allotment.argo.install() "
                "after your Workflow subclass is defined",
            )
        return template

    guard.__name__ = guard.__qualname__ = f"allotment_{cls.__name__}_guard"
    guard.__annotations__ = {"template": cls, "return": cls}
    setattr(guard, HOOK_MARK, True)
    return guard


def _registered(cls: type) -> bool:
    hooks: dict[Any, list[Any]] = getattr(global_config, "_pre_build_hooks", None) or {}
    return any(getattr(h, HOOK_MARK, False) for h in hooks.get(cls, []))


def _register(cls: type, make: Callable[[type], Callable[[Any], Any]]) -> None:
    if not _registered(cls):
        global_config.register_pre_build_hook(make(cls))


def workflow_classes() -> list[type]:
    """``Workflow`` and every subclass of it defined so far (Hera's ``WorkflowTemplate``,
    ``CronWorkflow``, ``ClusterWorkflowTemplate``, and the user's), each once."""
    found: list[type] = []
    todo: list[type] = [Workflow]
    while todo:
        cls = todo.pop(0)
        if cls not in found:
            found.append(cls)
            todo += cls.__subclasses__()
    return found


def _watch_subclasses() -> None:
    """Hera finds a hook by the exact class of the object it builds, so each Workflow subclass
    needs its own: one defined from now on registers it as it is defined (while allotment's
    hooks are installed; after ``global_config.reset()`` it waits for the next :func:`install`).
    Hera's ``Workflow`` has no ``__init_subclass__`` of its own (tests/argo/test_hera_paths.py
    pins that); one it gains later is called first."""
    previous = Workflow.__dict__.get(_INIT_SUBCLASS)
    if getattr(getattr(previous, "__func__", None), HOOK_MARK, False):
        return

    def watch(cls: type[Workflow], /, **kwargs: Any) -> None:
        if previous is not None:
            previous.__get__(None, cls)(**kwargs)
        else:
            super(Workflow, cls).__init_subclass__(**kwargs)
        if _registered(Workflow):
            _register(cls, _make_hook)

    setattr(watch, HOOK_MARK, True)
    setattr(Workflow, _INIT_SUBCLASS, classmethod(watch))


def install() -> None:
    """Make Hera's own build paths apply allotment's specs: one pre-build hook for ``Workflow``
    and for each subclass of it (Hera's other workflow classes and yours, also those defined
    later), and a guard on ``Script`` and ``Container`` that fails a build in which a resourced
    template escaped the workflow hook. Idempotent, and again after
    ``hera.shared.global_config.reset()``. Called by every decorated step once Hera is imported
    (:func:`allotment.faces.connect_engines`), so a program needs no call of its own."""
    _watch_subclasses()
    for cls in workflow_classes():
        _register(cls, _make_hook)
    for cls in TEMPLATE_CLASSES:
        _register(cls, _make_guard)


# Importing the face connects it: a step decorated before Hera was imported may have armed the
# import hook of allotment.faces, which then fires while this module is still loading.
install()
