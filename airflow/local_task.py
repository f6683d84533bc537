"""``@task.allotment``: one TaskFlow task for every backend, and plain ``@task`` on the local backend.

::

    from airflow.sdk import dag, task
    from allotment import resources

    @resources(cpu=2, memory="1Gi")
    @task.allotment(kubernetes={"image": "python:3.12-slim"})
    def train(rows: int) -> dict: ...

The provider registers the decorator (``task-decorators`` in :mod:`allotment.airflow.provider`).
Where the task runs is the deployment's choice, made when the DAG file is parsed: a backend
decorator on the callable (``@kubernetes``, ``@batch``) pins it, else the deployment's backend
(``ALLOTMENT_BACKEND``, ``[allotment] backend``, or the one backend that ``ALLOTMENT_WITH`` /
``[allotment] with`` names), else ``local``. So ``ALLOTMENT_WITH=kubernetes`` alone moves the
same DAG file to Kubernetes.

* **local**: a :class:`LocalDecoratedOperator`. When the task runs, its callable runs on the
  worker in a child process under the spec resolved for this run (``dag_run.conf`` included),
  held to its cpu, memory and GPUs by the local executor (docs/local.md); the step's output goes
  to the task log, then the table row of what it used. The callable and its arguments travel to
  the child pickled by value (``dill``), so they must pickle: context objects (``ti``,
  ``dag_run``) cannot; the return value comes back as the task's XCom.
* **kubernetes**: exactly what ``@task.kubernetes`` builds, as allotment's
  :class:`~allotment.airflow.operators.KubernetesDecoratedOperator`, with the spec: the
  ``kubernetes=`` keywords (``image``, ``namespace``, ...) go to it, and an image is required
  (from ``kubernetes=`` or ``@kubernetes(image=...)``).
* **batch**: an error when the DAG file is parsed: AWS Batch runs a job definition's container,
  not a Python callable (use allotment's ``BatchOperator`` or ``portable_task``).

Every other keyword (``retries``, ``task_id``, ``resources=``, ``retry_memory_factor=``, ...) goes
to either operator.

A plain ``@task`` (or ``PythonOperator``) whose callable carries ``@resources`` also runs on the
local backend under the Local or Celery executor (docs/design.md §8): allotment's cluster policy
calls :func:`run_here` for it. Tasks with an ``execute_callable`` of their own (``@task.virtualenv``,
``@task.external_python``, ...) are left as they are.

Retries: each Airflow try is a new process. Memory grows only after OOM kills (docs/design.md
§7.3): each try keeps how it ended (an OOM kill is the local backend's memory-cap kill) in
Airflow's task state store, and a try asks for the resolved memory x ``retry_memory_factor`` ^
(earlier tries that ended in an OOM kill), held to the policy's cap (:func:`earlier_oom_kills`,
:func:`record_local_end`, :mod:`allotment.airflow.tries`). Within one try nothing retries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

import attr
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.bases.decorator import _TaskDecorator
from airflow.sdk.exceptions import AirflowFailException
from allotment.facade import AllotmentError, Resolved, Source, local_table, local_try_end, run_local, spec_of

from .config import active_settings
from .local_child import call, dumps
from .runtime import conf_specs, describe
from .tasks import ATTR, TaskSpec, airflow_resources, defaults_from, resources_from_airflow, task_spec
from .tries import earlier_tries, record_end, try_number_of

__all__ = [
    "LOCAL",
    "LocalDecoratedOperator",
    "LocalMixin",
    "allotment_task",
    "earlier_oom_kills",
    "record_local_end",
    "run_here",
    "task_backend",
]

LOCAL: Final = "local"
"""The :class:`~allotment.airflow.tasks.TaskSpec` target of a task whose callable runs on the local backend."""

_CONTEXT: Final = "_allotment_context"


def earlier_oom_kills(task: Any, context: Mapping[str, Any]) -> int:
    """How many earlier Airflow tries of this task instance ended in an OOM kill on the local backend.

    Each try is a new process: the count comes from the record every try keeps in Airflow's task
    state store (:mod:`allotment.airflow.tries`; :func:`record_local_end` writes it when a try
    ends). Memory for this try is the resolved memory x ``retry_memory_factor`` ^ this count,
    held to the policy's cap; the task log names each earlier try and how it ended."""
    earlier = earlier_tries(task, context)
    for note in earlier.notes():
        task.log.info("allotment: note: %s", note)
    return earlier.oom_kills


