"""Making an Airflow task allotment-aware when its DAG file is parsed: :func:`setup`.

What the spec sizes is decided by the task's operator first (a pod or Batch operator sizes what
it launches), then by the executor it runs on (:func:`task_target`). :func:`setup` records the
task's :class:`~allotment.airflow.tasks.TaskSpec`, resolves it now (a bad spec raises here,
which is the DAG file's import error), fills Airflow's ``resources``, checks what it launches
(a pod's merged arguments, a Batch job's overrides), and, for a worker on the
KubernetesExecutor or the AwsBatchExecutor, fills its ``executor_config``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator as _KubernetesPodOperator
from allotment.facade import AllotmentError, Resolved, Settings, Source, StepSpec, agree_option, spec_of

from .batch_jobs import check_operator
from .config import active_settings, operator_resource_defaults
from .executors import batch_executor_config, on_batch_executor, on_kubernetes_executor, pod_override_config
from .kube import merged_pod_arguments
from .pods import pod_settings, read_once, templated_attrs
from .resolution import resolve_task
from .tasks import ATTR, BATCH_WORKER, JOB, POD, WORKER, TaskSpec, airflow_resources, defaults_from, resources_from_airflow, task_spec
from .worker import RECIPE, install_check, with_recipe

__all__ = ["is_batch_operator", "pod_arguments", "setup", "step_spec", "task_target"]

_BATCH_OPERATOR_MODULE = "airflow.providers.amazon.aws.operators.batch"


def is_batch_operator(task: Any) -> bool:
    """True for the amazon provider's BatchOperator (and subclasses), without importing the provider."""
    module = sys.modules.get(_BATCH_OPERATOR_MODULE)
    return module is not None and isinstance(task, module.BatchOperator)


def task_target(task: Any) -> tuple[str | None, str | None]:
    """``(backend, target)`` of a task (see :class:`~allotment.airflow.tasks.TaskSpec`): what its
    spec sizes, decided by its operator first (a pod or Batch operator sizes what it launches),
    then by the executor it runs on."""
    if isinstance(task, _KubernetesPodOperator):
        return "kubernetes", POD
    if is_batch_operator(task):
        return "batch", JOB
    if on_kubernetes_executor(task):
        return "kubernetes", WORKER
    if on_batch_executor(task):
        return "batch", BATCH_WORKER
    return None, None


def step_spec(task: Any, step: Any = None) -> StepSpec | None:
    """The spec on the task's callable, or on ``step`` (an operator's ``step=``); both is an error."""
    function = getattr(task, "python_callable", None)
    own = spec_of(function) if function is not None else None
    given = spec_of(step) if step is not None else None
    if step is not None and given is None:
        raise AllotmentError(
            f"step={step!r} on {type(task).__name__} carries no allotment spec",
            step=str(task.task_id),
            accepted="pass a function decorated with @resources, @kubernetes or @batch",
        )
    if own is not None and given is not None and own is not given:
        raise AllotmentError(
            f"has a spec on its callable and another from step= on {type(task).__name__}",
            step=str(task.task_id),
            accepted="give the spec in one place",
        )
    return given or own


