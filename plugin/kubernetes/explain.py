"""What each field of a resolved step becomes in a pod, in words, for ``allotment explain``.

Read from the compiled parts (:func:`allotment.kubernetes.compile_pod`) by key and by volume
name, with the keys of :mod:`allotment.targets`; nothing is read back by list position.
"""

from __future__ import annotations

from ..profiles import Profile
from ..resolve import Resolved
from ..targets import SHM_PATH, SHM_VOLUME, TARGETS
from .compile import compile_pod, step_gpu_key

__all__ = ["kubernetes_effects"]


def kubernetes_effects(resolved: Resolved, profile: Profile) -> dict[str, str]:
    """Field -> what it becomes in the pod, in words."""
    parts = compile_pod(resolved, profile)
    resources = parts.resources
    requests = dict(resources.requests) if resources is not None else {}
    limits = dict(resources.limits) if resources is not None else {}
    out: dict[str, str] = {}
    cpu, memory, disk = (str(TARGETS[f].kubernetes) for f in ("cpu", "memory", "disk"))
    if cpu in requests:
        out["cpu"] = f"requests.{cpu} {requests[cpu]}" + (f", limits.{cpu} {limits[cpu]}" if cpu in limits else "")
    if memory in requests:
        out["memory"] = f"requests/limits.{memory} {requests[memory]}"
    if disk in requests:
        out["disk"] = f"requests/limits.{disk} {requests[disk]}"
    gpu = resolved.value("gpu")
    key = step_gpu_key(resolved)
    if key is not None:
        out["gpu"] = f"requests/limits.{key} {gpu}; toleration {key}"
        out["gpu_vendor"] = f"resource key {key}"
        if resolved.value("gpu_type") is not None:
            derived = profile.node_selector(str(resolved.value("gpu_type")))
            out["gpu_type"] = (
                f"nodeSelector {', '.join(f'{k}={v}' for k, v in derived.items())} (profile {profile.name})"
                if derived
                else f"resource key {key}"
            )
    elif gpu == 0:
        out["gpu"] = "no GPU"
    if resolved.value("shared_memory") is not None:
        out["shared_memory"] = f"emptyDir {SHM_VOLUME} (Memory, {parts.shm_size or '?'}) at {SHM_PATH}"
    factor = resolved.value("retry_memory_factor")
    if factor is not None:
        out["retry_memory_factor"] = f"memory x{factor} after each OOM kill"
    return out
