"""``allotment.kubernetes`` (the package; ``allotment.kubernetes`` the *attribute* stays the
``@kubernetes`` decorator, so import from here with ``from allotment.kubernetes import ...``):
a resolved spec as plain Kubernetes data, for every face that runs steps in pods.

- :func:`compile_pod`: the container's resources and the pod's shared-memory volume, node selector and
  tolerations (:class:`PodParts`);
- :func:`fit`: the one operation that fits a spec into the pod a user already configured
  (defaults yield, conflicts are errors), returning a :class:`PodFit`;
- :func:`read_pod`: what a user's own pod settings (a pod template, an operator's own container
  resources) already ask for, in spec fields, so a face can treat them as step sources (:class:`PodRead`);
- :func:`limit_range`: a policy's caps as a LimitRange (``render --target limitrange``);
- :func:`kubernetes_effects`: what each field becomes, in words (``allotment explain``).

Keys come from :mod:`allotment.targets`. No Kubernetes client is imported.
"""

from __future__ import annotations

from .compile import compile_pod, step_gpu_key
from .explain import kubernetes_effects
from .fit import DEFAULT_KINDS, PodFit, fit
from .limitrange import limit_range
from .merge import merge, same_quantity
from .parts import ContainerResources, PodParts
from .read import PodRead, is_templated, read_pod

__all__ = [
    "DEFAULT_KINDS",
    "ContainerResources",
    "PodFit",
    "PodParts",
    "PodRead",
    "compile_pod",
    "fit",
    "is_templated",
    "kubernetes_effects",
    "limit_range",
    "merge",
    "read_pod",
    "same_quantity",
    "step_gpu_key",
]
