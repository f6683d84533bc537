"""One task, Kubernetes or AWS Batch, chosen by the deployment: :func:`portable_task`.

::

    from allotment.airflow import portable_task

    train = portable_task(
        task_id="train",
        resources={"cpu": 8, "memory": "32Gi", "gpu": 1, "shared_memory": "8Gi"},
        retry_memory_factor=1.5,
        kubernetes={"image": "my/trainer:1.2", "cmds": ["python", "-m", "train"], "namespace": "ml"},
        batch={"job_definition": "trainer", "job_queue": "gpu-queue"},
    )

When the DAG file is parsed, :func:`portable_task` builds allotment's
:class:`~allotment.airflow.operators.KubernetesPodOperator` or
:class:`~allotment.airflow.batch.BatchOperator`, whichever backend the deployment names:

1. a backend decorator on ``step=`` (``@kubernetes`` / ``@batch``) pins the task (docs/design.md §2);
2. else the deployment's backend: ``ALLOTMENT_BACKEND`` / ``[allotment] backend``, or the one
   backend that the deployment's ``with`` names (``ALLOTMENT_WITH=batch:memory=64Gi`` or
   ``[allotment] with``), the same :class:`~allotment.settings.Settings` every task resolves
   with;
3. else (no backend named, or ``local``, which has no Airflow operator) ``fallback``,
   ``"kubernetes"`` unless given.

So moving a DAG between a Kubernetes deployment and a Batch deployment changes no line of the
DAG file: the deployment's environment (or ``airflow.cfg``) decides, and its ``with`` floors
apply to the task on that backend. The spec (``resources=``, ``retry_memory_factor=``,
``step=``, ``default_args["allotment"]``, ``dag_run.conf``, the policy) is the same on both;
``kubernetes=`` holds the arguments only the pod operator takes (image, cmds, namespace,
volumes...), ``batch=`` those only the BatchOperator takes (job_definition, job_queue,
platform, container_overrides...). Any other keyword (``retries``, ``pool``, ...) goes to
both. A keyword given twice is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allotment.facade import AllotmentError, spec_of

from .config import active_settings
from .failures import clean, defer_or_raise, importing_dag_file

__all__ = ["BACKEND_OPERATORS", "portable_backend", "portable_task"]

BACKEND_OPERATORS = {"kubernetes": "KubernetesPodOperator", "batch": "BatchOperator"}
"""Backend -> the allotment operator :func:`portable_task` builds for it."""


def portable_backend(step: Any = None, *, fallback: str = "kubernetes") -> tuple[str, str]:
    """The backend a portable task runs on, and why (see the module docs)."""
    if fallback not in BACKEND_OPERATORS:
        raise AllotmentError(
            "is no backend a portable task can run on",
            field="fallback",
            value=fallback,
            accepted=f"use one of {', '.join(BACKEND_OPERATORS)}",
        )
    spec = spec_of(step) if step is not None else None
    if spec is not None and spec.backend is not None:
        if spec.backend not in BACKEND_OPERATORS:
            raise AllotmentError(f"is pinned to {spec.backend}, which has no Airflow operator", step=spec.name)
        return spec.backend, f"@{spec.backend} on step="
    settings = active_settings()
    origin = dict(settings.origins).get("backend", "default")
    if settings.backend in BACKEND_OPERATORS:
        return settings.backend, f"the deployment's backend ({'a with spec naming it' if origin == 'with' else origin})"
    return fallback, f"fallback= (the deployment names {settings.backend!r}, which has no Airflow operator)"


def portable_task(
    *,
    task_id: str,
    kubernetes: Mapping[str, Any] | None = None,
    batch: Mapping[str, Any] | None = None,
    fallback: str = "kubernetes",
    **common: Any,
) -> Any:
    """Allotment's KubernetesPodOperator or BatchOperator for this deployment (module docs).

    ``common``: arguments for either operator (``resources``, ``retry_memory_factor``, ``step``,
    ``retries``, ...); ``kubernetes`` / ``batch``: arguments for that operator only.

    An error in these arguments found while Airflow imports the DAG file is kept on a stand-in
    task and raised by allotment's cluster policy (:mod:`allotment.airflow.failures`), so the
    file's import error is one line, as for the operators' own errors."""
    try:
        backend, own = _choose(task_id, common, kubernetes, batch, fallback)
    except AllotmentError as found:
        error = found.with_context(step=task_id, source="portable_task" if found.field is not None else None)
        if not importing_dag_file():
            raise clean(error) from None
        from airflow.sdk import BaseOperator

        stand_in = BaseOperator(task_id=task_id)
        defer_or_raise(stand_in, error)
        return stand_in
    if backend == "batch":
        from .batch import BatchOperator

        return BatchOperator(task_id=task_id, **common, **own)
    from .operators import KubernetesPodOperator

    return KubernetesPodOperator(task_id=task_id, **common, **own)


def _choose(
    task_id: str, common: Mapping[str, Any], kubernetes: Mapping[str, Any] | None, batch: Mapping[str, Any] | None, fallback: str
) -> tuple[str, dict[str, Any]]:
    """The backend of a portable task and the arguments only its operator takes."""
    backend, why = portable_backend(common.get("step"), fallback=fallback)
    own = dict((kubernetes if backend == "kubernetes" else batch) or {})
    if not own and backend == "batch" and batch is None:
        raise AllotmentError(
            f"runs on AWS Batch here ({why}) but portable_task got no batch= arguments",
            step=task_id,
            accepted="pass batch={'job_definition': ..., 'job_queue': ...}",
        )
    twice = sorted(set(own) & (set(common) | {"task_id"}))
    if twice:
        raise AllotmentError(
            f"portable_task got {twice[0]!r} both in {backend}= and as a common argument",
            step=task_id,
            accepted="give each argument once",
        )
    return backend, own