def setup(
    task: Any,
    *,
    resources: Any = None,
    retry_memory_factor: float | None = None,
    default_args: Mapping[str, Any] | None = None,
    fill_airflow_resources: bool = True,
    step: Any = None,
    mapped: bool = False,
) -> TaskSpec:
    """Make ``task`` allotment-aware: record its :class:`TaskSpec`, resolve it now (a bad spec raises
    here, which is the DAG file's import error), fill Airflow's ``resources``, check what it
    launches (a pod's merged arguments, its pod template, a Batch job's overrides), and, for a
    worker on the KubernetesExecutor or the AwsBatchExecutor, fill its ``executor_config``.
    ``mapped``: ``task`` stands for every index of a mapped task."""
    step_id = str(task.task_id)
    kind = type(task).__name__
    spec = step_spec(task, step)
    extra: list[tuple[Any, Source]] = []
    given = resources_from_airflow(resources, step=step_id, source=f"resources= on {kind}")
    if not given.is_empty():
        extra.append((given, Source("resources=", f"on {kind}")))
    if retry_memory_factor is not None:
        factor = resources_from_airflow(
            {"retry_memory_factor": retry_memory_factor}, step=step_id, source=f"retry_memory_factor= on {kind}"
        )
        extra.append((factor, Source("retry_memory_factor=", f"on {kind}")))
    backend, target = task_target(task)
    user_config = dict(getattr(task, "executor_config", None) or {})
    user_config.pop(RECIPE, None)
    templated = templated_attrs(task) if target == POD else frozenset()
    record = TaskSpec(
        step_id, spec, backend, target, defaults_from(default_args, step=step_id), tuple(extra), user_config, templated, mapped
    )
    object.__setattr__(task, ATTR, record)
    try:
        with read_once():
            _set_up(task, record, fill_airflow_resources)
    except BaseException:
        object.__setattr__(task, ATTR, None)
        raise
    return record


def _set_up(task: Any, record: TaskSpec, fill_airflow_resources: bool) -> None:
    """Resolve ``task`` now and fill or check what its target needs (:func:`setup`)."""
    target, user_config = record.target, record.user_executor_config or {}
    settings = active_settings()
    resolved = resolve_task(task, settings=settings)
    if fill_airflow_resources or getattr(task, "resources", None) is None:
        # the values Airflow would read for the resources the spec leaves out, read once (operator_resource_defaults)
        task.resources = operator_resource_defaults() | airflow_resources(resolved)
    if target == POD:
        _apply_kubernetes_options(task, record)
        pod_arguments(task, resolved, settings, check_only=True)  # a clash with the operator's own settings or its template fails now
    elif target == WORKER:
        task.executor_config = with_recipe(pod_override_config(resolved, settings.profile, user_config), record)
        install_check(task)
    elif target == JOB:
        check_operator(task, resolved)  # a clash with the operator's own overrides fails now
    elif target == BATCH_WORKER:
        task.executor_config = batch_executor_config(resolved, user_config)


def _apply_kubernetes_options(task: Any, spec: TaskSpec) -> None:
    """``@kubernetes(namespace=..., image=...)`` on the callable fills the operator's own, if unset."""
    options = spec.spec.options("kubernetes") if spec.spec else {}
    for option in ("namespace", "image"):
        current = getattr(task, option, None)
        chosen = agree_option(spec.task_id, option, current, f"on {type(task).__name__}", option, options.get(option), "kubernetes")
        if chosen is not None and chosen != current:
            setattr(task, option, chosen)


def pod_arguments(task: Any, resolved: Resolved, settings: Settings, *, running: bool = False, check_only: bool = False) -> dict[str, Any]:
    """The pod arguments for ``resolved``, merged with the operator's own settings and its pod
    template (:mod:`allotment.airflow.pods`); with a template, also the template (what allotment
    merged taken out of it) as ``full_pod_spec``, for the provider to start from. ``check_only``
    (when the DAG file is parsed): raise what would clash, build nothing (an empty mapping)."""
    spec = task_spec(task)
    found = pod_settings(task, resolved.step, running=running, templated=spec.templated if spec is not None else frozenset())
    has_resources = bool(found.resources.get("requests") or found.resources.get("limits"))
    arguments = merged_pod_arguments(
        resolved,
        settings.profile,
        user_source=found.user_source,
        resources=found.resources if has_resources else None,
        claims=found.claims,
        volumes=found.volumes,
        volume_mounts=found.volume_mounts,
        node_selector=found.node_selector,
        tolerations=found.tolerations,
        check_only=check_only,
    )
    if check_only:
        return arguments
    if found.template is not None:
        arguments.update(pod_template_file=None, pod_template_dict=None, full_pod_spec=found.template)
    return arguments
