"""``allotment render --target limitrange``: a policy's caps as a Kubernetes LimitRange.

Argo substitutes submit-time parameters on the cluster, after allotment has checked the
compiled values, so ``argo submit -p train-memory=512Gi`` never meets the policy file. The
namespace's LimitRange is what holds the caps there: the API server rejects a pod whose
container asks for more than ``max``. Apply it to every namespace that runs allotment's
workflows::

    allotment render policy.yaml --target limitrange --namespace ml | kubectl apply -f -

The policy file is ``--policy`` (or ``ALLOTMENT_POLICY``); without one, each PATH given is
read as a policy file (one LimitRange each). One ``type: Container`` item with ``max``,
``default`` (the limit a container without one gets) and ``defaultRequest`` (the request a
container without one gets):

=================== =================================== ============================ ==================
policy cap          key                                 ``default`` (limit)          ``defaultRequest``
=================== =================================== ============================ ==================
cpu                 ``cpu``                             the cap                      1 (allotment's
                                                                                     seed default), or
                                                                                     the cap if lower
memory              ``memory``                          the cap                      4096Mi (the seed
                                                                                     default), or the
                                                                                     cap if lower
disk                the disk key                        the cap                      0
gpu                 every GPU vendor's key              0                            0
                    (:data:`allotment.targets.GPU_VENDOR_KEYS`,
                    ...) and the key of each MIG profile
                    for MIG profiles in ``gpu_types``
=================== =================================== ============================ ==================

Why the defaults are explicit: for a ``Container`` item the API server defaults a missing
``default`` to ``max`` and a missing ``defaultRequest`` to ``default`` (``SetDefaults_LimitRangeItem``
in ``pkg/apis/core/v1/defaults.go``), and the LimitRanger admission plugin fills every
container's missing limits and requests from them. With ``max`` alone, every container that
does not say otherwise (Argo's own ``init`` and ``wait`` containers included) would request the
caps: 8 NVIDIA GPUs, 32 cores, 256Gi, 500Gi of node disk, and nothing would schedule.
So a container without resources requests what allotment's seed defaults give a step (1 core,
4096 MiB), no GPU and no reserved disk (as without a LimitRange: its disk request is 0, so it
reserves none and is evicted past the cap), and may burst to the cpu and memory caps. The
memory limit defaults to the cap rather than to the request, so that the namespace's other
workloads that request memory without a limit keep being admitted.

What the defaults mean for containers that set only some values (allotment's templates set
requests and, for memory and GPUs, equal limits, so these only concern other containers):

- a cpu request without a cpu limit gets the cpu cap as its limit (allotment sets a cpu limit
  only with ``qos="guaranteed"``);
- a memory request without a memory limit gets the memory cap as its limit;
- Argo's ``init`` and ``wait`` containers get 1 core and 4096Mi unless the workflow
  controller's ``executor.resources`` set theirs; set them there;
- every container gets ``0`` for every capped GPU key; a request of 0 for an extended resource
  is skipped by the scheduler and the device plugins.

Not capped here: a GPU given by an explicit extended-resource key (``gpu_vendor=
"example.com/gpu"``), MIG profiles not listed in the policy's ``gpu_types`` (list every MIG
profile your clusters use to cap it), and a container that sets a limit of ``0`` (Kubernetes
reads it as no limit, and it passes ``max``). Not expressible in a LimitRange:
``shared_memory`` (an ``emptyDir`` size; it counts against the memory limit, which is capped),
``gpu_types`` (node labels), and ``runtime.caps`` (the cluster cannot tell a submit parameter
from a compiled value). No ResourceQuota is rendered: the policy has no namespace totals.
This module is plain data: no Kubernetes client, no Hera (it compiles the policy, not a step, so it lives
in the core's Kubernetes package, and every face and the CLI share it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..errors import AllotmentError
from ..policy import Policy, load_policy
from ..quantity import format_cpu, format_mib
from ..resolve import SEED_DEFAULTS
from ..settings import Settings
from ..targets import GPU_VENDOR_KEYS, MIG_PROFILE, TARGETS, gpu_key

__all__ = ["EXECUTOR_CONFIG", "NAME", "limit_range", "render", "side_effects"]

NAME: Final = "allotment-policy"
"""The LimitRange's name (fixed, so applying it again updates it)."""


def limit_range(policy: Policy, namespace: str | None = None, name: str = NAME) -> dict[str, Any]:
    """The LimitRange for ``policy``'s caps (a plain manifest): ``max`` holds the caps, and
    ``default`` / ``defaultRequest`` are explicit so that the API server does not default them
    to the caps (see the module's documentation)."""
    caps = policy.caps
    maximum: dict[str, str] = {}
    default: dict[str, str] = {}
    default_request: dict[str, str] = {}
    cpu, memory, disk = (str(TARGETS[f].kubernetes) for f in ("cpu", "memory", "disk"))
    if caps.cpu is not None:
        maximum[cpu] = default[cpu] = format_cpu(caps.cpu)
        default_request[cpu] = format_cpu(min(caps.cpu, SEED_DEFAULTS.cpu or caps.cpu))
    if caps.memory is not None:
        maximum[memory] = format_mib(caps.memory)
        default[memory] = format_mib(caps.memory)
        default_request[memory] = format_mib(min(caps.memory, SEED_DEFAULTS.memory or caps.memory))
    if caps.disk is not None:
        maximum[disk] = default[disk] = format_mib(caps.disk)
        default_request[disk] = "0"
    if caps.gpu is not None:
        keys = {gpu_key(vendor, None) for vendor in GPU_VENDOR_KEYS}
        keys |= {gpu_key("nvidia", t) for t in policy.gpu_types or () if MIG_PROFILE.fullmatch(t)}
        for key in sorted(keys):
            maximum[key] = str(caps.gpu)
            default[key] = default_request[key] = "0"  # extended resources: default must equal defaultRequest
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
        "spec": {"limits": [{"type": "Container", "max": maximum, "default": default, "defaultRequest": default_request}]},
    }


EXECUTOR_CONFIG: Final = """\
    # ConfigMap workflow-controller-configmap (Argo's controller), key executor:
    executor: |
      resources:
        requests: {cpu: 100m, memory: 64Mi}
        limits: {cpu: 500m, memory: 512Mi}"""
"""The workflow controller's setting that sizes Argo's ``init`` and ``wait`` containers (the
controller gives them ``executor.resources``, ``newExecContainer`` in Argo's ``workflowpod.go``),
with the sizes of Argo's own example configuration."""


def _listed(values: Mapping[str, str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in values.items() if value != "0") or "none"


def side_effects(document: Mapping[str, Any]) -> str:
    """What applying the LimitRange ``document`` does to containers that set no resources of their
    own, and the controller setting that keeps Argo's ``init`` and ``wait`` containers out of it."""
    item = document["spec"]["limits"][0]
    namespace = document.get("metadata", {}).get("namespace")
    where = f"namespace {namespace!r}" if namespace else "the namespace"
    return (
        f"with this LimitRange applied, every container in {where} that sets no resources of its own gets its defaults: "
        f"requests {_listed(item['defaultRequest'])} (defaultRequest) and limits {_listed(item['default'])} (default). "
        "That includes Argo's init and wait containers and any sidecar without resources; size Argo's own containers "
        "in the workflow controller's configuration:\n" + EXECUTOR_CONFIG
    )


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
