"""What one step may use on this machine: the resolved spec in the local backend's units.

:class:`Limits` is a small frozen value (CPU in millicores, memory, shared memory and disk in
MiB, GPUs as a count); :meth:`Limits.from_resolved` builds it from a resolved step using only
``resolved.step``, ``resolved.value(field)`` and, for error messages, each value's source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

from ..errors import AllotmentError
from ..targets import NVIDIA_GPU
from .units import cpu_text, mib_text

__all__ = ["FIELD_NAMES", "Limits", "ResolvedLike"]

FIELD_NAMES: Final = ("cpu", "memory", "gpu", "gpu_type", "gpu_vendor", "shared_memory", "disk", "retry_memory_factor")
"""The spec fields the local backend reads, in the order they are shown."""

_NVIDIA: Final = ("nvidia", NVIDIA_GPU)


class ResolvedLike(Protocol):
    """What :meth:`Limits.from_resolved` reads of an ``allotment.Resolved``."""

    @property
    def step(self) -> str: ...

    def value(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Limits:
    """The limits of one step on the local backend. None means "not asked" (no cap, no check).

    ``cpu_millicores``: CPU in millicores (1000 = one core); the step is pinned to
    ``ceil(cpu_millicores / 1000)`` cores. ``memory_mib``: memory cap in MiB (2^20 bytes) for the
    whole process tree. ``gpu``: number of GPUs made visible (``CUDA_VISIBLE_DEVICES``); 0 or None
    hides every GPU. ``gpu_type``: GPU model the GPUs must be (e.g. ``H100``). ``gpu_vendor``: only
    ``nvidia`` (or its resource key) can be honoured here. ``shared_memory_mib``: free space
    ``/dev/shm`` must have, in MiB. ``disk_mib``: free disk the working and temporary directories
    must have, in MiB. ``retry_memory_factor``: memory growth per earlier OOM-killed try.
    ``sources``: field name -> where its value came from (``@resources``, ``with --with ...``), for
    messages only; it takes no part in equality.
    """

    step: str
    cpu_millicores: int | None = None
    memory_mib: int | None = None
    gpu: int | None = None
    gpu_type: str | None = None
    gpu_vendor: str | None = None
    shared_memory_mib: int | None = None
    disk_mib: int | None = None
    retry_memory_factor: float | None = None
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.step, str) or not self.step:
            raise AllotmentError("is not a step name", field="step", value=self.step, accepted="give the step's name as a non-empty str")
        positive = {
            "cpu": self.cpu_millicores,
            "memory": self.memory_mib,
            "shared_memory": self.shared_memory_mib,
            "disk": self.disk_mib,
        }
        for name, value in positive.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                unit = "millicores" if name == "cpu" else "MiB"
                raise self.error(
                    name,
                    "is not a positive whole number",
                    value=value,
                    accepted=f"give {name} in {unit} as an int > 0, or None",
                )
        if self.gpu is not None and (isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0):
            raise self.error(
                "gpu",
                "is not a GPU count",
                value=self.gpu,
                accepted="give a whole number >= 0, or None",
            )
        factor = self.retry_memory_factor
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor <= 16):
            raise self.error(
                "retry_memory_factor",
                "is out of range",
                value=factor,
                accepted="use a number from 1 (no growth) to 16, or None",
            )
        if not isinstance(self.sources, MappingProxyType):
            object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @classmethod
    def from_resolved(cls, resolved: ResolvedLike) -> Limits:
        """The limits of a resolved step (``allotment.Resolved``): its step name and the values of
        ``cpu``, ``memory``, ``gpu``, ``gpu_type``, ``gpu_vendor``, ``shared_memory``, ``disk`` and
        ``retry_memory_factor``, with each value's source where the object records one."""
        values = {name: resolved.value(name) for name in FIELD_NAMES}
        sources: dict[str, str] = {}
        winners = getattr(resolved, "winners", None)
        if isinstance(winners, Mapping):
            for name in FIELD_NAMES:
                won = winners.get(name)
                source = getattr(won, "source", None)
                if source is not None:
                    sources[name] = str(source)
        factor = values["retry_memory_factor"]
        return cls(
            step=resolved.step,
            cpu_millicores=values["cpu"],
            memory_mib=values["memory"],
            gpu=values["gpu"],
            gpu_type=values["gpu_type"],
            gpu_vendor=values["gpu_vendor"],
            shared_memory_mib=values["shared_memory"],
            disk_mib=values["disk"],
            retry_memory_factor=None if factor is None else float(factor),
            sources=sources,
        )

    def source_of(self, name: str) -> str | None:
        """Where ``name``'s value came from, when known."""
        return self.sources.get(name)

    def error(self, field: str, problem: str, *, value: object, accepted: str) -> AllotmentError:
        """The error for ``field`` of this step: ``problem``, naming the step, the value, where it came from and what is accepted."""
        return AllotmentError(problem, step=self.step, field=field, value=value, source=self.source_of(field), accepted=accepted)

    def with_memory(self, memory_mib: int, source: str) -> Limits:
        """These limits with another memory cap (a retry's grown memory), ``source`` saying why."""
        sources = dict(self.sources)
        sources["memory"] = source
        return dataclasses.replace(self, memory_mib=memory_mib, sources=MappingProxyType(sources))

    @property
    def cores(self) -> int | None:
        """Whole cores the step is pinned to: ``ceil(cpu_millicores / 1000)``; None when cpu is not asked."""
        if self.cpu_millicores is None:
            return None
        return -(-self.cpu_millicores // 1000)

    def asked_text(self) -> str:
        """The ask in a table's words: ``2 cpu, 6Gi`` (and ``, 1 gpu`` when GPUs are asked)."""
        parts = []
        if self.cpu_millicores is not None:
            parts.append(cpu_text(self.cpu_millicores))
        if self.memory_mib is not None:
            parts.append(mib_text(self.memory_mib))
        if self.gpu:
            parts.append(f"{self.gpu} gpu")
        return ", ".join(parts) or "-"

    def spec_document(self) -> dict[str, Any]:
        """The limits as the report's ``spec`` object (keys name their units)."""
        return {
            "cpu_millicores": self.cpu_millicores,
            "memory_mib": self.memory_mib,
            "gpu": self.gpu,
            "gpu_type": self.gpu_type,
            "gpu_vendor": self.gpu_vendor,
            "shared_memory_mib": self.shared_memory_mib,
            "disk_mib": self.disk_mib,
            "retry_memory_factor": self.retry_memory_factor,
        }

    def check_vendor(self) -> None:
        """Only NVIDIA GPUs can be handed out here (through ``CUDA_VISIBLE_DEVICES``)."""
        if self.gpu and self.gpu_vendor is not None and self.gpu_vendor not in _NVIDIA:
            raise self.error(
                "gpu_vendor",
                "cannot be honoured by the local backend, which hands out NVIDIA GPUs only (through CUDA_VISIBLE_DEVICES)",
                value=self.gpu_vendor,
                accepted="run this step on a backend with that vendor's GPUs (e.g. --with kubernetes), or use gpu_vendor 'nvidia'",
            )
