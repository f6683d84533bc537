"""The AWS Batch compiler: a resolved spec to plain SubmitJob and job-definition data
(docs/design.md, "AWS Batch").

No boto3 here (``import allotment`` stays light); :mod:`allotment.batch.jobdefs` registers the
job-definition revisions, taking any boto3-like client. Values AWS wants as strings are
strings. Every rounding is reported in :attr:`BatchPlan.notes`, which ``allotment explain``
and ``allotment render --target batch`` show.

=============  ====================================  ===================================  ===========================================
spec           ``ec2`` (EC2 / Spot)                  ``fargate``                          ``eks`` (EKS-backed Batch)
=============  ====================================  ===================================  ===========================================
cpu            VCPU, whole vCPUs >= 1 (rounded up)   VCPU of the smallest valid pair      ``requests.cpu``, a multiple of 0.25 (up)
memory         MEMORY, MiB >= 4                      MEMORY of that pair (rounded up)     ``requests`` = ``limits`` ``memory`` ``<N>Mi``
gpu            GPU (count)                           error: Fargate has no GPUs           the NVIDIA GPU key, requests = limits
shared_memory  job definition ``linuxParameters``    error                                job definition volume ``emptyDir`` Memory at
               ``.sharedMemorySize``                                                      ``/dev/shm``
disk           warning: launch template sizes it     job definition ``ephemeralStorage``  the disk key, requests = limits
                                                     ``.sizeInGiB`` (21–200, rounded up)
=============  ====================================  ===================================  ===========================================

The platform of a step: ``@batch(platform=...)``, else the caller's (the CLI's
``--platform``, an operator's ``platform=``; the caller names its source), else ``ec2``.
Keys on EKS come from :mod:`allotment.targets`. AWS Batch schedules whole NVIDIA GPUs only, so another
``gpu_vendor`` or a MIG ``gpu_type`` is an error; a ``gpu_type`` is chosen by the job
queue's compute environment (its instance types), which allotment notes but does not set.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..errors import AllotmentError, AllotmentWarning
from ..model import describe_value
from ..targets import MIG_PROFILE, NVIDIA_GPU, SHM_PATH, SHM_VOLUME, TARGETS

if TYPE_CHECKING:  # annotations only
    from ..resolve import Resolved

__all__ = [
    "DEFAULT_PLATFORM",
    "EPHEMERAL_STORAGE_GIB",
    "FARGATE_PAIRS",
    "JOB_DEFINITION_PLACEHOLDER",
    "JOB_QUEUE_PLACEHOLDER",
    "PLATFORMS",
    "BatchPlan",
    "batch_platform",
    "compile_batch",
    "fargate_size",
    "format_vcpu",
    "job_name",
]

PLATFORMS: Final = ("ec2", "fargate", "eks")
"""AWS Batch platforms: EC2 (and Spot) compute environments, Fargate, EKS-backed Batch."""

DEFAULT_PLATFORM: Final = "ec2"

JOB_QUEUE_PLACEHOLDER: Final = "<job-queue>"
"""``jobQueue`` of a rendered SubmitJob when the step's ``@batch`` names no ``queue``."""

JOB_DEFINITION_PLACEHOLDER: Final = "<job-definition>"
"""``jobDefinition`` of a rendered SubmitJob when the step's ``@batch`` names no ``job_definition``."""


def _steps(start: int, stop: int, step: int) -> tuple[int, ...]:
    return tuple(range(start, stop + 1, step))


FARGATE_PAIRS: Final[Mapping[int, tuple[int, ...]]] = MappingProxyType(
    {
        250: (512, 1024, 2048),
        500: _steps(1024, 4096, 1024),
        1000: _steps(2048, 8192, 1024),
        2000: _steps(4096, 16384, 1024),
        4000: _steps(8192, 30720, 1024),
        8000: _steps(16384, 61440, 4096),
        16000: _steps(32768, 122880, 8192),
        32000: (61440, 122880, 249856),
    }
)
"""Valid Fargate sizes: vCPU in millicores -> the MEMORY values (MiB) allowed with it. The source
of truth is the ``ResourceRequirement.value`` documentation in botocore's Batch model; a
test parses it and compares."""

EPHEMERAL_STORAGE_GIB: Final = (21, 200)
"""Fargate ``ephemeralStorage.sizeInGiB``: the smallest and largest size AWS accepts."""

