"""Resolving an Airflow task's spec: as parsed, or for one run and try (its ``dag_run.conf`` and try
number), with what the task launches checked and the outcome logged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException
from allotment.facade import AllotmentError, Resolved, Settings

from .config import active_settings
from .runtime import describe, resolve_for_run
from .tasks import task_spec

__all__ = ["resolve_at_execute", "resolve_task"]

T = TypeVar("T")


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
