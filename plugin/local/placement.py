"""Where a step runs on this machine: which cores and GPUs, which memory cap, after the checks.

:func:`place` checks the limits against the host (GPUs, ``/dev/shm``, disk) and raises
:class:`~allotment.AllotmentError` for what this machine cannot give; otherwise it claims cores and
GPUs and returns a :class:`Placement`, to be released when the step ends.

Cores: ``ceil(cpu)`` of the cores this process may use (its affinity); all of them, said once, when
the machine has fewer. Steps running at the same time on this machine claim cores and GPUs through
lock files (``fcntl.flock`` in ``Host.lock_dir``; a claim ends with the process that holds it), so
two steps get different cores while enough are free; when not, the step shares busy ones and its
notes say so. Nothing waits for a free core or GPU (there is no queue, unlike a Kubernetes Pending pod).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, Literal

from ..errors import AllotmentError
from .host import Gpu, Host
from .limits import Limits
from .units import mib_text

__all__ = ["MEMORY_CAPS", "MemoryCap", "Placement", "gpu_model_matches", "place", "say_once"]

MemoryCap = Literal["auto", "cgroup", "rlimit", "none"]
MEMORY_CAPS: Final = ("auto", "cgroup", "rlimit", "none")
"""``auto``: a cgroup where one can be made, else an rlimit. ``cgroup``: a cgroup or an error.
``rlimit``: ``RLIMIT_DATA`` per process. ``none``: no cap (measured only)."""

_LOG = logging.getLogger("allotment.local")
_SAID: set[str] = set()
_MIG: Final = re.compile(r"[1-7]g\.[0-9]+gb")
_TOKENS: Final = re.compile(r"[\s_-]+")
_LOCK_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]+")


def say_once(text: str) -> None:
    """Log ``text`` as a warning the first time this process says it (logger ``allotment.local``)."""
    if text not in _SAID:
        _SAID.add(text)
        _LOG.warning("%s", text)


def gpu_model_matches(gpu_type: str, model: str) -> bool:
    """True when every token of ``gpu_type`` (split at ``-``, ``_`` and spaces) is a token of the
    driver's model name, ignoring case: ``A100-80GB`` matches ``NVIDIA A100-SXM4-80GB``, ``L4``
    matches ``NVIDIA L4`` but not ``NVIDIA L40S``."""
    wanted = [t for t in _TOKENS.split(gpu_type.lower()) if t]
    have = set(_TOKENS.split(model.lower()))
    return bool(wanted) and all(t in have for t in wanted)


@dataclass
class Placement:
    """Where one step runs. ``cores``: CPU numbers it is pinned to (None: not pinned). ``gpus``: the
    GPUs it sees. ``env``: variables set for it (``CUDA_VISIBLE_DEVICES``, ``CUDA_DEVICE_ORDER``).
    ``memory_method``: ``cgroup-v1``, ``cgroup-v2``, ``rlimit`` or ``none``; ``memory_limit_mib`` the cap
    in MiB. ``notes``: what differs from the ask, in sentences. Release it (or use ``with``) when done."""

    cores: tuple[int, ...] | None
    gpus: tuple[Gpu, ...]
    env: Mapping[str, str]
    memory_method: str
    memory_limit_mib: int | None
    notes: tuple[str, ...] = ()
    _locks: list[int] = field(default_factory=list, repr=False, compare=False)

    def release(self) -> None:
        """Give the claimed cores and GPUs back."""
        while self._locks:
            with contextlib.suppress(OSError):
                os.close(self._locks.pop())

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def document(self) -> dict[str, object]:
        """The placement as the report's ``placement`` object."""
        return {
            "cores": None if self.cores is None else list(self.cores),
            "gpus": [g.ident for g in self.gpus],
            "env": dict(sorted(self.env.items())),
            "memory_cap": {"method": self.memory_method, "limit_mib": self.memory_limit_mib},
        }


class _Claims:
    """Lock files in ``directory``, one per core or GPU; held ones belong to running steps."""

    def __init__(self, directory: Path) -> None:
        self.directory: Path | None = directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            say_once(f"allotment.local: cannot make {directory} ({e.strerror}); steps running at the same time may share cores and GPUs")
            self.directory = None
        self.fds: list[int] = []

    def try_claim(self, name: str) -> bool:
        if self.directory is None:
            return True
        import fcntl

        path = self.directory / f"{_LOCK_NAME_UNSAFE.sub('_', name)}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fds.append(fd)
        return True

    def pick(self, names: Sequence[str], count: int) -> tuple[list[int], list[int]]:
        """Indices of ``count`` of ``names``: free ones first (claimed), then busy ones (shared)."""
        free: list[int] = []
        busy: list[int] = []
        for i, name in enumerate(names):
            if len(free) == count:
                break
            (free if self.try_claim(name) else busy).append(i)
        # The loop tried every name unless it found enough free ones, so the rest are busy.
        return free, busy[: count - len(free)]

    def release(self) -> None:
        while self.fds:
            with contextlib.suppress(OSError):
                os.close(self.fds.pop())


