"""The Kubernetes compiler: a resolved spec to :class:`~allotment.kubernetes.parts.PodParts`.

No Kubernetes client is imported. Output is deterministic: fixed names, fixed key order (cpu,
memory, disk, then the GPU key). Every key and name comes from :mod:`allotment.targets`.

=============  ==============================================================================
spec           Kubernetes
=============  ==============================================================================
cpu            ``requests.cpu``; ``limits.cpu`` too with ``qos="guaranteed"``
memory         ``requests.memory`` = ``limits.memory`` (``16Gi`` when whole GiB, else ``Mi``)
gpu            ``<key>`` in requests and limits, equal; toleration ``<key> Exists NoSchedule``
gpu_type       node selector from the cluster profile; a MIG profile has its own resource key
disk           the disk key in requests and limits
shared_memory  a volume ``emptyDir {medium: Memory, sizeLimit}`` mounted at ``/dev/shm``
=============  ==============================================================================
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ..errors import AllotmentError
from ..profiles import BUILTIN_PROFILES, Profile, get_profile
from ..quantity import format_cpu, format_mib
from ..resolve import Resolved
from ..targets import MIG_PROFILE, NVIDIA_GPU, SHM_PATH, SHM_VOLUME, TARGETS, gpu_key
from .merge import merge
from .parts import ContainerResources, PodParts

__all__ = ["compile_pod", "step_gpu_key"]


def step_gpu_key(resolved: Resolved) -> str | None:
    """The extended-resource key of the step's GPUs, or None when it asks for none."""
    if not resolved.value("gpu"):
        return None
    return gpu_key(resolved.value("gpu_vendor"), resolved.value("gpu_type"))


def compile_pod(resolved: Resolved, profile: Profile | None = None) -> PodParts:
    """The container ``resources`` and the pod's volumes, volume mounts, node selector and
    tolerations for one step, including what its ``@kubernetes`` decorator gave in
    ``node_selector`` and ``tolerations``."""
    profile = profile or get_profile(None)
    qos = resolved.options.get("qos", "burstable")
    cpu, memory = resolved.value("cpu"), resolved.value("memory")
    gpu, disk, shm = resolved.value("gpu"), resolved.value("disk"), resolved.value("shared_memory")
    gpu_type = resolved.value("gpu_type")

    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    cpu_key, memory_key, disk_key = (str(TARGETS[f].kubernetes) for f in ("cpu", "memory", "disk"))
    if cpu is not None:
        requests[cpu_key] = format_cpu(cpu)
        if qos == "guaranteed":
            limits[cpu_key] = requests[cpu_key]
    if memory is not None:
        requests[memory_key] = limits[memory_key] = format_mib(memory)
    if disk is not None:
        requests[disk_key] = limits[disk_key] = format_mib(disk)
    tolerations: list[dict[str, Any]] = []
    node_selector: dict[str, str] = {}
    key = step_gpu_key(resolved)
    if key is not None:
        requests[key] = limits[key] = str(gpu)
        tolerations.append({"key": key, "operator": "Exists", "effect": "NoSchedule"})
        if gpu_type is not None:
            won = resolved.winners["gpu_type"]
            if key != NVIDIA_GPU and not MIG_PROFILE.fullmatch(gpu_type) and BUILTIN_PROFILES.get(profile.name) is profile:
                raise AllotmentError(
                    f"selects nodes by NVIDIA's labels (cluster profile {profile.name!r}), but the GPU resource is {key!r}",
                    step=resolved.step,
                    field="gpu_type",
                    value=gpu_type,
                    source=str(won.source),
                    accepted="drop gpu_type, or use a cluster profile file that maps this vendor's GPU types (--profile)",
                )
            node_selector = profile.node_selector(gpu_type, step=resolved.step, source=str(won.source))

    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    if shm is not None:
        volumes = ({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": format_mib(shm)}},)
        mounts = ({"name": SHM_VOLUME, "mountPath": SHM_PATH},)
    parts = PodParts(
        ContainerResources(MappingProxyType(requests), MappingProxyType(limits)),
        volumes,
        mounts,
        MappingProxyType(node_selector),
        tuple(tolerations),
    )
    own_selector = resolved.options.get("node_selector")
    own_tolerations = resolved.options.get("tolerations")
    if not own_selector and not own_tolerations:
        return parts
    user = PodParts(
        node_selector=MappingProxyType(dict(own_selector or {})),
        tolerations=tuple(dict(t) for t in own_tolerations or ()),
    )
    return merge(parts, user, step=resolved.step, user_source="@kubernetes")
