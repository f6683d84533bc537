"""The child side of an Airflow task on the local backend: unpickle the task's callable and call it.

The local executor (``allotment.local``) sends this module's :func:`call` to the step's child process
by reference; its argument is the task's callable and arguments pickled by value with ``dill``
(:func:`dumps`), because a DAG file is imported under a module name no other process can import
(Airflow's ``unusual_prefix_<hash>_<file>``) and its tasks are often local functions of a ``@dag``
function. This module imports neither Airflow nor allotment's core: the child loads only ``dill``
and what the callable itself needs.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["call", "dumps"]


def _importable(module: str) -> bool:
    """True when a fresh interpreter with this ``sys.path`` can import ``module`` by its name."""
    top = module.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        return importlib.machinery.PathFinder.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _by_value(function: Callable[..., Any]) -> Iterator[None]:
    """While pickling: hide the callable's module from ``sys.modules`` when no other process could
    import it, so that ``dill`` pickles the callable and the module-level names it uses by value."""
    name = getattr(function, "__module__", None)
    hidden = None
    if isinstance(name, str) and name != "__main__" and name in sys.modules and not _importable(name):
        hidden = sys.modules.pop(name)
    try:
        yield
    finally:
        if hidden is not None:
            sys.modules[name] = hidden  # type: ignore[index]


def dumps(function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """``(function, args, kwargs)`` pickled by value for :func:`call` (``dill``, ``recurse=True``:
    only the globals the function uses travel with it)."""
    import dill

    with _by_value(function):
        data: bytes = dill.dumps((function, tuple(args), dict(kwargs)), recurse=True)
    return data


def call(data: bytes) -> Any:
    """In the step's child: call the callable that :func:`dumps` pickled, with its arguments."""
    import dill

    function, args, kwargs = dill.loads(data)
    return function(*args, **kwargs)
