"""allotment: one backend-agnostic compute-resource spec for workflow steps.

``@resources(cpu=4, memory="16Gi", gpu=1, shared_memory=8192)`` on a step; the backend
(Kubernetes through Airflow or Argo, AWS Batch, local) is chosen at deploy time. See
:mod:`allotment.fields` for units, :mod:`allotment.resolve` for how sources combine.

Importing this package loads pydantic and the standard library only.
"""

from __future__ import annotations

from .decorators import batch, kubernetes, resources, spec_of
from .errors import AllotmentError
from .model import Resources
from .resolve import Resolved, resolve

__all__ = ["AllotmentError", "Resolved", "Resources", "batch", "kubernetes", "resolve", "resources", "spec_of"]
__version__ = "0.1.0"
