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
``retry_memory_factor=`` grows memory after each OOM kill (a try asks for memory x
factor^(earlier tries of the task instance that ended ``OOMKilled``), whole MiB, capped by the
policy; any other failure retries with the same memory: :mod:`allotment.airflow.tries`). A
``@resources``/``@kubernetes`` spec on the task's callable is read too, and ``step=`` names a
decorated function whose spec the operator takes (an operator with no callable of its own:
``KubernetesPodOperator(task_id="train", step=train, ...)``).

What happens where:

* When the DAG file is parsed, the spec is resolved (step sources by maximum, then
  ``default_args["allotment"]`` and the seed defaults fill gaps, the policy checks): a bad spec,
  a policy violation or a clash with the operator's own arguments is that file's import error.
* When the task runs, :meth:`ResourcesMixin.execute` resolves again with the run's
  ``dag_run.conf["allotment"]``, the OOM kills of earlier tries and the operator's pod settings as rendered,
  logs what it asks for and why, and fails the task (no retry) on a bad conf, before any pod
  request. ``build_pod_request_obj`` then builds the pod from the operator's own settings and its
  pod template, with what they ask for taken as step sources and the rest kept and merged
  (:mod:`allotment.airflow.pods`, docs/design.md §2, §3); the attributes themselves are left as
  the user gave them. When the try ends, the operator's ``cleanup`` keeps how its pod ended
  (``OOMKilled`` or not) in Airflow's task state store for the tries after it.
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

import copy
from typing import Any

from airflow.providers.cncf.kubernetes.decorators.kubernetes import _KubernetesDecoratedOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator as _KubernetesPodOperator
from airflow.sdk import BaseOperator
from allotment.facade import AllotmentError, Resolved, spec_of

from .config import active_settings
from .failures import defer_or_raise, deferred_error, fail, raise_deferred
from .resolution import resolve_at_execute, resolve_task
from .tasks import POD, task_spec
from .wiring import pod_arguments, setup, task_target

__all__ = ["KubernetesDecoratedOperator", "KubernetesPodOperator", "ResourcesMixin", "apply"]


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
        mapped = bool(getattr(self, "_BaseOperator__from_mapped", False))
        try:
            setup(self, resources=resources, retry_memory_factor=retry_memory_factor, default_args=default_args, step=step, mapped=mapped)
        except AllotmentError as e:
            from .mapped import probing

            if mapped and not probing():  # a map index unmapped to run (its own values from .expand()): fails for good
                fail(self, e, before="anything is created")
            defer_or_raise(self, e)  # during a DAG file import: the cluster policy reports it in one line

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: set[int]) -> None:
        # Airflow renders nested objects (a V1ResourceRequirements' limits) in place, and a task
        # about to run is a shallow copy of the parsed one: render copies, so the parsed task keeps
        # its templates (another run in the same process, dag.test(), reads them anew).
        if parent is self:
            for attr in ("container_resources", "volumes", "volume_mounts", "pod_template_dict", "container_overrides"):
                value = getattr(self, attr, None)
                if value is not None and not isinstance(value, str):
                    setattr(self, attr, copy.deepcopy(value))
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    def get_python_source(self) -> str:
        """A decorated task's source for its pod, without allotment's decorators, which the pod could
        not evaluate (:mod:`allotment.airflow.pod_script`)."""
        from .pod_script import without_allotment_decorators

        source: str = super().get_python_source()  # type: ignore[misc]
        return without_allotment_decorators(source, getattr(self.python_callable, "__globals__", {}))  # type: ignore[attr-defined]

    def allotment_resolve(self, context: Any = None) -> Resolved:
        """This task's spec (for the run and try of ``context``, when given)."""
        return resolve_task(self, context)

    def execute(self, context: Any) -> Any:
        error = deferred_error(self)
        if error is not None:
            fail(self, error, before="anything is created")
        spec = task_spec(self)
        if spec is not None and spec.target == POD:
            resolve_at_execute(
                self, context, lambda resolved: pod_arguments(self, resolved, active_settings(), running=True), before="any pod request"
            )
        return super().execute(context)

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: Any = None, context: Any = None) -> Any:
        """A pod operator's cleanup at the end of a try (sync and deferrable): first keep how the
        try's pod ended, for the memory of the tries after it (:mod:`allotment.airflow.pod_tries`;
        a pod admitted although its creation failed is deleted), then the provider's cleanup."""
        spec = task_spec(self)
        if spec is not None and spec.target == POD and context:
            from .pod_tries import record_pod_end

            record_pod_end(self, context, pod, remote_pod)
        return super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)  # type: ignore[misc]

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        """The operator's pod, with the spec merged in (sync, deferrable and dry runs all build here)."""
        raise_deferred(self)
        spec = task_spec(self)
        if spec is None or spec.target != POD:
            return super().build_pod_request_obj(context, dry_run=dry_run)  # type: ignore[misc]
        running = bool(context)
        arguments = pod_arguments(self, resolve_task(self, context), active_settings(), running=running)
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
    ``@batch``). DAG and task group ``default_args["allotment"]`` fill gaps. A mapped task
    (``.expand()``) is handled by :func:`allotment.airflow.mapped.apply_mapped`. An error kept on
    the task while it was built (:mod:`allotment.airflow.failures`) is raised here.
    """
    from .mapped import apply_mapped, is_mapped

    raise_deferred(task)
    if task_spec(task) is not None:
        return
    if is_mapped(task):
        apply_mapped(task)
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
