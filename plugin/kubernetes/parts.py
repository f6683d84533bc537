"""Typed pieces of a pod that a step's spec decides: a container's resources and the pod's
volumes, volume mounts, node selector and tolerations.

Frozen; the compiler and :func:`allotment.kubernetes.fit` build them, faces turn them into engine
objects with :meth:`PodParts.to_dict` (camelCase, the Kubernetes API's field names) and never
read them back by position. Quantities are strings in Kubernetes' form (``"500m"``, ``"16Gi"``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..targets import SHM_VOLUME

__all__ = ["ContainerResources", "PodParts"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ContainerResources:
    """A container's ``resources``: key (``cpu``, ``memory``, a GPU key...) -> quantity."""

    requests: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    limits: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """``{"requests": {...}, "limits": {...}}`` (fresh dicts)."""
        return {"requests": dict(self.requests), "limits": dict(self.limits)}

    def is_empty(self) -> bool:
        """True when neither requests nor limits name a resource."""
        return not self.requests and not self.limits

    def get(self, key: str) -> str | None:
        """The quantity of ``key``: its request, else its limit; None when neither names it."""
        return self.requests.get(key, self.limits.get(key))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ContainerResources:
        """From a plain ``resources`` mapping (values made strings, as the API reads them)."""
        data = data or {}
        return cls(
            MappingProxyType({str(k): str(v) for k, v in (data.get("requests") or {}).items()}),
            MappingProxyType({str(k): str(v) for k, v in (data.get("limits") or {}).items()}),
        )


def _items(values: Sequence[Mapping[str, Any]] | None) -> tuple[dict[str, Any], ...]:
    return tuple(copy.deepcopy(dict(v)) for v in values or ())


@dataclass(frozen=True)
class PodParts:
    """What a spec (or a user's own pod settings) says about one container and its pod.

    ``resources``: the container's (None: not said). ``volumes``, ``node_selector`` and
    ``tolerations`` belong to the pod, ``volume_mounts`` to the container. Entries are plain
    camelCase mappings (``{"name": ..., "emptyDir": {...}}``); treat them as read-only.
    """

    resources: ContainerResources | None = None
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    tolerations: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PodParts:
        """From plain camelCase parts (``resources``, ``volumes``, ``volumeMounts``, ``nodeSelector``,
        ``tolerations``), e.g. a user's own container and pod settings; the input is copied."""
        data = data or {}
        resources = data.get("resources")
        return cls(
            ContainerResources.from_dict(resources) if resources else None,
            _items(data.get("volumes")),
            _items(data.get("volumeMounts")),
            MappingProxyType({str(k): str(v) for k, v in (data.get("nodeSelector") or {}).items()}),
            _items(data.get("tolerations")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain camelCase data (fresh copies): ``resources`` when said, then ``volumes``,
        ``volumeMounts``, ``nodeSelector`` and ``tolerations`` when not empty."""
        out: dict[str, Any] = {}
        if self.resources is not None:
            out["resources"] = self.resources.to_dict()
        if self.volumes:
            out["volumes"] = [copy.deepcopy(dict(v)) for v in self.volumes]
        if self.volume_mounts:
            out["volumeMounts"] = [copy.deepcopy(dict(m)) for m in self.volume_mounts]
        if self.node_selector:
            out["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            out["tolerations"] = [copy.deepcopy(dict(t)) for t in self.tolerations]
        return out

    def volume(self, name: str) -> Mapping[str, Any] | None:
        """The volume named ``name``, if any."""
        return next((v for v in self.volumes if v.get("name") == name), None)

    @property
    def shm_size(self) -> str | None:
        """The ``sizeLimit`` of the shared-memory volume (:data:`~allotment.targets.SHM_VOLUME`), if there is one."""
        volume = self.volume(SHM_VOLUME)
        empty_dir = volume.get("emptyDir") if volume is not None else None
        size = empty_dir.get("sizeLimit") if isinstance(empty_dir, Mapping) else None
        return None if size is None else str(size)
