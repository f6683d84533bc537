"""Merging allotment's pod parts with what a user gave the pod or container themselves.

The user's entries are kept and come first; allotment's are added. The same entry twice is
kept once. A real conflict is an error naming both: a resource key with two values, a node
label with two values, a user volume named like allotment's shared-memory volume or a user mount at ``/dev/shm`` when shared
memory is set, a request above its limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..errors import AllotmentError
from ..quantity import QuantityError, parse_quantity
from ..targets import CONTAINER_KEYS, SHM_VOLUME
from .parts import ContainerResources, PodParts

__all__ = ["PARTS", "UserSource", "merge", "part_source", "same_quantity"]

_SPEC = "allotment's spec"

PARTS = ("resources", "volumes", "volumeMounts", "nodeSelector", "tolerations")
"""The parts of a pod a user's own settings can clash with allotment's in."""

UserSource = str | Mapping[str, str]
"""How a clash names the user's side: one name for all of it, or one per part (:data:`PARTS`:
``{"resources": "container_resources of KubernetesPodOperator", ...}``), so that the message
names the argument that clashed rather than every one the user could have set."""


def part_source(user_source: UserSource, part: str) -> str:
    """The name of the user's ``part`` (its own entry, else ``user_source`` itself when a string)."""
    if isinstance(user_source, str):
        return user_source
    return user_source.get(part) or next(iter(user_source.values()), "the user's own pod settings")


def merge(ours: PodParts, user: PodParts, *, step: str, user_source: UserSource) -> PodParts:
    """``user``'s parts with ``ours`` added (see the module docs); ``user_source`` names the user's
    side in errors, as one name or per part."""
    resources = _merge_resources(ours.resources, user.resources, step, part_source(user_source, "resources"))
    volumes = _merge_named(ours.volumes, user.volumes, step, part_source(user_source, "volumes"))
    mounts = _merge_mounts(ours.volume_mounts, user.volume_mounts, step, part_source(user_source, "volumeMounts"))

    selector = dict(user.node_selector)
    for label, value in ours.node_selector.items():
        if label in selector and selector[label] != value:
            theirs = part_source(user_source, "nodeSelector")
            raise AllotmentError(
                f"node selector {label}={selector[label]!r} from {theirs} conflicts with {label}={value!r} "
                "that allotment derives from gpu_type",
                step=step,
                accepted="drop the label from your node selector, or change gpu_type",
            )
        selector[label] = value

    tolerations = [dict(t) for t in user.tolerations]
    for toleration in ours.tolerations:
        if toleration not in tolerations:
            tolerations.append(dict(toleration))
    return PodParts(resources, tuple(volumes), tuple(mounts), MappingProxyType(selector), tuple(tolerations))


def same_quantity(a: str, b: str) -> bool:
    """True when two quantities are the same amount (``"1024Mi"`` and ``"1Gi"``, ``"0.5"`` and ``"500m"``)."""
    if a == b:
        return True
    try:
        return parse_quantity(a) == parse_quantity(b)
    except QuantityError:
        return False


def _resource_order(key: str) -> tuple[int, str]:
    return (CONTAINER_KEYS.index(key) if key in CONTAINER_KEYS else len(CONTAINER_KEYS), key)


def _merge_resources(
    ours: ContainerResources | None, user: ContainerResources | None, step: str, user_source: str
) -> ContainerResources | None:
    if ours is None and user is None:
        return None
    ours = ours or ContainerResources()
    user = user or ContainerResources()
    merged: dict[str, dict[str, str]] = {}
    for section in ("requests", "limits"):
        theirs: Mapping[str, str] = getattr(user, section)
        mine: Mapping[str, str] = getattr(ours, section)
        for key, value in mine.items():
            if key in theirs and not same_quantity(theirs[key], value):
                raise AllotmentError(
                    f"{section}.{key}={theirs[key]!r} from {user_source} conflicts with {section}.{key}={value!r} from {_SPEC}",
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
            too_high = parse_quantity(request) > parse_quantity(limit)
        except QuantityError:
            continue  # not ours to judge; kubernetes-validate and the API server check syntax
        if too_high:
            request_from = _SPEC if key in ours.requests else user_source
            limit_from = _SPEC if key in ours.limits else user_source
            raise AllotmentError(
                f"requests.{key}={request!r} from {request_from} is above limits.{key}={limit!r} from {limit_from}",
                step=step,
                accepted=f"raise the {key} limit, lower the request, or give {key} in one place only",
            )
    return ContainerResources(MappingProxyType(merged["requests"]), MappingProxyType(merged["limits"]))


def _merge_named(
    ours: Sequence[Mapping[str, Any]], user: Sequence[Mapping[str, Any]], step: str, user_source: str
) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = list(user)
    names = {v.get("name"): v for v in out}
    for item in ours:
        existing = names.get(item.get("name"))
        if existing is None:
            out.append(item)
        elif dict(existing) != dict(item):
            raise AllotmentError(
                f"volume {item.get('name')!r} from {user_source} clashes with the volume allotment adds for shared_memory",
                step=step,
                accepted="rename your volume, or drop shared_memory and size /dev/shm yourself",
            )
    return out


def _merge_mounts(
    ours: Sequence[Mapping[str, Any]], user: Sequence[Mapping[str, Any]], step: str, user_source: str
) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = list(user)
    for mount in ours:
        clash = next((m for m in out if m.get("mountPath") == mount.get("mountPath") or m.get("name") == mount.get("name")), None)
        if clash is None:
            out.append(mount)
        elif dict(clash) != dict(mount):
            raise AllotmentError(
                f"volume mount {clash.get('name')!r} at {clash.get('mountPath')!r} from {user_source} clashes with "
                f"the {SHM_VOLUME!r} mount at {mount.get('mountPath')!r} that shared_memory adds",
                step=step,
                accepted="drop your /dev/shm mount (shared_memory sizes it), or drop shared_memory",
            )
    return out
