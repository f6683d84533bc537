"""Memory cgroups for one step: find where one can be made, make it, read it, remove it.

A step's cgroup is a child of the cgroup this process runs in (``/proc/self/cgroup``), made in
the memory hierarchy: cgroup v1 (``memory`` controller, e.g. ``/sys/fs/cgroup/memory/...``) or
cgroup v2 (a ``cgroup2`` mount whose cgroup has ``memory`` in ``cgroup.subtree_control``). The
environment variable ``ALLOTMENT_LOCAL_CGROUP`` names another parent directory (e.g. a v2 subtree
delegated by systemd), which must be writable. Everything here is the standard library.

=========================  ==================================  =====================================
                           cgroup v1                           cgroup v2
=========================  ==================================  =====================================
cap                        ``memory.limit_in_bytes`` (and      ``memory.max``, ``memory.swap.max`` 0,
                           ``memory.memsw.limit_in_bytes``     ``memory.oom.group`` 1 (the whole tree
                           where swap accounting is on)        is killed, as the kubelet sets it)
peak                       ``memory.max_usage_in_bytes``       ``memory.peak`` (Linux 5.19+), else
                                                               sampled ``memory.current``
OOM kill                   ``oom_kill`` in ``memory.oom_control``  ``oom_kill`` in ``memory.events``
                           (Linux 4.13+), else ``memory.failcnt``
                           > 0 with the child killed by SIGKILL
=========================  ==================================  =====================================
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["CGROUP_ENV", "MemoryCgroupSupport", "StepCgroup", "find_memory_cgroup"]

CGROUP_ENV: Final = "ALLOTMENT_LOCAL_CGROUP"
"""Environment variable naming the directory under which step cgroups are made."""

_COUNTER = itertools.count(1)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class MemoryCgroupSupport:
    """Where step cgroups can be made: ``version`` 1 or 2, ``parent`` the directory they go under."""

    version: Literal[1, 2]
    parent: Path

    @property
    def method(self) -> str:
        """``cgroup-v1`` or ``cgroup-v2``."""
        return f"cgroup-v{self.version}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write(path: Path, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError:
        return False
    return True


def _own_cgroups(proc: Path) -> dict[str, str]:
    """Hierarchy -> path of this process, from ``/proc/self/cgroup``: ``"memory"`` (v1) and ``""`` (v2)."""
    text = _read(proc / "self" / "cgroup") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            found[""] = path
        elif "memory" in controllers.split(","):
            found["memory"] = path
    return found


def _mounts(proc: Path) -> list[tuple[str, str, str, str]]:
    """(fstype, root, mount point, super options) of every mount, from ``/proc/self/mountinfo``."""
    text = _read(proc / "self" / "mountinfo") or ""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        root, mount_point = (f.replace("\\040", " ") for f in fields[3:5])
        mounts.append((after[0], root, mount_point, after[2]))
    return mounts


def _under(mount_point: str, root: str, path: str) -> Path | None:
    """The directory of cgroup ``path`` in a mount of hierarchy part ``root``."""
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None
    rel = path[len(root) :] if root != "/" else path
    return Path(mount_point) / rel.lstrip("/")


def _can_make_child(parent: Path, version: int) -> bool:
    """True when a child cgroup with a memory cap can be made (and removed) under ``parent``."""
    probe = parent / f"allotment-probe-{os.getpid()}-{next(_COUNTER)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        cap = probe / ("memory.limit_in_bytes" if version == 1 else "memory.max")
        return cap.exists() and _write(cap, str(1 << 40))
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _v2_usable(directory: Path) -> bool:
    controllers = (_read(directory / "cgroup.controllers") or "").split()
    if "memory" not in controllers:
        return False
    subtree = (_read(directory / "cgroup.subtree_control") or "").split()
    # Enabling memory for children fails (EBUSY) while this cgroup holds processes, unless it is the root.
    return "memory" in subtree or _write(directory / "cgroup.subtree_control", "+memory")


def find_memory_cgroup(proc: Path = Path("/proc"), environ: dict[str, str] | None = None) -> tuple[MemoryCgroupSupport | None, str]:
    """Where this process can make memory cgroups for its steps, and a sentence saying what was found.

    Tried in order: the directory named by ``ALLOTMENT_LOCAL_CGROUP``; cgroup v2 (the process's
    cgroup on a ``cgroup2`` mount, with the memory controller available to its children, else its
    parent's, so the steps' cgroups are siblings of the process's own); cgroup v1
    (the process's cgroup in the ``memory`` hierarchy). Each is used only if a child cgroup can
    really be made there and given a memory cap (a probe cgroup is made and removed).
    """
    env = os.environ if environ is None else environ
    named = env.get(CGROUP_ENV)
    if named:
        directory = Path(named)
        version: Literal[1, 2] = 2 if (directory / "cgroup.controllers").exists() else 1
        if version == 2 and not _v2_usable(directory):
            return None, f"{CGROUP_ENV}={named} is a cgroup v2 directory whose children cannot have the memory controller"
        if _can_make_child(directory, version):
            return MemoryCgroupSupport(version, directory), f"cgroup v{version} under {directory} (from {CGROUP_ENV})"
        return None, f"{CGROUP_ENV}={named}: cannot make a memory cgroup there"
    own = _own_cgroups(proc)
    mounts = _mounts(proc)
    reasons = []
    if "" in own:
        for fstype, root, mount_point, _ in mounts:
            if fstype != "cgroup2":
                continue
            v2 = _under(mount_point, root, own[""])
            if v2 is None or not v2.is_dir():
                reasons.append(f"this process's cgroup v2 directory is not under {mount_point}")
                continue
            if _v2_usable(v2) and _can_make_child(v2, 2):
                return MemoryCgroupSupport(2, v2), f"cgroup v2 under {v2}"
            # v2 forbids processes in a cgroup whose children have controllers, so a process in a leaf
            # (a systemd scope) puts its steps beside itself: under its parent, where it may move them.
            parent = v2.parent
            if (
                v2 != Path(mount_point)
                and parent != v2
                and os.access(parent / "cgroup.procs", os.W_OK)
                and _v2_usable(parent)
                and _can_make_child(parent, 2)
            ):
                return MemoryCgroupSupport(2, parent), f"cgroup v2 under {parent} (beside this process's {v2.name})"
            reasons.append(f"cgroup v2 at {v2} has no memory controller for child cgroups")
    if "memory" in own:
        for fstype, root, mount_point, options in mounts:
            if fstype != "cgroup" or "memory" not in options.split(","):
                continue
            v1 = _under(mount_point, root, own["memory"])
            if v1 is None or not v1.is_dir():
                reasons.append(f"this process's cgroup v1 memory directory is not under {mount_point}")
                continue
            if _can_make_child(v1, 1):
                return MemoryCgroupSupport(1, v1), f"cgroup v1 under {v1}"
            reasons.append(f"cgroup v1 memory at {v1} is not writable")
    if not reasons:
        reasons.append("no memory cgroup hierarchy found in /proc/self/cgroup and /proc/self/mountinfo")
    return None, "; ".join(reasons)


class StepCgroup:
    """One step's memory cgroup: made with its cap, joined by the child, read, then removed."""

    def __init__(self, support: MemoryCgroupSupport, step: str, limit_bytes: int) -> None:
        self.version = support.version
        name = _NAME_UNSAFE.sub("-", step)[:48] or "step"
        self.path = support.parent / f"allotment-{name}-{os.getpid()}-{next(_COUNTER)}"
        self.path.mkdir()
        try:
            self._configure(limit_bytes)
        except BaseException:
            self.remove()
            raise

    def _configure(self, limit_bytes: int) -> None:
        if self.version == 1:
            if not _write(self.path / "memory.limit_in_bytes", str(limit_bytes)):
                raise OSError(f"cannot set {self.path / 'memory.limit_in_bytes'}")
            # With swap accounting on, memory+swap gets the same cap, so the step cannot swap past it.
            _write(self.path / "memory.memsw.limit_in_bytes", str(limit_bytes))
        else:
            if not _write(self.path / "memory.max", str(limit_bytes)):
                raise OSError(f"cannot set {self.path / 'memory.max'}")
            _write(self.path / "memory.swap.max", "0")
            _write(self.path / "memory.oom.group", "1")

    @property
    def procs_file(self) -> Path:
        """The file a process writes its pid to in order to join."""
        return self.path / "cgroup.procs"

    def _counter(self, file: str, key: str) -> int | None:
        text = _read(self.path / file)
        if text is None:
            return None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return None

    def peak_bytes(self) -> int | None:
        """Highest memory use of the cgroup so far, in bytes; None where the kernel keeps none (v2 before 5.19)."""
        text = _read(self.path / ("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"))
        return int(text) if text and text.strip().isdigit() else None

    def current_bytes(self) -> int | None:
        """Memory use of the cgroup now, in bytes."""
        text = _read(self.path / ("memory.usage_in_bytes" if self.version == 1 else "memory.current"))
        return int(text) if text and text.strip().isdigit() else None

    def oom_kills(self) -> int | None:
        """Processes of the cgroup the kernel's OOM killer killed; None where the kernel does not count them."""
        if self.version == 1:
            return self._counter("memory.oom_control", "oom_kill")
        return self._counter("memory.events", "oom_kill")

    def fail_count(self) -> int | None:
        """cgroup v1: how often use hit the cap (reclaim, not necessarily a kill)."""
        if self.version != 1:
            return None
        text = _read(self.path / "memory.failcnt")
        return int(text) if text and text.strip().isdigit() else None

    def pids(self) -> list[int]:
        """Processes in the cgroup now."""
        text = _read(self.procs_file) or ""
        return [int(p) for p in text.split() if p.isdigit()]

    def kill_all(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every process left in the cgroup and wait (up to ``timeout_s``) until it is empty."""
        if self.version == 2 and (self.path / "cgroup.kill").exists():
            _write(self.path / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self, timeout_s: float = 5.0) -> bool:
        """Kill what is left and remove the cgroup; True when it is gone."""
        if not self.path.exists():
            return True
        self.kill_all(timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