def record_local_end(context: Mapping[str, Any], result: Any) -> None:
    """Keep how this try ended on the local backend (a :class:`~allotment.local.StepResult`), for the tries after it."""
    record_end(context, local_try_end(str(result.outcome), result.reason), by="the local backend")


class LocalMixin(PythonOperator):
    """Run a Python operator's callable on the local backend: in a child process under the task's
    spec, resolved for this run (put it first: ``class X(LocalMixin, SomePythonOperator)``)."""

    def execute(self, context: Any) -> Any:
        object.__setattr__(self, _CONTEXT, context)
        try:
            return super().execute(context)
        finally:
            object.__setattr__(self, _CONTEXT, None)

    def execute_callable(self) -> Any:
        context = getattr(self, _CONTEXT, None) or {}
        resolved = _resolve_for_run(self, context)
        settings = active_settings()
        oom_kills = earlier_oom_kills(self, context)  # logs how each earlier try ended
        # what this try asks for: the run's spec, grown after earlier OOM kills (run_local grows it, from the count)
        shown = resolved.with_memory_after(oom_kills, settings.policy, try_number=try_number_of(context))
        for line in describe(shown):
            self.log.info("%s", line)
        try:
            data = dumps(self.python_callable, list(self.op_args), self.op_kwargs)
        except Exception as e:
            raise AirflowFailException(
                f"allotment: task {self.task_id!r}: its callable and arguments must pickle to run in a child process "
                f"on the local backend ({type(e).__name__}: {e}); pass plain values, not context objects such as ti or dag_run"
            ) from None
        try:
            tries = run_local(
                resolved,
                call,
                (data,),
                policy=settings.policy,
                earlier_oom_kills=oom_kills,
                on_output=lambda line: self.log.info("%s", line),
            )
        except AllotmentError as e:  # it could not start here (too few GPUs...): no retry helps
            self.log.error("allotment: the task fails before its process starts: %s", e)
            raise AirflowFailException(f"allotment: {e}") from e
        for line in local_table(tries.tries).splitlines():
            self.log.info("allotment: %s", line)
        final = tries.final
        record_local_end(context, final)
        if not final.ok:
            self.log.error("allotment: task %r %s: %s", self.task_id, final.outcome.replace("_", "-"), final.reason)
            if final.traceback:
                self.log.error("%s", final.traceback.rstrip())
        return tries.get()


class LocalDecoratedOperator(LocalMixin, _PythonDecoratedOperator):
    """What ``@task.allotment`` builds on the local backend: ``@task`` whose callable runs in a child
    process under its spec. Takes ``resources=`` and ``retry_memory_factor=`` as allotment's operators do."""

    custom_operator_name: str = "@task.allotment"

    def __init__(self, *, resources: Any = None, retry_memory_factor: float | None = None, **kwargs: Any) -> None:
        default_args = kwargs.get("default_args")
        super().__init__(**kwargs)
        _record(self, resources=resources, retry_memory_factor=retry_memory_factor, default_args=default_args)


