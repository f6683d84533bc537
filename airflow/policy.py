"""allotment's Airflow cluster policy: ``@resources`` on the callable of a plain Airflow task, and the
scheduler-side hooks that size a KubernetesExecutor worker pod for its run and try.

Registered through the ``airflow.policy`` entry point (``pyproject.toml``), so installing
``allotment[airflow]`` activates it wherever Airflow parses DAG files or builds worker pods: the
DAG processor, the scheduler, the worker that runs a task, ``dag.test()`` and ``DagBag``.
Without the entry point (a vendored copy), add one line to ``airflow_local_settings.py``::

    from allotment.airflow.policy import pod_mutation_hook, task_instance_mutation_hook, task_policy  # noqa: F401

* :func:`task_policy`, for every task whose callable carries an allotment spec, calls
  :func:`allotment.airflow.operators.apply`: a ``@task.kubernetes`` task becomes allotment's
  ``KubernetesDecoratedOperator`` (so ``@resources`` above or below ``@task.kubernetes`` gives
  the same pod), a plain task on the KubernetesExecutor gets ``executor_config["pod_override"]``,
  a mapped task gets the spec for every index. It also raises, as the DAG file's one-line
  import error, an error allotment found while the file was imported
  (:mod:`allotment.airflow.failures`). Under the Local or Celery executor a plain Python task runs
  its callable on the local backend (:func:`allotment.airflow.local_task.run_here`).
* :func:`task_instance_mutation_hook` gives a KubernetesExecutor task instance the
  ``pod_override`` of its run's ``dag_run.conf``, :func:`pod_mutation_hook` the memory of its
  try (:mod:`allotment.airflow.worker`).

Every other task, task instance and pod is left exactly as it is. This module stays light:
Airflow imports it at start-up.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.policies import hookimpl
from allotment.facade import defer_errors_while, spec_of

from .failures import importing_dag_file

__all__ = ["pod_mutation_hook", "task_instance_mutation_hook", "task_policy"]

# A bad @resources in a DAG file is reported by task_policy below, as the file's one-line import error.
defer_errors_while(importing_dag_file)


def _mark_task_instance_hook() -> None:
    """Tell Airflow that a ``task_instance_mutation_hook`` is registered. Airflow sets this flag only
    for one defined in ``airflow_local_settings.py``; with it left unset, the scheduler creates a
    run's task instances without calling the hooks that ``airflow.policy`` entry points register."""
    import airflow.settings

    hook = getattr(airflow.settings, "task_instance_mutation_hook", None)
    if hook is not None and getattr(hook, "is_noop", False):
        hook.is_noop = False


_STOCK_KPO_HINT = (
    "allotment: task %r: resources= on the provider's KubernetesPodOperator sizes no pod (the provider reads only "
    "container_resources); use allotment.airflow.KubernetesPodOperator, which takes resources= in allotment's or Airflow's form"
)


@hookimpl
def task_policy(task: Any) -> None:
    """Apply allotment to a task whose callable carries a spec or that allotment built; raise an
    error kept while the DAG file was imported; leave every other task alone."""
    if getattr(task, "_allotment_error", None) is not None:
        from .failures import raise_deferred

        raise_deferred(task)
    if getattr(task, "_allotment", None) is not None:
        return
    function = getattr(task, "python_callable", None)
    if function is None:
        function = (getattr(task, "partial_kwargs", None) or {}).get("python_callable")
    operator_class = getattr(task, "operator_class", None)
    ours = any(base.__name__ == "ResourcesMixin" for base in getattr(operator_class, "__mro__", ()))
    if not ours and (function is None or spec_of(function) is None):
        _hint_stock_operator(task)
        return
    from .config import reading_for
    from .local_task import run_here
    from .operators import apply

    with reading_for(getattr(task, "dag", None)):
        apply(task)
    run_here(task)


def _hint_stock_operator(task: Any) -> None:
    """The provider's KubernetesPodOperator ignores BaseOperator's ``resources``: say so, where it was given."""
    if getattr(task, "resources", None) is None or getattr(task, "container_resources", None) is not None:
        return
    if any(
        cls.__module__ == "airflow.providers.cncf.kubernetes.operators.pod" and cls.__name__ == "KubernetesPodOperator"
        for cls in type(task).__mro__
    ):
        # Got now, not at import: Airflow imports this module before it configures logging.
        logging.getLogger(__name__).warning(_STOCK_KPO_HINT, getattr(task, "task_id", "?"))


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    """Size a KubernetesExecutor worker pod for its run (:func:`allotment.airflow.worker.mutate_task_instance`)."""
    config = getattr(task_instance, "executor_config", None)
    if dag_run is None or not isinstance(config, dict) or "allotment" not in config:
        return
    from .worker import mutate_task_instance

    mutate_task_instance(task_instance, dag_run)


_mark_task_instance_hook()


@hookimpl
def pod_mutation_hook(pod: Any) -> None:
    """Give a KubernetesExecutor worker pod the memory of its try (:func:`allotment.airflow.worker.mutate_worker_pod`)."""
    annotations = getattr(getattr(pod, "metadata", None), "annotations", None)
    if not annotations or "allotment/run" not in annotations:
        return
    from .worker import mutate_worker_pod

    mutate_worker_pod(pod)