EC2_MIN_MEMORY: Final = 4
"""MEMORY, MiB: "You must specify at least 4 MiB of memory for a job" (EC2 and EKS)."""

EKS_CPU_STEP: Final = 250
"""EKS-backed Batch takes cpu in multiples of 0.25 vCPU (millicores here)."""


_NVIDIA: Final = ("nvidia", NVIDIA_GPU)
_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class BatchPlan:
    """What one step becomes on AWS Batch.

    ``submit_overrides``: the SubmitJob members allotment sets, ``{"containerOverrides": ...}``
    (ec2, fargate) or ``{"eksPropertiesOverride": ...}`` (eks). ``job_definition_fields``:
    fields only a job definition can carry (possibly empty), as a fragment of a
    RegisterJobDefinition request that :func:`allotment.batch.jobdefs.derive_job_definition`
    merges into the user's base job definition. ``effects``: field -> what it becomes, in
    words. ``notes`` include every rounding; ``warnings`` are values left out.
    """

    step: str
    platform: str
    submit_overrides: Mapping[str, Any]
    job_definition_fields: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    effects: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    platform_source: str = "default"

    def submit_job_request(self, job_name: str, job_queue: str, job_definition: str) -> dict[str, Any]:
        """A complete SubmitJob request (a fresh copy, safe to change)."""
        return {"jobName": job_name, "jobQueue": job_queue, "jobDefinition": job_definition, **copy.deepcopy(dict(self.submit_overrides))}

    @property
    def needs_job_definition(self) -> bool:
        """True when a job-definition revision must carry some of the spec."""
        return bool(self.job_definition_fields)


def batch_platform(resolved: Resolved, platform: str | None = None, platform_source: str = "--platform") -> tuple[str, str]:
    """The platform a step runs on, and where that came from: ``@batch(platform=...)``, else
    ``platform`` (the caller's, named by ``platform_source``: the CLI's ``--platform``, an
    operator's ``platform=``), else ``ec2``."""
    chosen = resolved.options.get("platform")
    if chosen:
        source = "@batch(platform=...)"
    elif platform:
        chosen, source = platform, platform_source
    else:
        chosen, source = DEFAULT_PLATFORM, "default"
    if chosen not in PLATFORMS:
        raise AllotmentError(
            "is not an AWS Batch platform",
            step=resolved.step,
            field="platform",
            value=chosen,
            source=source,
            accepted=f"use one of {', '.join(PLATFORMS)}",
        )
    return str(chosen), source