def _record(task: Any, *, resources: Any = None, retry_memory_factor: float | None = None, default_args: Any = None) -> TaskSpec:
    """Record the local :class:`TaskSpec` of ``task`` and resolve it now (a bad spec is the DAG file's error)."""
    step_id = str(task.task_id)
    kind = type(task).__name__
    extra: list[Any] = []
    given = resources_from_airflow(resources, step=step_id, source=f"resources= on {kind}")
    if not given.is_empty():
        extra.append((given, Source("resources=", f"on {kind}")))
    if retry_memory_factor is not None:
        source = f"retry_memory_factor= on {kind}"
        factor = resources_from_airflow({"retry_memory_factor": retry_memory_factor}, step=step_id, source=source)
        extra.append((factor, Source("retry_memory_factor=", f"on {kind}")))
    function = getattr(task, "python_callable", None)
    own = spec_of(function) if function is not None else None
    spec = TaskSpec(step_id, own, "local", LOCAL, defaults_from(default_args, step=step_id), tuple(extra))
    resolved = spec.resolve(active_settings())
    object.__setattr__(task, ATTR, spec)
    if getattr(task, "resources", None) is None or resources is not None:
        task.resources = airflow_resources(resolved)
    return spec


def _resolve_for_run(task: Any, context: Mapping[str, Any]) -> Resolved:
    """The spec for this run: the run's ``dag_run.conf`` applied (no growth by try number: on the
    local backend memory grows only after OOM kills, :func:`earlier_oom_kills`). A bad conf or a
    policy violation fails the task for good, before its process starts."""
    spec = task_spec(task)
    if spec is None:  # pragma: no cover - LocalMixin tasks always have one
        raise AirflowFailException(f"allotment: task {task.task_id!r} carries no allotment spec")
    dag_run = context.get("dag_run")
    dag = context.get("dag") or getattr(task, "dag", None)
    try:
        conf = getattr(dag_run, "conf", None) if dag_run is not None else None
        withs, sets = conf_specs(conf, task_ids=set(dag.task_ids) if dag is not None else None)
        return spec.resolve(active_settings(), withs=withs, sets=sets)
    except AllotmentError as e:
        error = e.with_context(step=spec.task_id)
        task.log.error("allotment: the task fails before its process starts: %s", error)
        raise AirflowFailException(f"allotment: {error}") from e


_LOCAL_CLASSES: dict[type, type] = {}


def _local_class(cls: type) -> type:
    """``cls`` with :class:`LocalMixin` first (made once per class)."""
    if cls not in _LOCAL_CLASSES:
        name = "AllotmentLocal" + cls.__name__.lstrip("_")
        _LOCAL_CLASSES[cls] = type(name, (LocalMixin, cls), {"__module__": __name__, "__qualname__": name, "__doc__": cls.__doc__})
    return _LOCAL_CLASSES[cls]


def run_here(task: Any) -> bool:
    """Move a plain Python task with a spec, on no allotment backend (the Local or Celery executor),
    to the local backend: its callable then runs in a child process under its spec. Called by the
    cluster policy after :func:`allotment.airflow.operators.apply`; True when the task was moved.

    Left as they are: tasks the spec already sizes elsewhere (a pod, a job, a worker), tasks pinned
    to another backend (``@kubernetes``, ``@batch``), and operators that run their callable their
    own way (a virtualenv, another interpreter)."""
    spec = task_spec(task)
    if spec is None or spec.target is not None or not isinstance(task, PythonOperator) or isinstance(task, LocalMixin):
        return False
    if spec.spec is not None and spec.spec.backend not in (None, "local"):
        return False
    if type(task).execute_callable is not PythonOperator.execute_callable:
        return False
    local = dataclasses.replace(spec, backend="local", target=LOCAL)
    local.resolve(active_settings())  # a spec that is wrong on the local backend fails the DAG file now
    task.__class__ = _local_class(type(task))
    object.__setattr__(task, ATTR, local)
    return True


def task_backend(function: Any) -> tuple[str, str]:
    """The backend a ``@task.allotment`` task runs on, and why (see the module docs)."""
    spec = spec_of(function)
    if spec is not None and spec.backend is not None:
        return spec.backend, f"@{spec.backend} on the callable"
    settings = active_settings()
    origin = dict(settings.origins).get("backend", "default")
    return settings.backend, ("the embedded default" if origin == "default" else f"the deployment's backend, from {origin}")


