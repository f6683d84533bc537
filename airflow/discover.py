"""Finding allotment steps in DAG files, for ``allotment explain`` and ``render`` (the ``airflow`` finder
of :data:`allotment.faces.STEP_FINDERS`).

Every task of every DAG a module defines that carries allotment resources (a spec on its
callable, or an allotment operator) is a step named by its ``task_id``, with the backend its
operator implies, its ``default_args["allotment"]`` as defaults and its ``resources=`` as an
extra source. Its resolver is the task's own (:func:`allotment.airflow.resolution.resolve_task`:
its pod settings and pod template, the Airflow config ``[allotment]``, a previewed run's conf),
so ``explain`` shows exactly what the engine and ``render`` use. A mapped task is one step.

A DAG made by calling a ``@dag`` function at module level is no module global; Airflow finds
it by auto-registration while it imports the file. So the finder runs the module's code once
more, in the module's own namespace, with auto-registration on (as Airflow's importer does),
and collects those DAGs with the module's global ones. Tasks get allotment's cluster policy
(:func:`allotment.airflow.operators.apply`), as under Airflow.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from allotment.facade import Resolved, Settings, Step, using_settings

from .config import read_config_anew

__all__ = ["dags_of", "find_steps"]


def _uses_airflow(module: ModuleType) -> bool:
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and (name == "airflow" or name.startswith(("airflow.", "allotment.airflow"))):
            return True
    return False


def dags_of(module: ModuleType, file: Path) -> list[Any]:
    """The DAGs ``module`` (loaded from ``file``) defines, including auto-registered ones, by ``dag_id``."""
    from airflow.sdk import DAG
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    code = compile(Path(file).read_bytes(), str(file), "exec")
    before = set(DagContext.autoregistered_dags)
    previous = DagContext.current_autoregister_module_name
    folder = str(Path(file).resolve().parent)
    sys.path.insert(0, folder)
    DagContext.current_autoregister_module_name = module.__name__
    read_config_anew()  # the same module object as an earlier run's, maybe under other settings
    try:
        exec(code, vars(module))
    finally:
        DagContext.current_autoregister_module_name = previous
        read_config_anew()
        if folder in sys.path:
            sys.path.remove(folder)
        ours = {(dag, mod) for dag, mod in DagContext.autoregistered_dags - before if mod is module}
        DagContext.autoregistered_dags -= ours
    found = {id(dag): dag for dag, _ in ours}
    found.update({id(v): v for v in vars(module).values() if isinstance(v, DAG)})
    for dag in found.values():
        dag.fileloc = str(Path(file).resolve())
    return sorted(found.values(), key=lambda dag: dag.dag_id)


def find_steps(module: ModuleType, file: Path) -> list[Step]:
    """The steps of every DAG in ``module``: its tasks that carry allotment resources."""
    if not _uses_airflow(module):
        return []
    from allotment.facade import AllotmentError

    from .config import with_airflow_config
    from .operators import apply
    from .tasks import task_spec

    steps: list[Step] = []
    for dag in dags_of(module, file):
        for task in dag.tasks:
            try:
                apply(task)
            except AllotmentError as e:  # named as an error while the file loads is (allotment.discover.load_module)
                raise AllotmentError(f"{file}: {e}") from None
            spec = task_spec(task)
            if spec is None:
                continue
            steps.append(
                Step(
                    spec.task_id,
                    spec.spec,
                    task,
                    file,
                    spec.backend,
                    spec.defaults,
                    spec.extra,
                    resolver=functools.partial(_resolve, task),
                    configure=with_airflow_config,
                )
            )
    return steps


def _resolve(task: Any, settings: Settings, *, conf: Any = None) -> Resolved:
    """The task resolved as the engine resolves it (the Airflow config completing ``settings``),
    for a run with ``conf`` when given (``allotment explain --conf``)."""
    from .config import with_airflow_config
    from .resolution import resolve_task

    settings = with_airflow_config(settings)
    with using_settings(settings):
        return resolve_task(task, settings=settings, conf=conf)
