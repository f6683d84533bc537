"""``allotment render --target limitrange``: a policy's caps as a Kubernetes LimitRange.

Argo substitutes submit-time parameters on the cluster, after allotment has checked the
compiled values, so ``argo submit -p train-memory=512Gi`` never meets the policy file. The
namespace's LimitRange is what holds the caps there: the API server rejects a pod whose
container asks for more than ``max``. Apply it to every namespace that runs allotment's
workflows::

    allotment render policy.yaml --target limitrange --namespace ml | kubectl apply -f -

The policy file is ``--policy`` (or ``ALLOTMENT_POLICY``); without one, each PATH given is
read as a policy file (one LimitRange each). One ``type: Container`` limit, ``max`` with:

============== =====================================================================
policy cap     LimitRange ``max`` key
============== =====================================================================
cpu            ``cpu``
memory         ``memory``
disk           ``ephemeral-storage``
gpu            every GPU vendor's key (``nvidia.com/gpu``, ``amd.com/gpu``, ...) and
               ``nvidia.com/mig-<profile>`` for MIG profiles the policy's ``gpu_types`` list
============== =====================================================================

Not expressible in a LimitRange: ``shared_memory`` (an ``emptyDir`` size; it counts against
the memory limit, which is capped), ``gpu_types`` (node labels), and ``runtime.caps`` (the
cluster cannot tell a submit parameter from a compiled value). No ResourceQuota is rendered:
the policy has no namespace totals. This module is plain data: no Kubernetes client, no Hera.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from allotment.errors import AllotmentError
from allotment.fields import GPU_VENDORS, MIG_PROFILE
from allotment.k8s import gpu_key
from allotment.policy import Policy, load_policy
from allotment.quantity import format_cpu, format_mib
from allotment.settings import Settings

__all__ = ["NAME", "limit_range", "render"]

NAME: Final = "allotment-policy"
"""The LimitRange's name (fixed, so applying it again updates it)."""


def limit_range(policy: Policy, namespace: str | None = None, name: str = NAME) -> dict[str, Any]:
    """The LimitRange for ``policy``'s caps (a plain manifest)."""
    caps = policy.caps
    maximum: dict[str, str] = {}
    if caps.cpu is not None:
        maximum["cpu"] = format_cpu(caps.cpu)
    if caps.memory is not None:
        maximum["memory"] = format_mib(caps.memory)
    if caps.disk is not None:
        maximum["ephemeral-storage"] = format_mib(caps.disk)
    if caps.gpu is not None:
        keys = {gpu_key(vendor, None) for vendor in GPU_VENDORS}
        keys |= {gpu_key("nvidia", t) for t in policy.gpu_types or () if MIG_PROFILE.fullmatch(t)}
        for key in sorted(keys):
            maximum[key] = str(caps.gpu)
    if not maximum:
        raise AllotmentError(
            "has no caps a LimitRange can hold",
            source=f"policy {policy.origin}",
            accepted="set caps for cpu, memory, disk or gpu",
        )
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": "allotment"}
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": metadata,
        "spec": {"limits": [{"type": "Container", "max": maximum}]},
    }


def render(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The LimitRange of ``--policy``, or of each policy file in ``paths`` when none is given."""
    namespace = (options or {}).get("namespace")
    if settings.policy is not None:
        return [limit_range(settings.policy, namespace)]
    policies = [load_policy(p) for p in paths if Path(p).suffix in (".yaml", ".yml", ".toml", ".json")]
    if not policies:
        raise AllotmentError(
            "needs a policy file",
            field="target",
            value="limitrange",
            accepted="give --policy FILE (or env ALLOTMENT_POLICY), or name the policy file as PATH",
        )
    if len(policies) > 1 and len({p.origin for p in policies}) > 1:
        return [limit_range(p, namespace, f"{NAME}-{Path(p.origin).stem}") for p in policies]
    return [limit_range(p, namespace) for p in policies]