def format_vcpu(millicores: int) -> str:
    """A vCPU count as AWS Batch writes it: ``1000 -> "1"``, ``250 -> "0.25"``, ``1500 -> "1.5"``."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return str(Decimal(millicores) / Decimal(1000))


def fargate_size(millicores: int, mib: int) -> tuple[int, int] | None:
    """The smallest valid Fargate (vCPU millicores, MEMORY MiB) pair holding both, or None.

    Smallest vCPU first, then the smallest memory allowed with it; with AWS's table this pair
    is also the smallest in both dimensions (no valid pair is smaller in one and not larger in
    the other), hence the cheapest.
    """
    for vcpu in sorted(FARGATE_PAIRS):
        if vcpu < millicores:
            continue
        memory = next((m for m in FARGATE_PAIRS[vcpu] if m >= mib), None)
        if memory is not None:
            return vcpu, memory
    return None


def job_name(step: str) -> str:
    """A valid SubmitJob ``jobName`` for a step: up to 128 letters, digits, ``-`` and ``_``,
    starting with a letter or digit (other characters become ``-``)."""
    name = _JOB_NAME_BAD.sub("-", step).lstrip("-_")
    return (name or "job")[:128]


class _Compiler:
    """Builds one :class:`BatchPlan`; holds the notes and warnings on the way."""

    def __init__(self, resolved: Resolved, platform: str) -> None:
        self.resolved = resolved
        self.platform = platform
        self.notes: list[str] = list(resolved.notes)
        self.warnings: list[str] = []
        self.effects: dict[str, str] = {}

    def value(self, name: str) -> Any:
        return self.resolved.value(name)

    def shown(self, name: str) -> str:
        return describe_value(name, self.value(name))

    def source(self, name: str) -> str:
        won = self.resolved.winners.get(name)
        return str(won.source) if won is not None else "(not set)"

    def error(self, name: str, problem: str, accepted: str) -> AllotmentError:
        return AllotmentError(
            problem, step=self.resolved.step, field=name, value=self.shown(name), source=self.source(name), accepted=accepted
        )

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- checks common to every platform --------------------------------------------------

    def check_gpu(self) -> None:
        gpu, vendor, gpu_type = self.value("gpu"), self.value("gpu_vendor"), self.value("gpu_type")
        if not gpu:
            if gpu == 0:
                self.effects["gpu"] = "no GPU"
            return
        if vendor is not None and vendor not in _NVIDIA:
            raise self.error(
                "gpu_vendor",
                f"is not available on AWS Batch ({self.platform}): Batch schedules NVIDIA GPUs only",
                "drop gpu_vendor or set it to 'nvidia', or run this step on kubernetes",
            )
        if gpu_type is not None:
            if MIG_PROFILE.fullmatch(str(gpu_type)):
                raise self.error(
                    "gpu_type",
                    f"is a MIG profile; AWS Batch ({self.platform}) schedules whole GPUs only",
                    "use a whole-GPU gpu_type such as 'A100-80GB', or run this step on kubernetes",
                )
            self.effects["gpu_type"] = "chosen by the job queue's compute environment (its instance types); not set by allotment"
            self.note(
                f"gpu_type {gpu_type!r}: on AWS Batch the job queue's compute environment (its instance types) decides the GPU "
                "model; allotment does not set it"
            )
        if vendor is not None:
            self.effects["gpu_vendor"] = "NVIDIA GPUs (the only kind AWS Batch schedules)"

    def retry_effect(self) -> None:
        factor = self.value("retry_memory_factor")
        if factor is not None:
            self.effects["retry_memory_factor"] = f"memory x{factor} after each OOM kill (OutOfMemoryError; applied at submit)"

    # -- platforms ------------------------------------------------------------------------

    def ec2(self) -> tuple[dict[str, Any], dict[str, Any]]:
        requirements: list[dict[str, str]] = []
        cpu, memory, gpu = self.value("cpu"), self.value("memory"), self.value("gpu")
        if cpu is not None:
            vcpu = max(1, math.ceil(cpu / 1000))
            requirements.append({"type": "VCPU", "value": str(vcpu)})
            if vcpu * 1000 != cpu:
                reason = "at least 1" if cpu < 1000 else "whole vCPUs only"
                self.note(f"cpu {self.shown('cpu')} rounded up to VCPU {vcpu}: AWS Batch on EC2 takes {reason}")
                self.effects["cpu"] = f"containerOverrides VCPU {vcpu!s} (rounded up from {self.shown('cpu')})"
            else:
                self.effects["cpu"] = f"containerOverrides VCPU {vcpu!s}"
        if memory is not None:
            mib = max(EC2_MIN_MEMORY, memory)
            requirements.append({"type": "MEMORY", "value": str(mib)})
            self.effects["memory"] = f"containerOverrides MEMORY {mib} (MiB)"
            if mib != memory:
                self.note(f"memory {self.shown('memory')} raised to MEMORY {mib}: AWS Batch needs at least {EC2_MIN_MEMORY} MiB")
                self.effects["memory"] += f" (raised from {self.shown('memory')})"
        if gpu:
            requirements.append({"type": "GPU", "value": str(gpu)})
            self.effects["gpu"] = f"containerOverrides GPU {gpu}"
        job_definition: dict[str, Any] = {}
        shm = self.value("shared_memory")
        if shm is not None:
            job_definition["containerProperties"] = {"linuxParameters": {"sharedMemorySize": int(shm)}}
            self.effects["shared_memory"] = (
                f"job definition linuxParameters.sharedMemorySize {shm} (MiB; a derived revision, not overridable at submit)"
            )
            self.note(
                f"shared_memory {self.shown('shared_memory')} needs a job-definition revision with linuxParameters.sharedMemorySize "
                f"{shm}; allotment derives it from the base job definition at submit"
            )
        if self.value("disk") is not None:
            text = (
                f"step {self.resolved.step!r}: disk={self.shown('disk')!r} from {self.source('disk')} is not applied on AWS Batch EC2: "
                "an EC2 job's disk is sized by the compute environment's launch template (its volumes); size it there"
            )
            self.warnings.append(text)
            self.note(text)
            self.effects["disk"] = "not applied: sized by the compute environment's launch template (warning)"
        return {"containerOverrides": {"resourceRequirements": requirements}}, job_definition

    def fargate(self) -> tuple[dict[str, Any], dict[str, Any]]:
        gpu, shm = self.value("gpu"), self.value("shared_memory")
        if gpu:
            raise self.error("gpu", "cannot run on AWS Batch Fargate: Fargate has no GPUs", "set gpu to 0, or use platform 'ec2' or 'eks'")
        if shm is not None:
            raise self.error(
                "shared_memory",
                "cannot be set on AWS Batch Fargate: Fargate takes no linuxParameters.sharedMemorySize (/dev/shm size)",
                "drop shared_memory for this step, or use platform 'ec2' or 'eks'",
            )
        cpu, memory = int(self.value("cpu") or 0), int(self.value("memory") or 0)
        largest_vcpu = max(FARGATE_PAIRS)
        largest_memory = max(m for ms in FARGATE_PAIRS.values() for m in ms)
        if cpu > largest_vcpu:
            raise self.error(
                "cpu",
                f"is more than Fargate's largest size ({format_vcpu(largest_vcpu)} vCPU)",
                f"ask for at most {format_vcpu(largest_vcpu)} vCPU, or use platform 'ec2' or 'eks'",
            )
        if memory > largest_memory:
            raise self.error(
                "memory",
                f"is more than Fargate's largest size ({largest_memory} MiB)",
                f"ask for at most {describe_value('memory', largest_memory)} ({largest_memory} MiB), or use platform 'ec2' or 'eks'",
            )
        size = fargate_size(cpu, memory)
        if size is None:  # pragma: no cover - every cpu <= 32 vCPU and memory <= the largest fits
            raise self.error("memory", "fits no Fargate size", "see the Fargate sizes in docs/design.md")
        vcpu, mib = size
        pair = f"Fargate size {format_vcpu(vcpu)} vCPU / {mib} MiB"
        requirements: list[dict[str, str]] = []
        if self.value("cpu") is not None:
            requirements.append({"type": "VCPU", "value": format_vcpu(vcpu)})
            self.effects["cpu"] = f"containerOverrides VCPU {format_vcpu(vcpu)} ({pair})"
            if vcpu != cpu:
                self.note(f"cpu {self.shown('cpu')} rounded up to VCPU {format_vcpu(vcpu)}: the smallest valid {pair}")
                self.effects["cpu"] += f", rounded up from {self.shown('cpu')}"
        if self.value("memory") is not None:
            requirements.append({"type": "MEMORY", "value": str(mib)})
            self.effects["memory"] = f"containerOverrides MEMORY {mib} ({pair})"
            if mib != memory:
                self.note(f"memory {self.shown('memory')} rounded up to MEMORY {mib}: the smallest valid {pair}")
                self.effects["memory"] += f", rounded up from {self.shown('memory')}"
        job_definition: dict[str, Any] = {}
        disk = self.value("disk")
        if disk is not None:
            low, high = EPHEMERAL_STORAGE_GIB
            gib = math.ceil(disk / 1024)
            if gib > high:
                raise self.error(
                    "disk",
                    f"is more than Fargate's largest ephemeral storage ({high} GiB)",
                    f"ask for at most {high}Gi, or use platform 'ec2' (disk from the launch template) or 'eks'",
                )
            size_gib = max(low, gib)
            job_definition["containerProperties"] = {"ephemeralStorage": {"sizeInGiB": size_gib}}
            self.effects["disk"] = f"job definition ephemeralStorage.sizeInGiB {size_gib} (a derived revision)"
            if size_gib * 1024 != disk:
                why = f"Fargate's smallest ephemeral storage is {low} GiB" if gib < low else "Fargate sizes ephemeral storage in whole GiB"
                self.note(f"disk {self.shown('disk')} rounded up to ephemeralStorage.sizeInGiB {size_gib}: {why}")
                self.effects["disk"] += f", rounded up from {self.shown('disk')}"
            self.note(
                f"disk needs a job-definition revision with ephemeralStorage.sizeInGiB {size_gib}; allotment derives it from the base "
                "job definition at submit"
            )
        return {"containerOverrides": {"resourceRequirements": requirements}}, job_definition

    def eks(self, container: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        cpu, memory, gpu, disk = self.value("cpu"), self.value("memory"), self.value("gpu"), self.value("disk")
        if cpu is not None:
            rounded = max(EKS_CPU_STEP, math.ceil(cpu / EKS_CPU_STEP) * EKS_CPU_STEP)
            key = str(TARGETS["cpu"].kubernetes)
            requests[key] = format_vcpu(rounded)
            self.effects["cpu"] = f"eksPropertiesOverride requests.{key} {requests[key]}"
            if rounded != cpu:
                self.note(f"cpu {self.shown('cpu')} rounded up to cpu {requests[key]}: EKS-backed Batch takes multiples of 0.25 vCPU")
                self.effects["cpu"] += f" (rounded up from {self.shown('cpu')})"
        if memory is not None:
            mib = max(EC2_MIN_MEMORY, memory)
            key = str(TARGETS["memory"].kubernetes)
            requests[key] = limits[key] = f"{mib}Mi"
            self.effects["memory"] = f"eksPropertiesOverride requests/limits.memory {mib}Mi"
            if mib != memory:
                self.note(f"memory {self.shown('memory')} raised to {mib}Mi: AWS Batch needs at least {EC2_MIN_MEMORY} MiB")
                self.effects["memory"] += f" (raised from {self.shown('memory')})"
        if disk is not None:
            key = str(TARGETS["disk"].kubernetes)
            requests[key] = limits[key] = f"{disk}Mi"
            self.effects["disk"] = f"eksPropertiesOverride requests/limits.{key} {disk}Mi"
        if gpu:
            requests[NVIDIA_GPU] = limits[NVIDIA_GPU] = str(gpu)
            self.effects["gpu"] = f"eksPropertiesOverride requests/limits.{NVIDIA_GPU} {gpu}"
        entry: dict[str, Any] = {}
        if container:
            entry["name"] = container
        entry["resources"] = {"requests": requests, "limits": limits} if limits else {"requests": requests}
        job_definition: dict[str, Any] = {}
        shm = self.value("shared_memory")
        if shm is not None:
            job_definition["eksProperties"] = {
                "podProperties": {
                    "volumes": [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm}Mi"}}],
                    "containers": [{"volumeMounts": [{"name": SHM_VOLUME, "mountPath": SHM_PATH}]}],
                }
            }
            self.effects["shared_memory"] = (
                f"job definition volume {SHM_VOLUME} (emptyDir Memory, {shm}Mi) at {SHM_PATH} (a derived revision)"
            )
            self.note(
                f"shared_memory {self.shown('shared_memory')} needs a job-definition revision with an emptyDir Memory volume at "
                f"{SHM_PATH}; allotment derives it from the base job definition at submit"
            )
        return {"eksPropertiesOverride": {"podProperties": {"containers": [entry]}}}, job_definition


def compile_batch(
    resolved: Resolved,
    platform: str | None = None,
    *,
    platform_source: str = "--platform",
    container: str | None = None,
    warn: bool = True,
) -> BatchPlan:
    """Compile one resolved step for AWS Batch.

    ``platform``: the caller's choice, named by ``platform_source`` (the CLI's ``--platform``, an
    operator's ``platform=``); the step's
    ``@batch(platform=...)`` wins over it, ``ec2`` is the default. ``container``: on ``eks``,
    the name of the job definition's container to override (default: none named, the first).
    ``warn``: also issue each warning as an :class:`AllotmentWarning` (they are always in
    :attr:`BatchPlan.warnings`). Raises :class:`~allotment.errors.AllotmentError` for what the
    platform cannot run (a GPU or shared memory on Fargate, a size beyond Fargate's largest...).
    """
    chosen, source = batch_platform(resolved, platform, platform_source)
    compiler = _Compiler(resolved, chosen)
    if platform and source != platform_source and platform != chosen:
        compiler.note(f"platform {chosen} from {source} (not {platform} from the caller)")
    if chosen == "fargate":
        overrides, job_definition = compiler.fargate()
    else:
        compiler.check_gpu()
        overrides, job_definition = compiler.ec2() if chosen == "ec2" else compiler.eks(container)
    compiler.retry_effect()
    if warn:
        for text in compiler.warnings:
            warnings.warn(text, AllotmentWarning, stacklevel=2)
    return BatchPlan(
        step=resolved.step,
        platform=chosen,
        submit_overrides=overrides,
        job_definition_fields=job_definition,
        notes=tuple(compiler.notes),
        warnings=tuple(compiler.warnings),
        effects=MappingProxyType(compiler.effects),
        platform_source=source,
    )
