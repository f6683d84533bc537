"""allotment's Airflow cluster policy: ``@resources`` on the callable of a plain Airflow task.

Registered through the ``airflow.policy`` entry point (``pyproject.toml``), so installing
``allotment[airflow]`` activates it wherever Airflow parses DAG files: the DAG processor, the
worker that runs a task, ``dag.test()`` and ``DagBag``. Without the entry point (a vendored
copy), add one line to ``airflow_local_settings.py``::

    from allotment.airflow.policy import task_policy  # noqa: F401

For every task whose callable carries an allotment spec, :func:`task_policy` calls
:func:`allotment.airflow.operators.apply`: a ``@task.kubernetes`` task becomes allotment's
``KubernetesDecoratedOperator`` (so ``@resources`` above or below ``@task.kubernetes`` gives
the same pod), and a plain task on the KubernetesExecutor gets ``executor_config["pod_override"]``;
under the Local or Celery executor a plain Python task runs its callable on the local backend
(:func:`allotment.airflow.local_task.run_here`). Every other task is left exactly as it is.
This module stays light: Airflow imports it at start-up.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl
from allotment.facade import spec_of

__all__ = ["task_policy"]


@hookimpl
def task_policy(task: Any) -> None:
    """Apply allotment to a task whose callable carries a spec; leave every other task alone."""
    if getattr(task, "_allotment", None) is not None:
        return
    function = getattr(task, "python_callable", None)
    if function is None:
        function = (getattr(task, "partial_kwargs", None) or {}).get("python_callable")
    if function is None or spec_of(function) is None:
        return
    from .local_task import run_here
    from .operators import apply

    apply(task)
    run_here(task)
