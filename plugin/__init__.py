"""allotment: one backend-agnostic compute-resource spec for workflow steps.

``@resources(cpu=4, memory="16Gi", gpu=1, shared_memory=8192)`` on a step; the backend
(Kubernetes through Airflow or Argo, AWS Batch, local) is chosen at deploy time. See
:mod:`allotment.fields` for units, :mod:`allotment.resolve` for how sources combine.

Importing this package loads the standard library only; pydantic (the spec model) loads
with the first decorated step or the first use of :class:`Resources`, and no engine (Airflow,
Hera, boto3, PyYAML) ever loads with it.
"""

from __future__ import annotations

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


__all__ = ["AllotmentError", "Resolved", "Resources", "batch", "kubernetes", "resources", "spec_of"]
__version__ = "0.1.0"
