"""How allotment's errors reach Airflow users: one clear message, never a chained traceback.

* **While Airflow imports a DAG file** (the DAG processor, a worker, ``DagBag``, ``dag.test()``),
  a bad spec found while a task is built (a bad ``@resources``, ``resources=``, policy
  violation, clash with the operator's own settings) is kept on the task and raised by
  allotment's cluster policy (:mod:`allotment.airflow.policy`) right after the import. Airflow
  then records the file's import error as one line, ``AirflowClusterPolicyError: step 'train':
  memory='16gb' from @resources is not a quantity; ...`` (as for any cluster-policy error),
  instead of a traceback through allotment's frames. Outside such an import (a script or a
  test that builds an operator) the error is raised at once, without its chain.
* **When a task runs**, a bad run conf, a policy violation or a clash fails the task for good
  with :class:`~airflow.sdk.exceptions.AirflowFailException` whose message is the error's, and
  no chained exceptions behind it.

``ALLOTMENT_DEBUG=1`` keeps the whole chain everywhere (and raises at once, also during a DAG
file import), for bug reports.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

from allotment.facade import DEBUG_ENV, AllotmentError, debugging, show_whole_chain

__all__ = ["DEBUG_ENV", "ERROR_ATTR", "clean", "debug", "defer_or_raise", "deferred_error", "fail", "importing_dag_file", "raise_deferred"]

ERROR_ATTR: Final = "_allotment_error"
"""The task attribute holding an error found while the task was built during a DAG file import."""


def debug() -> bool:
    """True when ``ALLOTMENT_DEBUG`` asks for the full chain of every error (the core's switch)."""
    return debugging()


def clean(error: AllotmentError) -> AllotmentError:
    """``error`` without its chain of causes and its traceback (under ``ALLOTMENT_DEBUG``, the same
    error with its whole chain shown, :func:`allotment.facade.show_whole_chain`)."""
    if debug():
        show_whole_chain(error)
        return error
    fresh = error.with_context()
    fresh.__cause__ = None
    fresh.__suppress_context__ = True
    return fresh


def importing_dag_file() -> bool:
    """True while Airflow (or allotment's step finder) imports a DAG file: its importer names the
    module it auto-registers DAGs for then. Never true under ``ALLOTMENT_DEBUG``."""
    if debug():
        return False
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    return DagContext.current_autoregister_module_name is not None


def defer_or_raise(task: Any, error: AllotmentError) -> None:
    """During a DAG file import, keep ``error`` on ``task`` for the cluster policy to raise; else raise it now, clean."""
    if importing_dag_file():
        object.__setattr__(task, ERROR_ATTR, clean(error))
        return
    if debug():
        raise error
    raise clean(error) from None


def deferred_error(task: Any) -> AllotmentError | None:
    """The error kept on ``task`` while it was built, if any."""
    found = getattr(task, ERROR_ATTR, None)
    return found if isinstance(found, AllotmentError) else None


def raise_deferred(task: Any) -> None:
    """Raise the error kept on ``task``, if any (the cluster policy calls this)."""
    error = deferred_error(task)
    if error is not None:
        raise error.with_traceback(None) from None


def fail(task: Any, error: AllotmentError, *, before: str) -> NoReturn:
    """Fail the running task for good (no retry): log the reason and raise ``AirflowFailException``."""
    from airflow.sdk.exceptions import AirflowFailException

    task.log.error("allotment: the task fails before %s: %s", before, error)
    failure = AirflowFailException(f"allotment: {error}")
    if debug():
        raise failure from error
    raise failure from None
