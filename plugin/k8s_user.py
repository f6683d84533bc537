"""Defaults yield to what a user wrote on the pod or container themselves (DESIGN §2.3, §3).

A face that merges allotment's Kubernetes parts with the user's own container resources,
volumes and mounts (Airflow's ``container_resources=``, an executor ``pod_override``) calls
:func:`yield_defaults` first: a value that only a default decided (the workflow's defaults or
the seed defaults, cpu 1 and memory 4096 MiB) is dropped where the user's own settings already
name that resource, so a default never conflicts with an explicit value. (Memory that must grow
on retries, ``retry_memory_factor``, cannot yield: that is an error.) A value that a step
source, a runtime ``with`` or a ``set`` gave is kept, and :func:`allotment.k8s.merge_parts`
then reports a real conflict naming both.

Engine-free: plain dicts in, plain dicts out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from .errors import AllotmentError
from .k8s import DSHM, SHM_PATH, gpu_key
from .resolve import Resolved

__all__ = ["DEFAULT_KINDS", "yield_defaults"]

DEFAULT_KINDS: Final = ("default", "workflow default")
"""Source kinds that only fill gaps; they yield to the user's own pod settings."""


def _from_default(resolved: Resolved, field: str) -> bool:
    won = resolved.winners.get(field)
    return won is not None and won.source.kind in DEFAULT_KINDS


def yield_defaults(parts: Mapping[str, Any], resolved: Resolved, user: Mapping[str, Any]) -> dict[str, Any]:
    """``parts`` (from :func:`allotment.k8s.kubernetes_parts`) without what a default decided and
    the user's own ``user`` parts (same shape: ``resources``, ``volumes``, ``volumeMounts``) already
    give: a resource key the user names in requests or limits, and the ``dshm`` volume and mount
    when the user mounts something at ``/dev/shm`` or has a volume named ``dshm``."""
    out: dict[str, Any] = copy.deepcopy(dict(parts))
    user_resources = user.get("resources") or {}
    named = {str(key) for section in ("requests", "limits") for key in (user_resources.get(section) or {})}
    keys = {
        "cpu": "cpu",
        "memory": "memory",
        "disk": "ephemeral-storage",
        "gpu": gpu_key(resolved.value("gpu_vendor"), resolved.value("gpu_type")),
    }
    resources = out.get("resources")
    if isinstance(resources, dict):
        for field, key in keys.items():
            if key in named and _from_default(resolved, field):
                factor = resolved.value("retry_memory_factor")
                if field == "memory" and factor not in (None, 1):
                    raise AllotmentError(
                        "has retry_memory_factor, but its memory comes from the container's own resources, "
                        "which allotment cannot grow on a retry",
                        step=resolved.step,
                        field="retry_memory_factor",
                        value=factor,
                        source=str(resolved.winners["retry_memory_factor"].source),
                        accepted="give memory in the spec (e.g. @resources(memory=...)) so that allotment can grow it",
                    )
                for section in ("requests", "limits"):
                    (resources.get(section) or {}).pop(key, None)
    if _from_default(resolved, "shared_memory"):
        mounts = user.get("volumeMounts") or []
        volumes = user.get("volumes") or []
        if any(m.get("mountPath") == SHM_PATH or m.get("name") == DSHM for m in mounts) or any(v.get("name") == DSHM for v in volumes):
            out["volumes"] = [v for v in out.get("volumes") or [] if v.get("name") != DSHM]
            out["volumeMounts"] = [m for m in out.get("volumeMounts") or [] if m.get("name") != DSHM]
            for key in ("volumes", "volumeMounts"):
                if not out[key]:
                    del out[key]
    return out
