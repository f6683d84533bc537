"""Where each spec field lands on every target: the one table that compilers, ``explain`` and faces read.

=================  =====================  ====================  ===============  ==================  =========
field              Kubernetes             AWS Batch             Airflow          Argo parameter      held as
                   (requests/limits key)  (resourceRequirement  (BaseOperator    (``<template>-…``)
                                          ``type``)             ``resources``)
=================  =====================  ====================  ===============  ==================  =========
``cpu``            ``cpu``                ``VCPU``              ``cpus``         ``cpu``             millicores
``memory``         ``memory``             ``MEMORY``            ``ram``          ``memory``          MiB
``gpu``            the vendor's key       ``GPU``               ``gpus``         ``gpu``             count
``disk``           ``ephemeral-storage``  (job definition)      ``disk``         ``disk``            MiB
``shared_memory``  (volume ``dshm``)      (job definition)      —                ``shared-memory``   MiB
=================  =====================  ====================  ===============  ==================  =========

A GPU's Kubernetes key depends on the vendor (:data:`GPU_VENDOR_KEYS`) and, for an NVIDIA MIG
profile, on the ``gpu_type`` (``nvidia.com/mig-1g.10gb``): :func:`gpu_key`. Shared memory is no
container resource but a memory-backed ``emptyDir`` named :data:`SHM_VOLUME` mounted at
:data:`SHM_PATH`. Every other module takes these names from here (``git grep ephemeral-storage``
finds only this file in the package and its faces). Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "CONTAINER_KEYS",
    "GPU_VENDOR_KEYS",
    "MIG_PROFILE",
    "NVIDIA_GPU",
    "SHM_PATH",
    "SHM_VOLUME",
    "TARGETS",
    "FieldTargets",
    "field_of_key",
    "gpu_key",
    "gpu_of_key",
    "kubernetes_key",
]


@dataclass(frozen=True)
class FieldTargets:
    """Where one spec field goes on each target (None: it has no such place)."""

    field: str
    unit: str
    """The unit the spec holds it in: ``millicores``, ``MiB`` or ``count``."""
    kubernetes: str | None
    """Its key in a container's ``requests``/``limits`` (None for ``gpu``: see :func:`gpu_key`)."""
    batch: str | None
    """Its ``resourceRequirements`` ``type`` on AWS Batch EC2 and Fargate."""
    airflow: str | None
    """Its key in Airflow's BaseOperator ``resources`` (``ram`` and ``disk`` in MiB)."""
    parameter: str | None
    """The suffix of its Argo submit-time parameter (``train-memory``)."""


TARGETS: Final[Mapping[str, FieldTargets]] = MappingProxyType(
    {
        "cpu": FieldTargets("cpu", "millicores", kubernetes="cpu", batch="VCPU", airflow="cpus", parameter="cpu"),
        "memory": FieldTargets("memory", "MiB", kubernetes="memory", batch="MEMORY", airflow="ram", parameter="memory"),
        "gpu": FieldTargets("gpu", "count", kubernetes=None, batch="GPU", airflow="gpus", parameter="gpu"),
        "disk": FieldTargets("disk", "MiB", kubernetes="ephemeral-storage", batch=None, airflow="disk", parameter="disk"),
        "shared_memory": FieldTargets("shared_memory", "MiB", kubernetes=None, batch=None, airflow=None, parameter="shared-memory"),
    }
)
"""Field -> its targets, for the fields that have any, in the order they are shown."""

CONTAINER_KEYS: Final[tuple[str, ...]] = tuple(t.kubernetes for t in TARGETS.values() if t.kubernetes)
"""The native container resource keys allotment sets (``cpu``, ``memory``, ``ephemeral-storage``), in output order."""

GPU_VENDOR_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "nvidia": "nvidia.com/gpu",
        "amd": "amd.com/gpu",
        "intel": "gpu.intel.com/i915",
        "habana": "habana.ai/gaudi",
        "neuron": "aws.amazon.com/neuron",
    }
)
"""GPU vendor name -> its Kubernetes extended-resource key."""

NVIDIA_GPU: Final = GPU_VENDOR_KEYS["nvidia"]

MIG_PROFILE: Final = re.compile(r"[1-7]g\.[0-9]+gb")
"""An NVIDIA MIG profile such as ``1g.10gb`` (resource key ``nvidia.com/mig-1g.10gb``)."""

_MIG_KEY_PREFIX: Final = "nvidia.com/mig-"

SHM_VOLUME: Final = "dshm"
"""The name of the memory-backed volume that sizes ``/dev/shm``."""
SHM_PATH: Final = "/dev/shm"


def gpu_key(vendor: str | None, gpu_type: str | None = None) -> str:
    """The extended-resource key of a GPU: the vendor's (default nvidia; an explicit key is kept),
    or ``nvidia.com/mig-<profile>`` when ``gpu_type`` is a MIG profile."""
    if gpu_type is not None and MIG_PROFILE.fullmatch(gpu_type):
        return f"{_MIG_KEY_PREFIX}{gpu_type}"
    vendor = vendor or "nvidia"
    return GPU_VENDOR_KEYS.get(vendor, vendor)


def kubernetes_key(field: str, vendor: str | None = None, gpu_type: str | None = None) -> str | None:
    """The container resource key of ``field`` (None for fields that are no container resource)."""
    if field == "gpu":
        return gpu_key(vendor, gpu_type)
    targets = TARGETS.get(field)
    return targets.kubernetes if targets else None


def field_of_key(key: str, gpu: str | None) -> str | None:
    """The spec field a container resource key carries; ``gpu``: this step's GPU key (None: no GPU)."""
    if gpu is not None and key == gpu:
        return "gpu"
    return next((t.field for t in TARGETS.values() if t.kubernetes == key), None)


def gpu_of_key(key: str) -> tuple[str, str | None] | None:
    """``(gpu_vendor, gpu_type)`` that a container resource key names when it is a known GPU key
    (a vendor's key of :data:`GPU_VENDOR_KEYS`, or an NVIDIA MIG key, whose profile is the
    ``gpu_type``); None for any other key."""
    for vendor, vendor_key in GPU_VENDOR_KEYS.items():
        if key == vendor_key:
            return vendor, None
    if key.startswith(_MIG_KEY_PREFIX) and MIG_PROFILE.fullmatch(key[len(_MIG_KEY_PREFIX) :]):
        return "nvidia", key[len(_MIG_KEY_PREFIX) :]
    return None
