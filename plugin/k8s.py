"""The Kubernetes compiler (DESIGN §3–4): a resolved spec to plain Kubernetes data.

No Kubernetes client is imported; the faces turn these dicts into operator arguments and
Hera objects. Output is deterministic: fixed names (``dshm``), fixed key order.

=============  ==============================================================================
spec           Kubernetes
=============  ==============================================================================
cpu            ``requests.cpu``; ``limits.cpu`` too with ``qos="guaranteed"``
memory         ``requests.memory`` = ``limits.memory`` (``16Gi`` when whole GiB, else ``Mi``)
gpu            ``<key>`` in requests and limits, equal; toleration ``<key> Exists NoSchedule``
gpu_type       node selector from the cluster profile; MIG profiles use ``nvidia.com/mig-<p>``
disk           ``ephemeral-storage`` in requests and limits
shared_memory  volume ``dshm``: ``emptyDir {medium: Memory, sizeLimit}`` at ``/dev/shm``
=============  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from .errors import AllotmentError
from .fields import GPU_VENDORS, MIG_PROFILE
from .profiles import BUILTIN_PROFILES, Profile, get_profile
from .quantity import QuantityError, format_cpu, format_mib, parse_quantity
from .resolve import Resolved

__all__ = ["DSHM", "NVIDIA_GPU", "SHM_PATH", "gpu_key", "kubernetes_parts", "merge_parts"]

DSHM: Final = "dshm"
SHM_PATH: Final = "/dev/shm"
NVIDIA_GPU: Final = "nvidia.com/gpu"


def gpu_key(vendor: str | None, gpu_type: str | None) -> str:
    """The extended-resource key for a vendor (default nvidia) and GPU type (MIG profiles have their own)."""
    if gpu_type is not None and MIG_PROFILE.fullmatch(gpu_type):
        return f"nvidia.com/mig-{gpu_type}"
    vendor = vendor or "nvidia"
    return GPU_VENDORS.get(vendor, vendor)


def kubernetes_parts(resolved: Resolved, profile: Profile | None = None) -> dict[str, Any]:
    """The container ``resources`` and the pod's ``volumes``, ``volumeMounts``, ``nodeSelector``
    and ``tolerations`` for one step (the last four only when not empty), including what the
    step's ``@kubernetes`` decorator gave in ``node_selector`` and ``tolerations``."""
    profile = profile or get_profile(None)
    qos = resolved.options.get("qos", "burstable")
    cpu, memory = resolved.value("cpu"), resolved.value("memory")
    gpu, disk, shm = resolved.value("gpu"), resolved.value("disk"), resolved.value("shared_memory")
    gpu_type = resolved.value("gpu_type")

    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpu is not None:
        requests["cpu"] = format_cpu(cpu)
        if qos == "guaranteed":
            limits["cpu"] = requests["cpu"]
    if memory is not None:
        requests["memory"] = limits["memory"] = format_mib(memory)
    if disk is not None:
        requests["ephemeral-storage"] = limits["ephemeral-storage"] = format_mib(disk)
    tolerations: list[dict[str, Any]] = []
    node_selector: dict[str, str] = {}
    if gpu:
        key = gpu_key(resolved.value("gpu_vendor"), gpu_type)
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

    parts: dict[str, Any] = {"resources": {"requests": requests, "limits": limits}}
    if shm is not None:
        parts["volumes"] = [{"name": DSHM, "emptyDir": {"medium": "Memory", "sizeLimit": format_mib(shm)}}]
        parts["volumeMounts"] = [{"name": DSHM, "mountPath": SHM_PATH}]
    if node_selector:
        parts["nodeSelector"] = node_selector
    if tolerations:
        parts["tolerations"] = tolerations
    user: dict[str, Any] = {}
    if resolved.options.get("node_selector"):
        user["nodeSelector"] = dict(resolved.options["node_selector"])
    if resolved.options.get("tolerations"):
        user["tolerations"] = [dict(t) for t in resolved.options["tolerations"]]
    return merge_parts(parts, user, step=resolved.step, user_source="@kubernetes") if user else parts


