"""Step functions the local executor's tests run in child processes.

They live in their own module, importing the standard library only, because the child imports
them by name (the callable travels pickled by reference), and a test module would also bring pytest.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MIB = 1024 * 1024


def touch_mib(mib: int, hold_s: float = 0.0) -> int:
    """Allocate ``mib`` MiB and write to every page (so it is resident), hold it ``hold_s`` s, return the size."""
    block = bytearray(mib * MIB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    if hold_s:
        time.sleep(hold_s)
    return len(block)


def in_grandchild(mib: int, hold_s: float = 0.3, count: int = 1) -> int:
    """Allocate ``mib`` MiB in each of ``count`` grandchild processes at once (so only a tree-wide
    measure sees the sum); raises CalledProcessError when one fails (e.g. is OOM-killed)."""
    code = f"import sys; sys.path[:0] = {sys.path!r}; import local_steps; local_steps.touch_mib({mib}, {hold_s})"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    for proc in procs:
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return 0


def affinity_and_gpus() -> tuple[list[int], str | None, str | None]:
    """The child's CPU affinity and its CUDA variables."""
    return sorted(os.sched_getaffinity(0)), os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("CUDA_DEVICE_ORDER")


def add(a: int, b: int, *, times: int = 1) -> dict[str, object]:
    """A plain return value, built from positional and keyword arguments."""
    return {"sum": (a + b) * times, "pid": os.getpid()}


def fail_with_value_error(detail: str) -> None:
    """Raise from a nested frame, so the traceback has the step's own lines."""
    _deeper(detail)


def _deeper(detail: str) -> None:
    raise ValueError(f"bad input: {detail}")


class NeedsTwoArgs(Exception):
    """An exception whose class cannot be rebuilt by unpickling (its __init__ takes two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def fail_with_unpicklable_exception() -> None:
    raise NeedsTwoArgs("left", "right")


def return_generator() -> Iterator[int]:
    return (i for i in range(3))


def burn_cpu(seconds: float) -> float:
    """Spin for ``seconds`` of CPU time in this process; the CPU time spent."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start


def leave_orphan(pid_file: str, new_session: bool) -> int:
    """Start a long sleeper (in a session of its own if ``new_session``) and return without waiting for it."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=new_session)
    Path(pid_file).write_text(str(proc.pid))
    return proc.pid


def oom_in_grandchild(mib: int) -> int:
    """Run a grandchild that allocates ``mib`` MiB; raises CalledProcessError when it is killed."""
    return in_grandchild(mib, 0.0)


def fail_first_time(marker: str, mib: int) -> int:
    """Fail with RuntimeError on the first call (no marker file yet), then allocate ``mib`` MiB."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise RuntimeError("transient failure")
    return touch_mib(mib)


def oom_then_fail_then_succeed(marker: str, mib: int) -> int:
    """Go over the memory on the first call, fail plainly on the second, allocate ``mib`` MiB on the third."""
    path = Path(marker)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls == 2:
        raise RuntimeError("a plain failure after an OOM kill")
    return touch_mib(mib)


def huge_allocation() -> int:
    """Ask for far more memory than any machine has: malloc refuses it (MemoryError), no cap needed."""
    return len(bytearray(1 << 62))


def exit_hard(code: int) -> None:
    """End the process without unwinding (no outcome is written)."""
    os._exit(code)


def cuda_devices() -> tuple[str | None, int, list[str]]:
    """``CUDA_VISIBLE_DEVICES``, and the GPU count and UUIDs CUDA itself reports (through libcuda, no Python GPU library)."""
    cuda = ctypes.CDLL("libcuda.so.1")
    if cuda.cuInit(0) != 0:
        return os.environ.get("CUDA_VISIBLE_DEVICES"), 0, []
    count = ctypes.c_int()
    cuda.cuDeviceGetCount(ctypes.byref(count))
    uuids = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        raw = (ctypes.c_ubyte * 16)()
        cuda.cuDeviceGetUuid(raw, device)
        h = bytes(raw).hex()
        uuids.append(f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return os.environ.get("CUDA_VISIBLE_DEVICES"), count.value, uuids


def own_memory_cgroup() -> tuple[str, int | None]:
    """The memory cgroup this process is in (v1 ``memory`` line, else the v2 line) and its cap in bytes."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    v1 = [line.split(":", 2)[2] for line in lines if "memory" in line.split(":", 2)[1].split(",")]
    if v1:
        text = (Path("/sys/fs/cgroup/memory") / v1[0].lstrip("/") / "memory.limit_in_bytes").read_text()
        return v1[0], int(text)
    v2 = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
    text = (Path("/sys/fs/cgroup") / v2[0].lstrip("/") / "memory.max").read_text().strip()
    return v2[0], None if text == "max" else int(text)


def record_pid_and_sleep(pid_file: str, seconds: float) -> None:
    """Write this process's pid (whole, then renamed into place), then sleep (a step to interrupt)."""
    Path(pid_file + ".tmp").write_text(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(seconds)


def talk(lines: int) -> int:
    """Write ``lines`` lines to stdout and one to stderr, with a non-ASCII character."""
    for i in range(lines):
        print(f"out {i} é")
    print("err line", file=sys.stderr)
    return lines
