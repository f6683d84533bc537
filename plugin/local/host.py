"""This machine as the local backend sees it: the cores this process may use, its NVIDIA GPUs
(found without a GPU library), where a memory cgroup can be made, ``/dev/shm`` and the disks.

GPUs are read, in this order, from:

1. ``CUDA_VISIBLE_DEVICES`` when this process already has it: only those devices exist for it,
   and a step gets a subset of the same entries, so they mean what they meant here;
2. ``/proc/driver/nvidia/gpus/<PCI bus id>/information`` (the NVIDIA kernel driver): model and UUID
   per GPU, in PCI bus order; a GPU the driver lists as excluded, or whose ``/dev/nvidia<minor>``
   node is missing where other nodes exist (a container), is left out;
3. ``/dev/nvidia<N>`` device nodes (no model known).

A step gets its GPUs as ``CUDA_VISIBLE_DEVICES=<UUID>,...``, or as indices with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` where the UUIDs are unknown (so index i is the i-th GPU in PCI bus
order, the order ``nvidia-smi`` numbers them in).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .cgroups import MemoryCgroupSupport, find_memory_cgroup

__all__ = ["Gpu", "Host", "find_gpus"]

_DEV_NVIDIA: Final = re.compile(r"nvidia([0-9]+)")
_UNKNOWN_UUID: Final = "?"
_NO_DEVICES: Final = ("", "-1", "none", "NoDevFiles", "void")


@dataclass(frozen=True)
class Gpu:
    """One GPU a step can be given. ``ident`` is what goes into ``CUDA_VISIBLE_DEVICES`` (a UUID such
    as ``GPU-6a0e...``, or an index / the parent's own entry); ``model`` the driver's name (e.g.
    ``NVIDIA H100 80GB HBM3``) where known; ``pci_bus`` its PCI bus id where known."""

    ident: str
    model: str | None = None
    pci_bus: str | None = None
    uuid: str | None = None


def _driver_gpus(proc: Path, dev: Path) -> list[Gpu]:
    """GPUs listed by the NVIDIA kernel driver under ``/proc/driver/nvidia/gpus``, in PCI bus order."""
    root = proc / "driver" / "nvidia" / "gpus"
    try:
        buses = sorted(p.name for p in root.iterdir())
    except OSError:
        return []
    nodes = _device_minors(dev)
    found: list[tuple[str, dict[str, str]]] = []
    for bus in buses:
        try:
            text = (root / bus / "information").read_text()
        except OSError:
            continue
        info = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        if info.get("GPU Excluded", "No").lower().startswith("y"):
            continue
        minor = info.get("Device Minor", "")
        if nodes and minor.isdigit() and int(minor) not in nodes:
            continue  # a container that does not expose this GPU
        found.append((bus, info))
    uuids = [info.get("GPU UUID", "") for _, info in found]
    by_uuid = all(u.startswith("GPU-") and _UNKNOWN_UUID not in u for u in uuids)
    return [
        Gpu(
            ident=uuids[i] if by_uuid else str(i),
            model=info.get("Model") or None,
            pci_bus=bus,
            uuid=uuids[i] if uuids[i].startswith("GPU-") and _UNKNOWN_UUID not in uuids[i] else None,
        )
        for i, (bus, info) in enumerate(found)
    ]


def _device_minors(dev: Path) -> set[int]:
    try:
        names = [p.name for p in dev.iterdir()]
    except OSError:
        return set()
    return {int(m[1]) for n in names if (m := _DEV_NVIDIA.fullmatch(n))}


def find_gpus(
    environ: Mapping[str, str] | None = None, proc: Path = Path("/proc"), dev: Path = Path("/dev")
) -> tuple[tuple[Gpu, ...], str]:
    """The NVIDIA GPUs this process can hand to a step, and a sentence saying where they were found."""
    env = os.environ if environ is None else environ
    physical = _driver_gpus(proc, dev)
    source = "/proc/driver/nvidia/gpus"
    if not physical:
        minors = sorted(_device_minors(dev))
        physical = [Gpu(ident=str(i)) for i in range(len(minors))]
        source = "/dev/nvidia<N>"
    if "CUDA_VISIBLE_DEVICES" in env:
        text = env["CUDA_VISIBLE_DEVICES"].strip()
        entries = [] if text in _NO_DEVICES else [e.strip() for e in text.split(",") if e.strip()]
        by_uuid = {g.uuid: g for g in physical if g.uuid}
        pci_order = env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID"
        gpus = []
        for entry in entries:
            known = by_uuid.get(entry)
            if known is None and pci_order and entry.isdigit() and int(entry) < len(physical):
                known = physical[int(entry)]
            gpus.append(
                Gpu(
                    ident=entry,
                    model=known.model if known else None,
                    pci_bus=known.pci_bus if known else None,
                    uuid=known.uuid if known else None,
                )
            )
        return tuple(gpus), f"CUDA_VISIBLE_DEVICES={text!r} of this process"
    if not physical:
        return (), "no NVIDIA GPU: no /proc/driver/nvidia/gpus and no /dev/nvidia<N>"
    return tuple(physical), source


def _memory_total_mib(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class Host:
    """What the local backend knows of this machine.

    ``cores``: CPU numbers this process may run on (its affinity), None where the platform has no
    affinity. ``gpus``: NVIDIA GPUs a step can be given (``gpu_source`` says how they were found).
    ``memory_cgroup``: where a step's memory cgroup can be made, None when nowhere (``cgroup_note``
    says why). ``shm``: the shared-memory mount checked against ``shared_memory``. ``disk_paths``:
    directories whose free space is checked against ``disk``. ``lock_dir``: where steps running at the
    same time on this machine claim cores and GPUs (lock files), so that they get different ones.
    """

    cores: tuple[int, ...] | None
    gpus: tuple[Gpu, ...] = ()
    gpu_source: str = "not probed"
    memory_cgroup: MemoryCgroupSupport | None = None
    cgroup_note: str = "not probed"
    shm: Path = Path("/dev/shm")
    disk_paths: tuple[Path, ...] = ()
    lock_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / f"allotment-local-{os.getuid()}")
    hostname: str = ""
    kernel: str = ""
    memory_total_mib: int | None = None

    @classmethod
    def probe(cls, environ: Mapping[str, str] | None = None) -> Host:
        """Look at this machine now (about a millisecond; it makes and removes a probe cgroup)."""
        env = dict(os.environ if environ is None else environ)
        cores = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else None
        gpus, gpu_source = find_gpus(env)
        if sys.platform.startswith("linux"):
            cgroup, note = find_memory_cgroup(environ=env)
        else:
            cgroup, note = None, f"no cgroups on {sys.platform}"
        disks = []
        for candidate in (Path.cwd(), Path(tempfile.gettempdir())):
            if candidate not in disks:
                disks.append(candidate)
        return cls(
            cores=cores,
            gpus=gpus,
            gpu_source=gpu_source,
            memory_cgroup=cgroup,
            cgroup_note=note,
            disk_paths=tuple(disks),
            hostname=socket.gethostname(),
            kernel=platform.release(),
            memory_total_mib=_memory_total_mib(Path("/proc")),
        )

    def document(self) -> dict[str, object]:
        """The host as the report's ``host`` object."""
        return {
            "hostname": self.hostname,
            "platform": sys.platform,
            "kernel": self.kernel,
            "python": platform.python_version(),
            "cores": None if self.cores is None else list(self.cores),
            "memory_total_mib": self.memory_total_mib,
            "gpus": [{"id": g.ident, "model": g.model, "pci_bus": g.pci_bus} for g in self.gpus],
            "gpu_source": self.gpu_source,
            "memory_cgroup": None if self.memory_cgroup is None else self.memory_cgroup.method,
            "memory_cgroup_note": self.cgroup_note,
        }
