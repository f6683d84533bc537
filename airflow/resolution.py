"""Resolving an Airflow task's spec: as parsed, or for one run and try (its ``dag_run.conf`` and the
OOM kills of its earlier tries), with what the task launches checked and the outcome logged.

This is the one path every caller takes: the operator when the DAG file is parsed and when it
runs, the scheduler's hooks for a worker on the KubernetesExecutor, ``render --target airflow``
and ``explain`` (through the step finder's resolver), so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from allotment.facade import AllotmentError, Resolved, Resources, Settings, Source

from .config import active_settings
from .failures import fail
from .pods import pod_settings
from .runtime import describe, resolve_for_run
from .tasks import JOB, POD, WORKER, TaskSpec, task_spec
from .tries import Earlier, earlier_tries, try_number_of

__all__ = ["MAPPED_NOTE", "earlier_of", "resolve_at_execute", "resolve_spec", "resolve_task", "task_sources"]

T = TypeVar("T")

MAPPED_NOTE = "mapped task (.expand()): every map index gets this spec; how many indexes there are is known only when the DAG runs"


def task_sources(task: Any, spec: TaskSpec, *, running: bool) -> tuple[tuple[tuple[Resources, Source], ...], tuple[str, ...]]:
    """The step sources a task's own pod settings give now, and notes about them: a pod task's
    ``container_resources``, sized ``/dev/shm`` volume and pod template (:mod:`allotment.airflow.pods`),
    a worker's KubernetesExecutor pod template (:func:`allotment.airflow.executors.worker_template`)."""
    if spec.target == POD:
        found = pod_settings(task, spec.task_id, running=running, templated=spec.templated)
        return found.sources, found.notes
    if spec.target == WORKER:
        from .executors import worker_template

        template = worker_template(spec.task_id, spec.user_executor_config)
        return template.sources, template.notes
    return (), ()


def resolve_spec(
    spec: TaskSpec,
    settings: Settings,
    *,
    conf: Any = None,
    try_number: int = 1,
    oom_kills: int = 0,
    task_ids: Collection[str] | None = None,
    more: Sequence[tuple[Resources, Source]] = (),
    notes: Sequence[str] = (),
) -> Resolved:
    """``spec`` resolved under ``settings`` for a run's ``conf`` and try ``try_number`` after
    ``oom_kills`` earlier OOM kills, with the sources ``more`` read from the task, and ``notes``
    added (a mapped task says so)."""
    try:
        resolved = resolve_for_run(spec, settings, conf=conf, try_number=try_number, oom_kills=oom_kills, task_ids=task_ids, more=more)
    except AllotmentError as e:
        raise e.with_context(step=spec.task_id) from e
    extra = [*notes, *spec.notes, *([MAPPED_NOTE] if spec.mapped else [])]
    return dataclasses.replace(resolved, notes=(*extra, *resolved.notes)) if extra else resolved


def resolve_task(
    task: Any,
    context: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    *,
    conf: Any = None,
) -> Resolved:
    """A task's spec, for one run and try when ``context`` is given (its ``dag_run.conf``, and
    the earlier tries of its task instance that ended in an OOM kill, :func:`earlier_of`; the
    task's template fields are rendered then), else as parsed, or as a run with ``conf`` would
    get it (``allotment explain --conf``)."""
    from .mapped import probe_of

    task = probe_of(task) or task
    spec = task_spec(task)
    if spec is None:
        raise AllotmentError(f"task {task.task_id!r} carries no allotment spec")
    settings = settings or active_settings()
    dag = (context or {}).get("dag") or getattr(task, "dag", None)
    task_ids = set(dag.task_ids) if dag is not None else None
    try_number, oom_kills = 1, 0
    more, notes = task_sources(task, spec, running=bool(context))
    if context:
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) if dag_run is not None else None
        try_number = try_number_of(context)
        earlier = earlier_of(task, spec, context)
        oom_kills = earlier.oom_kills
        notes = (*notes, *earlier.notes())
    return resolve_spec(spec, settings, conf=conf, try_number=try_number, oom_kills=oom_kills, task_ids=task_ids, more=more, notes=notes)


def earlier_of(task: Any, spec: TaskSpec, context: Mapping[str, Any]) -> Earlier:
    """What this try of ``task`` knows of the earlier tries of its task instance (:mod:`allotment.airflow.tries`):
    a pod task asks the Kubernetes API about an earlier try's pod whose end is not recorded, a
    BatchOperator ``describe_jobs`` about an earlier try's job; a KubernetesExecutor worker reads
    what the scheduler recorded when it built the worker pod."""
    learn = None
    if spec.target == POD:
        from .pod_tries import learn_from_pods

        learn = learn_from_pods(task, context)
    elif spec.target == JOB:
        from .batch_tries import learn_from_jobs

        learn = learn_from_jobs(task)
    return earlier_tries(task, context, learn)


def resolve_at_execute(task: Any, context: Any, check: Callable[[Resolved], T], *, before: str) -> tuple[Resolved, T]:
    """Resolve a task's spec for this run and try, and ``check`` it (compile and merge what the task
    launches), then log what it asks for and why. A bad conf, a policy violation or a clash fails
    the task for good (``AirflowFailException``, no retry), ``before`` anything is created."""
    try:
        resolved = resolve_task(task, context)
        checked = check(resolved)
    except AllotmentError as e:
        fail(task, e, before=before)
    for line in describe(resolved):
        task.log.info("%s", line)
    return resolved, checked