def merge_parts(ours: Mapping[str, Any], user: Mapping[str, Any], *, step: str, user_source: str) -> dict[str, Any]:
    """Merge what allotment compiled with what the user gave the pod or container themselves.

    The user's entries are kept and come first; ours are added. The same entry twice is kept
    once. A real conflict is an error naming both: a resource key with two values, a node
    label with two values, a user volume named ``dshm`` or mounted at ``/dev/shm`` when
    shared memory is set, a user ``/dev/shm`` mount when shared memory is set.
    """
    out: dict[str, Any] = {}

    resources = _merge_resources(ours.get("resources") or {}, user.get("resources") or {}, step, user_source)
    if resources is not None:
        out["resources"] = resources

    volumes = _merge_named(ours.get("volumes") or [], user.get("volumes") or [], "volume", step, user_source)
    mounts = _merge_mounts(ours.get("volumeMounts") or [], user.get("volumeMounts") or [], step, user_source)
    if volumes:
        out["volumes"] = volumes
    if mounts:
        out["volumeMounts"] = mounts

    selector = dict(user.get("nodeSelector") or {})
    for label, value in (ours.get("nodeSelector") or {}).items():
        if label in selector and selector[label] != value:
            raise AllotmentError(
                f"node selector {label}={selector[label]!r} from {user_source} conflicts with {label}={value!r} "
                "that allotment derives from gpu_type",
                step=step,
                accepted="drop the label from your node selector, or change gpu_type",
            )
        selector[label] = value
    if selector:
        out["nodeSelector"] = selector

    tolerations = [dict(t) for t in user.get("tolerations") or []]
    for toleration in ours.get("tolerations") or []:
        if toleration not in tolerations:
            tolerations.append(dict(toleration))
    if tolerations:
        out["tolerations"] = tolerations
    return out


def _merge_resources(ours: Mapping[str, Any], user: Mapping[str, Any], step: str, user_source: str) -> dict[str, Any] | None:
    if not ours and not user:
        return None
    merged: dict[str, Any] = {}
    for section in ("requests", "limits"):
        theirs = {str(k): str(v) for k, v in (user.get(section) or {}).items()}
        mine = dict(ours.get(section) or {})
        for key, value in mine.items():
            if key in theirs and not _same_quantity(theirs[key], value):
                raise AllotmentError(
                    f"{section}.{key}={theirs[key]!r} from {user_source} conflicts with {section}.{key}={value!r} from allotment's spec",
                    step=step,
                    accepted="give this resource in one place only (allotment's spec, or the container's own resources)",
                )
        combined = {**theirs, **mine}
        merged[section] = {k: combined[k] for k in sorted(combined, key=_resource_order)}
    # A request above its limit is a pod the API server rejects: say so now, naming both sides.
    for key, request in merged["requests"].items():
        limit = merged["limits"].get(key)
        if limit is None:
            continue
        try:
            too_high = parse_quantity(str(request)) > parse_quantity(str(limit))
        except QuantityError:
            continue  # not ours to judge; kubernetes-validate and the API server check syntax
        if too_high:
            spec = "allotment's spec"
            request_from = spec if key in (ours.get("requests") or {}) else user_source
            limit_from = spec if key in (ours.get("limits") or {}) else user_source
            raise AllotmentError(
                f"requests.{key}={request!r} from {request_from} is above limits.{key}={limit!r} from {limit_from}",
                step=step,
                accepted=f"raise the {key} limit, lower the request, or give {key} in one place only",
            )
    return merged


def _same_quantity(a: str, b: str) -> bool:
    """True when two quantities are the same amount (``"1024Mi"`` and ``"1Gi"``, ``"0.5"`` and ``"500m"``)."""
    if a == b:
        return True
    try:
        return parse_quantity(a) == parse_quantity(b)
    except QuantityError:
        return False


def _resource_order(key: str) -> tuple[int, str]:
    order = {"cpu": 0, "memory": 1, "ephemeral-storage": 2}
    return (order.get(key, 3), key)


def _merge_named(
    ours: Sequence[Mapping[str, Any]], user: Sequence[Mapping[str, Any]], what: str, step: str, user_source: str
) -> list[dict[str, Any]]:
    out = [dict(v) for v in user]
    names = {v.get("name"): v for v in out}
    for item in ours:
        existing = names.get(item.get("name"))
        if existing is None:
            out.append(dict(item))
        elif existing != dict(item):
            raise AllotmentError(
                f"{what} {item.get('name')!r} from {user_source} clashes with the {what} allotment adds for shared_memory",
                step=step,
                accepted=f"rename your {what}, or drop shared_memory and size /dev/shm yourself",
            )
    return out


def _merge_mounts(
    ours: Sequence[Mapping[str, Any]], user: Sequence[Mapping[str, Any]], step: str, user_source: str
) -> list[dict[str, Any]]:
    out = [dict(m) for m in user]
    for mount in ours:
        clash = next((m for m in out if m.get("mountPath") == mount.get("mountPath") or m.get("name") == mount.get("name")), None)
        if clash is None:
            out.append(dict(mount))
        elif clash != dict(mount):
            raise AllotmentError(
                f"volume mount {clash.get('name')!r} at {clash.get('mountPath')!r} from {user_source} clashes with "
                f"the {DSHM!r} mount at {mount.get('mountPath')!r} that shared_memory adds",
                step=step,
                accepted="drop your /dev/shm mount (shared_memory sizes it), or drop shared_memory",
            )
    return out