@attr.define(slots=False)
class _AllotmentTaskDecorator(_TaskDecorator):  # type: ignore[type-arg]
    """``@task.allotment``: chooses its operator when the task is made in the DAG (the spec's
    decorators are all applied by then, in either order)."""

    kubernetes_kwargs: dict[str, Any] = attr.ib(factory=dict)

    def _chosen(self) -> _TaskDecorator:  # type: ignore[type-arg]
        backend, why = task_backend(self.function)
        task_id = str(self.kwargs.get("task_id") or self.function.__name__)
        kwargs = dict(self.kwargs)
        operator: type
        if backend == "kubernetes":
            from .operators import KubernetesDecoratedOperator

            twice = sorted(set(self.kubernetes_kwargs) & set(kwargs))
            if twice:
                raise AllotmentError(
                    f"@task.allotment got {twice[0]!r} both in kubernetes= and as a common argument",
                    step=task_id,
                    accepted="give each argument once",
                )
            kwargs.update(self.kubernetes_kwargs)
            spec = spec_of(self.function)
            if not kwargs.get("image") and not (spec is not None and spec.options("kubernetes").get("image")):
                raise AllotmentError(
                    f"runs on Kubernetes here ({why}) but @task.allotment got no image",
                    step=task_id,
                    accepted="pass @task.allotment(kubernetes={'image': 'python:3.12-slim', ...}) or @kubernetes(image=...)",
                )
            operator = KubernetesDecoratedOperator
        elif backend == "batch":
            raise AllotmentError(
                f"runs on AWS Batch here ({why}), which runs a job definition's container, not a Python callable",
                step=task_id,
                accepted="use allotment's BatchOperator (or portable_task) with a job definition, or run this DAG with "
                "ALLOTMENT_WITH=kubernetes or on the local backend",
            )
        else:
            operator = LocalDecoratedOperator
        chosen = _TaskDecorator(
            function=self.function,
            operator_class=operator,
            multiple_outputs=self.multiple_outputs,
            kwargs=kwargs,
            decorator_name=self.decorator_name,
        )
        for name in ("is_setup", "is_teardown", "returns_dag_result", "on_failure_fail_dagrun"):
            setattr(chosen, name, getattr(self, name))
        return chosen

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._chosen()(*args, **kwargs)

    def _expand(self, expand_input: Any, *, strict: bool) -> Any:
        return self._chosen()._expand(expand_input, strict=strict)


def allotment_task(
    python_callable: Any = None,
    multiple_outputs: bool | None = None,
    *,
    kubernetes: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """``@task.allotment``: the callable runs on the deployment's backend (module docs).

    ``kubernetes``: keywords for the Kubernetes pod (those of ``@task.kubernetes``: ``image``,
    ``namespace``, ...), used only when the task runs there. ``kwargs``: for every backend."""
    if kubernetes is not None and not isinstance(kubernetes, Mapping):
        raise AllotmentError(
            f"@task.allotment(kubernetes=...) got a {type(kubernetes).__name__}", accepted="pass a dict of @task.kubernetes keywords"
        )
    extra = dict(kubernetes or {})

    def decorate(function: Any) -> Any:
        return _AllotmentTaskDecorator(
            function=function,
            operator_class=LocalDecoratedOperator,
            multiple_outputs=multiple_outputs if multiple_outputs is not None else attr.NOTHING,  # type: ignore[arg-type]
            kwargs=kwargs,
            decorator_name="task.allotment",
            kubernetes_kwargs=extra,
        )

    if python_callable is not None:
        if not callable(python_callable):
            raise TypeError("No positional arguments allowed while using @task.allotment, use named arguments instead")
        return decorate(python_callable)
    return decorate
