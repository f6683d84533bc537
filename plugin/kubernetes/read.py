"""Reading what a user's own pod settings already ask for, in spec fields: :func:`read_pod`.

Where a step's pod starts from settings the user wrote themselves (a pod template, an Airflow
operator's own ``container_resources``), those settings are step sources like any other
(docs/design.md §2): they join the maximum, the policy checks them and ``explain`` names them.
This module reads them, by key (:mod:`allotment.targets`):

========================================  ==============================================================
the user's container or pod               spec field
========================================  ==============================================================
the CPU request                           ``cpu`` (a CPU limit alone is a ceiling and is kept as it is)
the memory request and limit              ``memory``: the larger one (allotment asks requests = limits)
the disk key's request and limit          ``disk``: the larger one
a vendor's GPU key (``GPU_VENDOR_KEYS``)  ``gpu`` and ``gpu_vendor``; an NVIDIA MIG key also ``gpu_type``
a ``Memory`` ``emptyDir`` with a          ``shared_memory`` (its ``sizeLimit``)
``sizeLimit`` mounted at ``/dev/shm``
========================================  ==============================================================

The keys are :mod:`allotment.targets`' (:data:`~allotment.targets.TARGETS`, :func:`~allotment.targets.gpu_of_key`).

What is read is taken out of the parts; :attr:`PodRead.rest` keeps the remainder (other
resource keys, a CPU limit, other volumes, node selector, tolerations), so allotment's compiled
parts take the place of what was read. A value that still holds a Jinja template (``{{ ... }}``
or ``{% ... %}``) is neither read nor kept (:attr:`PodRead.templated`): an engine reads it again
once it is rendered. A value that is no quantity is an error naming the step, the key and the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ..errors import AllotmentError
from ..model import Resources, describe_value
from ..targets import SHM_PATH, TARGETS, gpu_of_key
from .parts import ContainerResources, PodParts

__all__ = ["TEMPLATE_MARKERS", "PodRead", "is_templated", "read_pod"]

TEMPLATE_MARKERS: Final = ("{{", "{%")
"""What marks a value as a Jinja template that is not rendered yet."""


def is_templated(value: object) -> bool:
    """True when ``value`` (or a string anywhere inside it) holds a Jinja template marker."""
    if isinstance(value, str):
        return any(marker in value for marker in TEMPLATE_MARKERS)
    if isinstance(value, Mapping):
        return any(is_templated(k) or is_templated(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(is_templated(v) for v in value)
    return False


@dataclass(frozen=True)
class PodRead:
    """What some pod settings ask for (see the module docs).

    ``resources``: the fields read from the container's resources; ``shared_memory``: the field
    read from the ``/dev/shm`` volume (``shm_volume``: its name). ``rest``: the parts without what
    was read. ``templated``: the settings not read because they hold a Jinja template, with
    their text (``("limits.memory", "{{ params.memory }}")``). ``notes``: what a reader should know
    (a memory request below its limit becomes both)."""

    resources: Resources
    shared_memory: Resources
    shm_volume: str | None
    rest: PodParts
    templated: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=())


_CPU, _MEMORY, _DISK = (str(TARGETS[f].kubernetes) for f in ("cpu", "memory", "disk"))
_SIZES: Final = {_MEMORY: "memory", _DISK: "disk"}


def _parse(field_name: str, raw: object, *, step: str, source: str, where: str) -> Any:
    return getattr(Resources.from_input({field_name: raw}, step=step, source=f"{source} ({where})"), field_name)


def read_pod(parts: PodParts | Mapping[str, Any] | None, *, step: str, source: str) -> PodRead:
    """Read what ``parts`` (the container's ``resources`` and ``volumeMounts``, the pod's
    ``volumes``, ``nodeSelector`` and ``tolerations``) ask for; ``source`` names them in errors
    and notes (``"pod_template_file 'base.yaml'"``)."""
    parts = parts if isinstance(parts, PodParts) else PodParts.from_dict(parts)
    fields: dict[str, Any] = {}
    templated: list[tuple[str, str]] = []
    notes: list[str] = []
    rest_resources: ContainerResources | None = None
    if parts.resources is not None:
        kept: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
        sizes: dict[str, dict[str, int]] = {}
        gpus: dict[tuple[str, str | None], int] = {}
        for section in ("requests", "limits"):
            values: Mapping[str, str] = getattr(parts.resources, section)
            for key, raw in values.items():
                gpu = gpu_of_key(key)
                managed = key in (_CPU, _MEMORY, _DISK) or gpu is not None
                where = f"{section}.{key}"
                if managed and is_templated(raw):
                    templated.append((where, raw))
                elif key == _CPU and section == "requests":
                    fields["cpu"] = _parse("cpu", raw, step=step, source=source, where=where)
                elif key in _SIZES:
                    sizes.setdefault(_SIZES[key], {})[section] = _parse(_SIZES[key], raw, step=step, source=source, where=where)
                elif gpu is not None:
                    count = _parse("gpu", raw, step=step, source=source, where=where)
                    gpus[gpu] = max(gpus.get(gpu, 0), count)
                else:
                    kept[section][key] = raw
        for name, by_section in sizes.items():
            fields[name] = max(by_section.values())
            request, limit = by_section.get("requests"), by_section.get("limits")
            if request is not None and limit is not None and request != limit:
                key = str(TARGETS[name].kubernetes)
                notes.append(
                    f"{source} has requests.{key} {describe_value(name, request)} and limits.{key} {describe_value(name, limit)}; "
                    f"allotment asks for {describe_value(name, fields[name])} in both"
                )
        asked = {kind: count for kind, count in gpus.items() if count}
        if len(asked) > 1:
            raise AllotmentError(
                f"asks for more than one kind of GPU ({', '.join(sorted(f'{v}/{t}' if t else v for v, t in asked))})",
                step=step,
                source=source,
                accepted="a step asks for one kind of GPU",
            )
        if gpus:
            fields["gpu"] = max(gpus.values())
        if asked:
            (vendor, gpu_type), _ = next(iter(asked.items()))
            fields["gpu_vendor"] = vendor
            if gpu_type is not None:
                fields["gpu_type"] = gpu_type
        if kept["requests"] or kept["limits"]:
            rest_resources = ContainerResources(MappingProxyType(kept["requests"]), MappingProxyType(kept["limits"]))

    shm: dict[str, Any] = {}
    shm_volume: str | None = None
    volumes, mounts = list(parts.volumes), list(parts.volume_mounts)
    mount = next((m for m in mounts if m.get("mountPath") == SHM_PATH), None)
    volume = next((v for v in volumes if mount is not None and v.get("name") == mount.get("name")), None)
    empty_dir = volume.get("emptyDir") if volume is not None else None
    if isinstance(empty_dir, Mapping) and empty_dir.get("medium") == "Memory" and empty_dir.get("sizeLimit") is not None:
        name = str(volume.get("name")) if volume is not None else ""
        size = empty_dir["sizeLimit"]
        if is_templated(size):
            templated.append((f"volume {name!r} sizeLimit", str(size)))
        else:
            shm["shared_memory"] = _parse("shared_memory", size, step=step, source=source, where=f"volume {name!r} at {SHM_PATH}")
            shm_volume = name
            volumes = [v for v in volumes if v is not volume]
            mounts = [m for m in mounts if m is not mount]
    rest = PodParts(rest_resources, tuple(volumes), tuple(mounts), parts.node_selector, parts.tolerations)
    return PodRead(
        Resources.normalized(**fields),
        Resources.normalized(**shm),
        shm_volume,
        rest,
        tuple(templated),
        tuple(notes),
    )
