"""Operators that take an allotment spec: :class:`ResourcesMixin` and a ready :class:`KubernetesPodOperator`
(allotment's BatchOperator is the same mixin on the amazon provider's operator: :mod:`allotment.airflow.batch`).

::

    from allotment.airflow import KubernetesPodOperator

    prep = KubernetesPodOperator(
        task_id="prep", image="python:3.12-slim", cmds=["python", "-c", "print(1)"],
        resources={"cpu": 2, "memory": 8192},              # or allotment.Resources(...), or
    )                                                      # Airflow's {"cpus": 2, "ram": 8192}

    class MyPodOperator(ResourcesMixin, MyCompanyPodOperator): ...   # your own KPO subclass

``resources=`` takes an :class:`allotment.Resources`, a dict of allotment fields, or Airflow's
BaseOperator form ``{"cpus", "ram", "disk", "gpus"}``. **Airflow documents ``ram`` and ``disk``
in MB; allotment reads them as MiB.** Airflow's own ``resources`` attribute stays filled with
the resolved values (``cpus`` in cores, ``ram``/``disk`` in MiB) for serialization and the UI.
``retry_memory_factor=`` grows memory on each retry (try N: memory x factor^(N-1), whole MiB,
capped by the policy). A ``@resources``/``@kubernetes`` spec on the task's callable is read too,
and ``step=`` names a decorated function whose spec the operator takes (an operator with no
callable of its own: ``KubernetesPodOperator(task_id="train", step=train, ...)``).

What happens where:

* When the DAG file is parsed, the spec is resolved (step sources by maximum, then
  ``default_args["allotment"]`` and the seed defaults fill gaps, the policy checks): a bad spec,
  a policy violation or a clash with the operator's own arguments is that file's import error.
* When the task runs, :meth:`ResourcesMixin.execute` resolves again with the run's
  ``dag_run.conf["allotment"]`` and the try number, logs what it asks for and why, and fails the
  task (no retry) on a bad conf, before any pod request. ``build_pod_request_obj`` then builds
  the pod with the operator's own ``container_resources``, ``volumes``, ``volume_mounts``,
  ``node_selector`` and ``tolerations`` kept and merged (DESIGN §3); the attributes themselves
  are left as the user gave them.
* On a KubernetesPodOperator the spec sizes the pod it launches; on a BatchOperator the Batch
  job it submits. On any other operator (the mixin on e.g. a PythonOperator) it sizes the
  task's own worker on the KubernetesExecutor or the AwsBatchExecutor
  (:mod:`allotment.airflow.executors`) and does nothing under Local/Celery executors.

``@task.kubernetes`` tasks whose callable carries ``@resources`` (above or below
``@task.kubernetes``: the spec lands on the same function either way) become
:class:`KubernetesDecoratedOperator` through allotment's cluster policy
(:mod:`allotment.airflow.policy`), so both orders give the same pod.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow.providers.cncf.kubernetes.decorators.kubernetes import _KubernetesDecoratedOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator as _KubernetesPodOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from allotment.airflow.config import active_settings
from allotment.airflow.executors import batch_executor_config, on_batch_executor, on_kubernetes_executor, pod_override_config
from allotment.airflow.kube import merged_pod_arguments
from allotment.airflow.runtime import describe, resolve_for_run
from allotment.airflow.tasks import (
    BATCH_WORKER,
    JOB,
    POD,
    WORKER,
    TaskSpec,
    airflow_resources,
    defaults_from,
    resources_from_airflow,
)
from allotment.decorators import StepSpec, spec_of
from allotment.errors import AllotmentError
from allotment.k8s import kubernetes_parts
from allotment.resolve import Resolved
from allotment.settings import Settings
from allotment.sources import Source

__all__ = [
    "KubernetesDecoratedOperator",
    "KubernetesPodOperator",
    "ResourcesMixin",
    "apply",
    "resolve_at_execute",
    "resources_from_airflow",
    "setup",
    "task_target",
]

ATTR = "_allotment"
"""The operator attribute holding its :class:`~allotment.airflow.tasks.TaskSpec`."""

_BATCH_OPERATOR_MODULE = "airflow.providers.amazon.aws.operators.batch"

T = TypeVar("T")


def task_spec(task: Any) -> TaskSpec | None:
    """The allotment spec of an Airflow task, if it has one."""
    found = getattr(task, ATTR, None)
    return found if isinstance(found, TaskSpec) else None


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
) -> TaskSpec:
    """Make ``task`` allotment-aware: record its :class:`TaskSpec`, resolve it now (a bad spec raises
    here, which is the DAG file's import error), fill Airflow's ``resources``, check what it
    launches (a pod's merged arguments, a Batch job's overrides), and, for a worker on the
    KubernetesExecutor or the AwsBatchExecutor, fill its ``executor_config``."""
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
    spec_record = TaskSpec(step_id, spec, backend, target, defaults_from(default_args, step=step_id), tuple(extra), user_config)
    settings = active_settings()
    resolved = spec_record.resolve(settings)
    object.__setattr__(task, ATTR, spec_record)
    if fill_airflow_resources or getattr(task, "resources", None) is None:
        task.resources = airflow_resources(resolved)
    if target == POD:
        _apply_kubernetes_options(task, spec_record)
        _pod_arguments(task, resolved, settings)  # a clash with the operator's own arguments fails now
    elif target == WORKER:
        task.executor_config = pod_override_config(resolved, settings.profile, user_config)
    elif target == JOB:
        from allotment.airflow.batch import check_operator

        check_operator(task, resolved)  # a clash with the operator's own overrides fails now
    elif target == BATCH_WORKER:
        task.executor_config = batch_executor_config(resolved, user_config)
    return spec_record


def _apply_kubernetes_options(task: Any, spec: TaskSpec) -> None:
    """``@kubernetes(namespace=..., image=...)`` on the callable fills the operator's own, if unset."""
    options = spec.spec.options("kubernetes") if spec.spec else {}
    for option in ("namespace", "image"):
        value = options.get(option)
        if value is None:
            continue
        current = getattr(task, option, None)
        if current in (None, ""):
            setattr(task, option, value)
        elif current != value:
            raise AllotmentError(
                f"{option}={current!r} on {type(task).__name__} conflicts with {option}={value!r} from @kubernetes",
                step=spec.task_id,
                accepted=f"give the {option} in one place",
            )


def _pod_arguments(task: Any, resolved: Resolved, settings: Settings) -> dict[str, Any]:
    """The pod arguments for ``resolved``, merged with the operator's own."""
    return merged_pod_arguments(
        kubernetes_parts(resolved, settings.profile),
        resolved,
        user_source=f"the {type(task).__name__}'s own container_resources/volumes/volume_mounts/node_selector/tolerations",
        resources=task.container_resources,
        volumes=list(task.volumes or []),
        volume_mounts=list(task.volume_mounts or []),
        node_selector=dict(task.node_selector or {}),
        tolerations=list(task.tolerations or []),
    )


def resolve_task(task: Any, context: Mapping[str, Any] | None = None, settings: Settings | None = None) -> Resolved:
    """A task's spec, for one run and try when ``context`` is given (its ``dag_run.conf`` and
    ``ti.try_number``), else as parsed."""
    spec = task_spec(task)
    if spec is None:
        raise AllotmentError(f"task {task.task_id!r} carries no allotment spec")
    settings = settings or active_settings()
    if not context:
        return spec.resolve(settings)
    dag_run = context.get("dag_run")
    ti = context.get("ti")
    dag = context.get("dag") or getattr(task, "dag", None)
    try:
        return resolve_for_run(
            spec,
            settings,
            conf=getattr(dag_run, "conf", None) if dag_run is not None else None,
            try_number=getattr(ti, "try_number", 1) or 1,
            task_ids=set(dag.task_ids) if dag is not None else None,
        )
    except AllotmentError as e:
        raise e.with_context(step=spec.task_id) from e


def resolve_at_execute(task: Any, context: Any, check: Callable[[Resolved], T], *, before: str) -> tuple[Resolved, T]:
    """Resolve a task's spec for this run and try, and ``check`` it (compile and merge what the task
    launches), then log what it asks for and why. A bad conf, a policy violation or a clash fails
    the task for good (``AirflowFailException``, no retry), ``before`` anything is created."""
    try:
        resolved = resolve_task(task, context)
        checked = check(resolved)
    except AllotmentError as e:
        task.log.error("allotment: the task fails before %s: %s", before, e)
        raise AirflowFailException(f"allotment: {e}") from e
    for line in describe(resolved):
        task.log.info("%s", line)
    return resolved, checked


class ResourcesMixin(BaseOperator):
    """Add allotment's ``resources=``, ``retry_memory_factor=`` and ``step=`` to an operator.

    Put it first: ``class MyPodOperator(ResourcesMixin, KubernetesPodOperator)``. With a
    KubernetesPodOperator (or a subclass) the spec sizes the launched pod, with a BatchOperator
    the submitted job (:class:`allotment.airflow.batch.BatchOperator`); with any other
    operator it sizes the task's worker on the KubernetesExecutor or the AwsBatchExecutor. See
    the module docs.
    """

    def __init__(self, *, resources: Any = None, retry_memory_factor: float | None = None, step: Any = None, **kwargs: Any) -> None:
        default_args = kwargs.get("default_args")
        super().__init__(**kwargs)
        setup(self, resources=resources, retry_memory_factor=retry_memory_factor, default_args=default_args, step=step)

    def allotment_resolve(self, context: Mapping[str, Any] | None = None) -> Resolved:
        """This task's spec (for the run and try of ``context``, when given)."""
        return resolve_task(self, context)

    def execute(self, context: Any) -> Any:
        spec = task_spec(self)
        if spec is not None and spec.target == POD:
            resolve_at_execute(self, context, lambda resolved: _pod_arguments(self, resolved, active_settings()), before="any pod request")
        return super().execute(context)

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        """The operator's pod, with the spec merged in (sync, deferrable and dry runs all build here)."""
        spec = task_spec(self)
        if spec is None or spec.target != POD:
            return super().build_pod_request_obj(context, dry_run=dry_run)  # type: ignore[misc]
        arguments = _pod_arguments(self, resolve_task(self, context), active_settings())
        saved = {name: getattr(self, name) for name in arguments}
        try:
            for name, value in arguments.items():
                setattr(self, name, value)
            return super().build_pod_request_obj(context, dry_run=dry_run)  # type: ignore[misc]
        finally:
            for name, value in saved.items():
                setattr(self, name, value)


class KubernetesPodOperator(ResourcesMixin, _KubernetesPodOperator):
    """Airflow's KubernetesPodOperator with ``resources=`` and ``retry_memory_factor=``; a drop-in
    replacement (every other argument is the provider's)."""


class KubernetesDecoratedOperator(ResourcesMixin, _KubernetesDecoratedOperator):
    """``@task.kubernetes`` with allotment: what a ``@task.kubernetes`` task whose callable carries
    ``@resources``/``@kubernetes`` becomes (:func:`apply`)."""


_TAKEN_OVER: dict[type, type] = {_KubernetesDecoratedOperator: KubernetesDecoratedOperator}


def _with_resources(cls: type) -> type:
    """``cls`` with :class:`ResourcesMixin` first: allotment's own class for ``@task.kubernetes``,
    made once per class for other pod operators with a callable (``@task.kubernetes_cmd``, a
    user's own decorated operator)."""
    if cls not in _TAKEN_OVER:
        name = "Allotment" + cls.__name__.lstrip("_")
        _TAKEN_OVER[cls] = type(name, (ResourcesMixin, cls), {"__module__": __name__, "__qualname__": name, "__doc__": cls.__doc__})
    return _TAKEN_OVER[cls]


def _merged_default_args(task: Any) -> dict[str, Any]:
    """The DAG's and task groups' ``default_args`` for a task built without allotment's operator."""
    from airflow.sdk.bases.operator import get_merged_defaults

    try:
        dag = task.dag
    except Exception:
        dag = None
    if dag is None:
        return {}
    args, _ = get_merged_defaults(dag=dag, task_group=getattr(task, "task_group", None), task_params=None, task_default_args=None)
    return dict(args)


def apply(task: Any) -> None:
    """Make a task built by plain Airflow allotment-aware when its callable carries a spec (once).

    A ``@task.kubernetes`` task becomes a :class:`KubernetesDecoratedOperator` (another pod operator
    with a callable, e.g. ``@task.kubernetes_cmd``, a subclass of its class with
    :class:`ResourcesMixin` first); any other task with
    a python callable (``@task``, PythonOperator, ...) on the KubernetesExecutor gets its
    ``executor_config["pod_override"]``, on the AwsBatchExecutor its ``executor_config``
    SubmitJob fragment (unless its spec is pinned to the other backend by ``@kubernetes`` or
    ``@batch``). DAG and task group ``default_args["allotment"]`` fill gaps.
    """
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    if task_spec(task) is not None:
        return
    if isinstance(task, MappedOperator):
        function = getattr(task, "python_callable", None) or (getattr(task, "partial_kwargs", None) or {}).get("python_callable")
        if function is not None and spec_of(function) is not None:
            raise AllotmentError(
                "is a mapped task (.expand()); allotment does not size mapped tasks yet",
                step=str(task.task_id),
                accepted="drop @resources from the mapped task, or size its pods with container_resources",
            )
        return
    function = getattr(task, "python_callable", None)
    spec = spec_of(function) if function is not None else None
    if spec is None:
        return
    if isinstance(task, _KubernetesPodOperator):
        task.__class__ = _with_resources(type(task))
        setup(task, default_args=_merged_default_args(task))
        return
    backend, _ = task_target(task)
    if spec.backend is not None and backend is not None and spec.backend != backend:
        return  # pinned to another backend than its executor's: left alone
    setup(task, default_args=_merged_default_args(task), fill_airflow_resources=False)
