"""allotment: one backend-agnostic compute-resource spec for workflow steps.

``@resources(cpu=4, memory="16Gi", gpu=1, shared_memory=8192)`` on a step; the backend
(Kubernetes through Airflow or Argo, AWS Batch, local) is chosen at deploy time. See
:mod:`allotment.fields` for units, :mod:`allotment.resolve` for how sources combine.

Importing this package loads the standard library only; pydantic (the spec model) loads
with the first decorated step or the first use of :class:`Resources`, and no engine (Airflow,
Hera, boto3, PyYAML) ever loads with it.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .decorators import batch, kubernetes, resources, spec_of
from .errors import AllotmentError

if TYPE_CHECKING:
    from .model import Resources
    from .resolve import Resolved

# Names loaded on first use. The resolution function is `allotment.resolve.resolve`: a package
# attribute `resolve` would be replaced by the submodule `allotment.resolve` once it is imported.
_LAZY = {"Resources": "model", "Resolved": "resolve"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'allotment' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


_DECORATORS = frozenset({"batch", "kubernetes"})


class _Package(types.ModuleType):
    """``allotment`` itself. The import system binds a loaded submodule on its parent package
    (``setattr(allotment, "kubernetes", <module allotment.kubernetes>)``); that would replace
    the ``@kubernetes`` and ``@batch`` decorators with the backend packages of the same names.
    So those two attributes keep the decorators: import the packages' contents with
    ``from allotment.kubernetes import fit`` (which reads ``sys.modules``), never as
    ``import allotment.kubernetes as k`` (which reads the attribute)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _DECORATORS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["AllotmentError", "Resolved", "Resources", "batch", "kubernetes", "resources", "spec_of"]
__version__ = "0.1.0"