def _free_mib(path: Path) -> tuple[int, int] | None:
    """(free, total) MiB of the filesystem holding ``path``, as an unprivileged process may use it."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize // (1024 * 1024), st.f_blocks * st.f_frsize // (1024 * 1024)


def _check_space(limits: Limits, host: Host) -> None:
    if limits.shared_memory_mib is not None:
        space = _free_mib(host.shm)
        where = f"{host.shm} on this machine"
        if space is None:
            raise limits.error(
                "shared_memory",
                f"needs {where}, which does not exist",
                value=mib_text(limits.shared_memory_mib),
                accepted="run it where /dev/shm is mounted (e.g. --with kubernetes), or drop shared_memory",
            )
        free, total = space
        if free < limits.shared_memory_mib:
            raise limits.error(
                "shared_memory",
                f"is more than {where} has free ({mib_text(free)} free of {mib_text(total)})",
                value=mib_text(limits.shared_memory_mib),
                accepted=f"ask for at most {mib_text(free)} here, or run it on a backend that sizes /dev/shm (e.g. --with kubernetes)",
            )
    if limits.disk_mib is not None:
        seen: set[int] = set()
        for path in host.disk_paths:
            try:
                device = os.stat(path).st_dev
            except OSError:
                continue
            if device in seen:
                continue
            seen.add(device)
            space = _free_mib(path)
            if space is not None and space[0] < limits.disk_mib:
                raise limits.error(
                    "disk",
                    f"is more than {path} has free on this machine ({mib_text(space[0])} free of {mib_text(space[1])})",
                    value=mib_text(limits.disk_mib),
                    accepted=f"ask for at most {mib_text(space[0])} here, free some space, or run it on another backend",
                )


def _gpu_candidates(limits: Limits, host: Host) -> tuple[Gpu, ...]:
    wanted = limits.gpu or 0
    if not wanted:
        return ()
    limits.check_vendor()
    gpus = host.gpus
    if limits.gpu_type is not None:
        if _MIG.fullmatch(limits.gpu_type):
            raise limits.error(
                "gpu_type",
                "is a MIG profile, which the local backend cannot hand out (it gives whole GPUs through CUDA_VISIBLE_DEVICES)",
                value=limits.gpu_type,
                accepted="run this step on Kubernetes (--with kubernetes), or use a whole-GPU type for local runs",
            )
        unknown = [g for g in gpus if g.model is None]
        if unknown:
            raise limits.error(
                "gpu_type",
                f"cannot be checked here: the GPU models of this machine are unknown (GPUs found through {host.gpu_source})",
                value=limits.gpu_type,
                accepted="run it where the NVIDIA driver lists its GPUs in /proc/driver/nvidia/gpus, or without gpu_type",
            )
        matching = tuple(g for g in gpus if g.model is not None and gpu_model_matches(limits.gpu_type, g.model))
        if len(matching) < wanted:
            models = ", ".join(sorted({g.model for g in gpus if g.model})) or "none"
            raise limits.error(
                "gpu_type",
                f"with gpu={wanted} needs {wanted} GPU(s) of that type; this machine has {len(matching)} (its GPUs: {models})",
                value=limits.gpu_type,
                accepted="run it where such GPUs are (e.g. --with kubernetes), or use a gpu_type this machine has",
            )
        gpus = matching
    if len(gpus) < wanted:
        have = "none" if not gpus else f"only {len(gpus)}"
        raise limits.error(
            "gpu",
            f"asks for {wanted} GPU(s) but this machine has {have} ({host.gpu_source})",
            value=wanted,
            accepted=f"ask for at most {len(gpus)} GPU(s) here, or run it on a backend with GPUs (e.g. --with kubernetes)",
        )
    return gpus


def _memory_method(limits: Limits, host: Host, memory_cap: MemoryCap) -> str:
    if memory_cap not in MEMORY_CAPS:
        raise AllotmentError("is not a memory cap", field="memory_cap", value=memory_cap, accepted=f"use one of {', '.join(MEMORY_CAPS)}")
    if limits.memory_mib is None or memory_cap == "none":
        return "none"
    if memory_cap in ("auto", "cgroup") and host.memory_cgroup is not None:
        return host.memory_cgroup.method
    if memory_cap == "cgroup":
        raise limits.error(
            "memory",
            f"cannot be capped by a cgroup on this machine: {host.cgroup_note}",
            value=mib_text(limits.memory_mib),
            accepted="use memory_cap 'auto' or 'rlimit', or name a writable cgroup directory in ALLOTMENT_LOCAL_CGROUP",
        )
    try:
        import resource

        resource.RLIMIT_DATA  # noqa: B018 (not every platform has it)
    except (ImportError, AttributeError):
        say_once(f"allotment.local: no memory cap on {sys.platform} (no cgroup, no RLIMIT_DATA); memory is measured only")
        return "none"
    if memory_cap == "auto":
        say_once(f"allotment.local: memory is capped per process with RLIMIT_DATA, not by a cgroup ({host.cgroup_note})")
    return "rlimit"


def place(limits: Limits, host: Host, memory_cap: MemoryCap = "auto") -> Placement:
    """Check ``limits`` against ``host`` and claim where the step runs.

    Raises :class:`~allotment.AllotmentError` when the machine has too few GPUs (of the asked
    ``gpu_type``), when ``/dev/shm`` or a disk has less free space than ``shared_memory`` /
    ``disk``, or when ``memory_cap='cgroup'`` and no cgroup can be made.
    """
    notes: list[str] = []
    gpu_candidates = _gpu_candidates(limits, host)
    _check_space(limits, host)
    method = _memory_method(limits, host, memory_cap)
    if method == "rlimit":
        notes.append("memory capped per process with RLIMIT_DATA (no writable memory cgroup: " + host.cgroup_note + ")")
    elif method == "none" and limits.memory_mib is not None:
        notes.append("memory not capped, only measured")

    claims = _Claims(host.lock_dir)
    try:
        cores: tuple[int, ...] | None = None
        wanted_cores = limits.cores
        if host.cores is None:
            if wanted_cores is not None:
                text = f"allotment.local: CPU affinity is not available on {sys.platform}; steps are not pinned to cores"
                say_once(text)
                notes.append(text.removeprefix("allotment.local: "))
        else:
            available = host.cores
            count = len(available) if wanted_cores is None else min(wanted_cores, len(available))
            if wanted_cores is not None and limits.cpu_millicores is not None and wanted_cores > len(available):
                text = (
                    f"step {limits.step!r}: cpu={limits.cpu_millicores / 1000:g} asks for {wanted_cores} cores; "
                    f"this machine lets it use {len(available)}, so it runs on {len(available)}"
                )
                say_once(f"allotment.local: {text}")
                notes.append(text)
            if wanted_cores is None:
                cores = available
            else:
                free, shared = claims.pick([f"cpu-{c}" for c in available], count)
                cores = tuple(sorted(available[i] for i in free + shared))
                if shared:
                    notes.append(f"shares cores {', '.join(str(available[i]) for i in sorted(shared))} with other steps running now")
        env: dict[str, str] = {}
        gpus: tuple[Gpu, ...] = ()
        if gpu_candidates:
            free, shared = claims.pick([f"gpu-{g.ident}" for g in gpu_candidates], limits.gpu or 0)
            gpus = tuple(gpu_candidates[i] for i in sorted(free + shared))
            if shared:
                notes.append(f"shares GPU(s) {', '.join(gpu_candidates[i].ident for i in sorted(shared))} with other steps running now")
            env["CUDA_VISIBLE_DEVICES"] = ",".join(g.ident for g in gpus)
            inherited = host.gpu_source.startswith("CUDA_VISIBLE_DEVICES")
            if not inherited and any(not g.ident.startswith(("GPU-", "MIG-")) for g in gpus):
                env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        else:
            # No GPU asked: the step sees none, as a pod without a GPU request does.
            env["CUDA_VISIBLE_DEVICES"] = ""
            if host.gpus:
                notes.append(f"the machine's {len(host.gpus)} GPU(s) are hidden (CUDA_VISIBLE_DEVICES='') since the step asks for none")
    except BaseException:
        claims.release()
        raise
    placement = Placement(
        cores=cores,
        gpus=gpus,
        env=MappingProxyType(env),
        memory_method=method,
        memory_limit_mib=None if method == "none" else limits.memory_mib,
        notes=tuple(notes),
    )
    placement._locks.extend(claims.fds)
    return placement
