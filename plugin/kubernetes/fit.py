"""Fitting a step's spec into the pod or container a user already configured: :func:`fit`.

Every face that has the user's own pod settings (Airflow's ``container_resources=``, an executor
``pod_override``, a Hera template's own fields, an EKS override) calls this one operation:

1. compile the spec (:func:`allotment.kubernetes.compile_pod`), unless the caller gives parts;
2. **defaults yield**: a value that only a default decided (the workflow's defaults or the seed
   defaults, cpu 1 and memory 4096 MiB) is dropped where the user's own settings already name
   that resource, so a default never conflicts with an explicit value (docs/design.md, "Sources
   and precedence"). Memory that must grow on retries (``retry_memory_factor``) cannot yield:
   allotment cannot grow a value it does not own, so that is an error;
3. **merge**: the user's entries are kept and come first, allotment's are added, and a real
   conflict between what a step source, a ``with`` or a ``set`` gave and the user's own value is
   an error naming both (:func:`allotment.kubernetes.merge.merge`).

The result, a :class:`PodFit`, says what allotment set (:attr:`PodFit.ours`), the merged parts
(:attr:`PodFit.merged`) and what was added to the user's own (:attr:`PodFit.added`), and reads a
field's value by name (:meth:`PodFit.value`), never by list position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from ..errors import AllotmentError
from ..profiles import Profile
from ..resolve import Resolved
from ..targets import SHM_PATH, SHM_VOLUME, TARGETS, field_of_key, kubernetes_key
from .compile import compile_pod, step_gpu_key
from .merge import UserSource, merge
from .parts import ContainerResources, PodParts

__all__ = ["DEFAULT_KINDS", "PodFit", "fit"]

DEFAULT_KINDS: Final = ("default", "workflow default")
"""Source kinds that only fill gaps; they yield to the user's own pod settings."""


@dataclass(frozen=True)
class PodFit:
    """A step's spec fitted into the user's own pod settings.

    ``ours``: allotment's parts after defaults yielded (what allotment sets). ``merged``: the
    user's parts with ours added. ``added``: the volumes, volume mounts and tolerations of
    ``merged`` that the user did not have. ``gpu_key``: the step's GPU resource key (None: no GPU).
    """

    step: str
    ours: PodParts
    merged: PodParts
    added: PodParts
    gpu_key: str | None

    def value(self, field: str) -> str | None:
        """The quantity allotment sets for ``field`` (``cpu``, ``memory``, ``gpu``, ``disk``,
        ``shared_memory``), or None where it sets none (a default that yielded, or not asked)."""
        if field == "shared_memory":
            return self.ours.shm_size
        key = kubernetes_key(field) if field != "gpu" else self.gpu_key
        if key is None or self.ours.resources is None:
            return None
        return self.ours.resources.get(key)

    def field_of(self, key: str) -> str | None:
        """The spec field a resource key of this pod carries (None: not one of allotment's)."""
        return field_of_key(key, self.gpu_key)


def _from_default(resolved: Resolved, field: str) -> bool:
    won = resolved.winners.get(field)
    return won is not None and won.source.kind in DEFAULT_KINDS


def _yield_defaults(ours: PodParts, resolved: Resolved, user: PodParts, owner: str) -> PodParts:
    named: set[str] = set()
    if user.resources is not None:
        named = set(user.resources.requests) | set(user.resources.limits)
    gpu = step_gpu_key(resolved) or kubernetes_key("gpu", resolved.value("gpu_vendor"), resolved.value("gpu_type"))
    dropped: list[str] = []
    for field in TARGETS:
        key = gpu if field == "gpu" else TARGETS[field].kubernetes
        if key is None or key not in named or not _from_default(resolved, field):
            continue
        factor = resolved.value("retry_memory_factor")
        if field == "memory" and factor not in (None, 1):
            raise AllotmentError(
                f"has retry_memory_factor, but its memory comes from {owner}, which allotment cannot grow on a retry",
                step=resolved.step,
                field="retry_memory_factor",
                value=factor,
                source=str(resolved.winners["retry_memory_factor"].source),
                accepted="give memory in the spec (e.g. @resources(memory=...)) so that allotment can grow it",
            )
        dropped.append(key)
    out = ours
    if dropped and ours.resources is not None:
        keep = ours.resources
        out = replace(
            out,
            resources=ContainerResources(
                MappingProxyType({k: v for k, v in keep.requests.items() if k not in dropped}),
                MappingProxyType({k: v for k, v in keep.limits.items() if k not in dropped}),
            ),
        )
    if _from_default(resolved, "shared_memory") and (
        any(m.get("mountPath") == SHM_PATH or m.get("name") == SHM_VOLUME for m in user.volume_mounts)
        or user.volume(SHM_VOLUME) is not None
    ):
        out = replace(
            out,
            volumes=tuple(v for v in out.volumes if v.get("name") != SHM_VOLUME),
            volume_mounts=tuple(m for m in out.volume_mounts if m.get("name") != SHM_VOLUME),
        )
    return out


def _added(merged: PodParts, user: PodParts) -> PodParts:
    names = {v.get("name") for v in user.volumes}
    mounts = [dict(m) for m in user.volume_mounts]
    tolerations = [dict(t) for t in user.tolerations]
    return PodParts(
        merged.resources,
        tuple(v for v in merged.volumes if v.get("name") not in names),
        tuple(m for m in merged.volume_mounts if dict(m) not in mounts),
        merged.node_selector,
        tuple(t for t in merged.tolerations if dict(t) not in tolerations),
    )


def fit(
    resolved: Resolved,
    profile: Profile | None,
    user: PodParts | Mapping[str, Any] | None = None,
    *,
    user_source: UserSource,
    owner: str = "the container's own resources",
    ours: PodParts | None = None,
) -> PodFit:
    """Fit ``resolved`` into the user's own parts (see the module docs).

    ``user``: the user's pod settings (typed, or plain camelCase parts). ``user_source``: how a
    conflict names them (``"executor_config['pod_override']"``), or a name per part
    (:data:`allotment.kubernetes.merge.PARTS`), so that a clash names the one that clashed; ``owner``: how the retry-growth
    error names where memory would come from. ``ours``: allotment's parts when the caller
    compiled them otherwise (an EKS override), else :func:`compile_pod` of ``resolved``.
    """
    own = user if isinstance(user, PodParts) else PodParts.from_dict(user)
    compiled = ours if ours is not None else compile_pod(resolved, profile)
    mine = _yield_defaults(compiled, resolved, own, owner)
    merged = merge(mine, own, step=resolved.step, user_source=user_source)
    return PodFit(resolved.step, mine, merged, _added(merged, own), step_gpu_key(resolved))
