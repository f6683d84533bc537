"""Run one step's callable in a child process under its limits, and measure it.

The child is a fresh interpreter (``subprocess``, not a fork): ``python -P .../child.py WORKDIR``,
started through ``/bin/sh`` that first writes its own pid into the step's cgroup and then execs the
interpreter, so every byte the step allocates is charged to the cgroup. The callable and its
arguments go to the child pickled, by reference, the way ``multiprocessing``'s ``spawn`` start
method sends them (the parent's ``sys.path`` and main module are re-established first through
``multiprocessing.spawn``), so the same rules hold: the function must be importable (top level of
a module, or of a script guarded by ``if __name__ == "__main__":``). A ``multiprocessing`` context
is not used because its child imports the main module before any code of ours runs there, so the
cores, the rlimit and ``CUDA_VISIBLE_DEVICES`` could not be in force before the step's own imports.

Measured: wall time (from start to exit, ``time.monotonic``); CPU time (user + system) of the
child and of the descendants it waited for (``wait4``'s rusage); peak memory of the whole process
tree, from the cgroup (``memory.max_usage_in_bytes`` in v1, ``memory.peak`` in v2) or else by
sampling the resident set (``VmRSS`` in ``/proc/<pid>/status``) of the child and its descendants
every ``sample_interval_s`` (0.05 s by default), never below the largest single process's own peak
(``VmHWM``). ``ru_maxrss`` is not used: Linux carries the parent's high-water mark across the fork
and exec that start the child, so in a large parent (an Airflow worker) it reports the parent.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

from ..errors import AllotmentError
from .cgroups import StepCgroup
from .hints import OOM_GROWTH, round_up_mib
from .host import Host
from .limits import Limits
from .placement import MemoryCap, Placement, place, say_once
from .units import MIB, mib_text, used_mib_text

__all__ = [
    "DEFAULT_SAMPLE_INTERVAL_S",
    "ChildError",
    "Measurement",
    "OOMKilled",
    "Outcome",
    "StepFailed",
    "StepResult",
    "default_host",
    "run_step",
]

DEFAULT_SAMPLE_INTERVAL_S: Final = 0.05
"""Seconds between samples of the process tree's memory where no cgroup keeps the peak."""

Outcome = Literal["succeeded", "failed", "oom_killed"]
_CHILD: Final = str(Path(__file__).with_name("child.py"))
_BOOTSTRAP_ENV: Final = "ALLOTMENT_LOCAL_BOOTSTRAPPING"  # child.BOOTSTRAP_ENV (child.py imports nothing of ours)
_JOIN_AND_EXEC: Final = 'echo $$ > "$0" && exec "$@"'
_HOST: list[Host] = []


class StepFailed(AllotmentError):
    """A step that did not succeed: ``reason`` says why (``result`` is its :class:`StepResult`)."""

    def __init__(self, problem: str, *, result: StepResult, **context: Any) -> None:
        self.result = result
        self.reason = result.reason
        super().__init__(problem, step=result.step, **context)


class OOMKilled(StepFailed):
    """A step over its memory cap: killed by the kernel's OOM killer (cgroup), or its allocation
    refused under ``RLIMIT_DATA`` (the rlimit cap), the local form of Kubernetes' ``OOMKilled``."""


class ChildError(Exception):
    """Stands in for an exception of the child that could not be pickled back: ``type_name`` is its
    class (``module.Qualname``), ``str()`` its message; the child's traceback is in a note."""

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(f"{type_name}: {message}" if message else type_name)


@dataclass(frozen=True)
class Measurement:
    """What one run of a step used. Times in seconds, memory in bytes.

    ``peak_memory_bytes``: highest memory of the whole process tree (None if unknown), measured by
    ``peak_method``: ``cgroup-v1`` (``memory.max_usage_in_bytes``, page cache charged to the step
    included), ``cgroup-v2`` (``memory.peak``), ``cgroup-v2-sampled`` (``memory.current`` every
    ``sample_interval_s``) or ``proc-sampled`` (sum of the tree's resident sets every
    ``sample_interval_s``, at least ``max_rss_bytes``; pages shared between processes count once per
    process). ``max_rss_bytes``: the largest peak resident set (``VmHWM``) of a single process of the
    tree: the child's own and its waited-for children's at its end, and each descendant's when
    sampled (None if never read).
    ``cpu_time_s`` = ``user_time_s`` + ``system_time_s``.
    """

    wall_time_s: float
    user_time_s: float
    system_time_s: float
    peak_memory_bytes: int | None
    peak_method: str
    sample_interval_s: float | None
    max_rss_bytes: int | None

    @property
    def cpu_time_s(self) -> float:
        """User plus system CPU time, in seconds."""
        return self.user_time_s + self.system_time_s

    @property
    def cpu_used(self) -> float:
        """Average cores busy: CPU time / wall time."""
        return self.cpu_time_s / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def document(self) -> dict[str, Any]:
        """The measurement as the report's ``measurements`` object (times rounded to milliseconds)."""
        return {
            "wall_time_s": round(self.wall_time_s, 3),
            "cpu_time_s": round(self.cpu_time_s, 3),
            "user_time_s": round(self.user_time_s, 3),
            "system_time_s": round(self.system_time_s, 3),
            "cpu_used": round(self.cpu_used, 3),
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_mib": None if self.peak_memory_bytes is None else round(self.peak_memory_bytes / MIB, 1),
            "peak_method": self.peak_method,
            "sample_interval_s": self.sample_interval_s,
            "max_rss_bytes": self.max_rss_bytes,
        }


@dataclass(frozen=True)
class StepResult:
    """How one try of a step ended.

    ``outcome``: ``succeeded``, ``failed`` or ``oom_killed`` (``oom_killed`` is also a flag of its own).
    ``value``: the callable's return value (None unless it succeeded). ``error``: the child's exception
    (its own class where it could be pickled back, else a :class:`ChildError`), or an
    :class:`~allotment.AllotmentError` saying what went wrong around it; ``traceback``: the child's
    traceback text. ``reason``: one sentence for a failure, e.g. ``OOMKilled: ...``. ``exit_code``
    and ``signal``: how the child process ended (``signal`` is e.g. ``SIGKILL``).
    """

    step: str
    try_number: int
    limits: Limits
    placement: Placement
    outcome: Outcome
    measurement: Measurement
    value: Any = None
    error: BaseException | None = None
    traceback: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the step returned normally."""
        return self.outcome == "succeeded"

    @property
    def oom_killed(self) -> bool:
        """True when the step went over its memory cap (the local backend's OOM kill, docs/design.md §7.3)."""
        return self.outcome == "oom_killed"

    def get(self) -> Any:
        """The return value; raises :class:`OOMKilled` for an OOM kill, the child's own exception
        (with its traceback as a note) where it failed in the step, else :class:`StepFailed`."""
        if self.ok:
            return self.value
        if self.error is not None:
            raise self.error
        raise StepFailed(self.reason or "failed", result=self)

    def oom_error(self) -> OOMKilled:
        """The :class:`OOMKilled` error of an OOM-killed try."""
        limit = self.placement.memory_limit_mib
        grow = (
            f"ask for more memory, e.g. memory={mib_text(round_up_mib(limit * MIB * OOM_GROWTH))!r}, or set retry_memory_factor"
            if limit is not None
            else "ask for more memory"
        )
        return OOMKilled(
            "was OOM-killed: " + (self.reason or "").removeprefix("OOMKilled: "),
            result=self,
            field="memory",
            value=None if limit is None else mib_text(limit),
            source=self.limits.source_of("memory"),
            accepted=grow,
        )


def default_host() -> Host:
    """This machine, probed once per process (see :meth:`Host.probe`)."""
    if not _HOST:
        _HOST.append(Host.probe())
    return _HOST[0]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def _tree_memory(root: int) -> tuple[int, int]:
    """(sum of the resident sets, largest peak resident set) of ``root`` and its descendants, in bytes."""
    total, largest, stack, seen = 0, 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                    elif line.startswith("VmHWM:"):
                        largest = max(largest, int(line.split()[1]) * 1024)
        except (OSError, ValueError, IndexError):
            continue
        stack.extend(_children(pid))
    return total, largest


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _preparation(main_module: bool = True) -> dict[str, Any]:
    """The parent's ``sys.path``, working directory and (``main_module``) main module, as ``multiprocessing`` sends them."""
    import multiprocessing.spawn

    data = multiprocessing.spawn.get_preparation_data("allotment-local-step")
    data.pop("authkey", None)  # an AuthenticationString refuses pickling outside multiprocessing
    data.pop("start_method", None)
    if not main_module:
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return dict(data)


def _pickle_call(limits: Limits, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    try:
        return pickle.dumps((fn, tuple(args), dict(kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        name = getattr(fn, "__qualname__", repr(fn))
        raise AllotmentError(
            f"cannot send {name} and its arguments to the child process: they must pickle ({type(e).__name__}: {e})",
            step=limits.step,
            accepted="define the step at the top level of a module (no lambda, no nested function) and pass picklable arguments",
        ) from None


def run_step(
    limits: Limits,
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    host: Host | None = None,
    memory_cap: MemoryCap = "auto",
    try_number: int = 1,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    on_output: Callable[[str], None] | None = None,
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
    notes: Sequence[str] = (),
    main_module: bool = True,
) -> StepResult:
    """Run ``fn(*args, **kwargs)`` in a child process under ``limits`` and return how it ended.

    A failure of the step (its exception, an OOM kill, a crash) is a :class:`StepResult`, never
    raised here; :meth:`StepResult.get` raises it. Raised here, as :class:`~allotment.AllotmentError`,
    is what stops the step from starting: too few GPUs, too little ``/dev/shm`` or disk, an
    unpicklable callable or argument, or no cgroup with ``memory_cap='cgroup'``.

    ``host``: the machine (default: probed once per process). ``memory_cap``: ``auto`` (a cgroup
    where one can be made, else ``RLIMIT_DATA``), ``cgroup``, ``rlimit`` or ``none``. ``env``: the
    child's environment (default: this process's), to which ``CUDA_VISIBLE_DEVICES`` is added.
    ``stdout``/``stderr``: a file descriptor or a file with one, as for ``subprocess.Popen``
    (default: this process's). ``on_output``: instead, called with each line the step writes to
    stdout or stderr (merged, newline removed), from a reader thread, e.g. a task logger's ``info``.
    ``try_number``:
    recorded in the result (1 = first try). ``notes``: sentences added to the result's notes.
    ``main_module``: re-import the parent's main module in the child first, as ``spawn`` does
    (needed when the callable is defined there); False when the callable comes from elsewhere, so
    a large main script (``airflow``'s) is neither imported nor measured as part of the step.
    """
    if os.environ.get(_BOOTSTRAP_ENV):
        raise AllotmentError(
            "was started while a step's child process was importing the main script (it calls run_step at its top level)",
            step=limits.step,
            accepted='put the code that runs steps under `if __name__ == "__main__":`, as multiprocessing\'s spawn requires',
        )
    if -1 in (stdout, stderr) or (on_output is not None and (stdout is not None or stderr is not None)):
        raise AllotmentError(
            "cannot take stdout/stderr pipes (nothing would read them while the step runs)",
            step=limits.step,
            accepted="pass on_output=<a function taking each line> to receive the output, or a file for stdout/stderr",
        )
    host = host or default_host()
    call = _pickle_call(limits, fn, args, kwargs or {})
    placement = place(limits, host, memory_cap)
    workdir: Path | None = None
    cgroup: StepCgroup | None = None
    try:
        workdir = Path(tempfile.mkdtemp(prefix="allotment-local-"))
        all_notes = [*notes, *placement.notes]
        limit_bytes = None if placement.memory_limit_mib is None else placement.memory_limit_mib * MIB
        if placement.memory_method.startswith("cgroup") and host.memory_cgroup is not None and limit_bytes is not None:
            try:
                cgroup = StepCgroup(host.memory_cgroup, limits.step, limit_bytes)
            except OSError as e:
                raise limits.error(
                    "memory",
                    f"cannot be capped: making its cgroup under {host.memory_cgroup.parent} failed ({e})",
                    value=mib_text(placement.memory_limit_mib or 0),
                    accepted="use memory_cap 'rlimit', or fix the cgroup's permissions",
                ) from None
        setup = {
            "cores": None if placement.cores is None else list(placement.cores),
            "rlimit_data_bytes": limit_bytes if placement.memory_method == "rlimit" else None,
            "prep": _preparation(main_module),
        }
        (workdir / "setup.pkl").write_bytes(pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL))
        (workdir / "call.pkl").write_bytes(call)
        del call
        child_env = dict(os.environ if env is None else env)
        child_env.update(placement.env)
        command = [sys.executable, "-P", _CHILD, str(workdir)]
        if cgroup is not None:
            command = ["/bin/sh", "-c", _JOIN_AND_EXEC, str(cgroup.procs_file), *command]
        return _supervise(
            limits, placement, cgroup, command, child_env, cwd, stdout, stderr, on_output, sample_interval_s, try_number, all_notes, workdir
        )
    finally:
        if cgroup is not None and not cgroup.remove():
            say_once(f"allotment.local: could not remove the cgroup {cgroup.path}")
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        placement.release()


def _supervise(
    limits: Limits,
    placement: Placement,
    cgroup: StepCgroup | None,
    command: list[str],
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
    stdout: int | IO[Any] | None,
    stderr: int | IO[Any] | None,
    on_output: Callable[[str], None] | None,
    interval: float,
    try_number: int,
    notes: list[str],
    workdir: Path,
) -> StepResult:
    import subprocess

    sample_cgroup = cgroup is not None and cgroup.peak_bytes() is None
    sampling = cgroup is None or sample_cgroup
    if cgroup is not None:
        peak_method = "cgroup-v2-sampled" if sample_cgroup else f"cgroup-v{cgroup.version}"
    else:
        peak_method = "proc-sampled"
    sampled_peak = 0
    largest = 0
    started = time.monotonic()
    if on_output is not None:
        stdout, stderr = subprocess.PIPE, subprocess.STDOUT
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
    reader = None if on_output is None or proc.stdout is None else _start_reader(proc.stdout, on_output)
    status: int | None = None
    rusage: Any = None
    try:
        while True:
            if sampling:
                if cgroup is not None:
                    sampled_peak = max(sampled_peak, cgroup.current_bytes() or 0)
                else:
                    tree, biggest = _tree_memory(proc.pid)
                    sampled_peak, largest = max(sampled_peak, tree), max(largest, biggest)
                # Wait without reaping, so the pid (and the process group) cannot be reused meanwhile.
                exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if exited is None:
                    time.sleep(interval)
                    continue
            else:
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            break
    finally:
        # The step's process tree ends with the step, as a container's does.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if cgroup is not None:
            cgroup.kill_all()
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if reader is not None:
            reader.join(timeout=5)  # a process that escaped the kill may hold the pipe open
        if proc.stdout is not None:
            proc.stdout.close()
    wall = time.monotonic() - started

    outcome = _read_outcome(workdir)
    own_peak = None if outcome is None else outcome.get("hwm_bytes")
    max_rss = max(largest, own_peak or 0) or None
    peak: int | None
    if cgroup is not None and not sample_cgroup:
        peak = cgroup.peak_bytes()
    else:
        # The largest single process bounds a sampled peak from below (a short spike between samples).
        peak = max(sampled_peak, max_rss or 0) or None
    measurement = Measurement(
        wall_time_s=wall,
        user_time_s=rusage.ru_utime,
        system_time_s=rusage.ru_stime,
        peak_memory_bytes=peak,
        peak_method=peak_method,
        sample_interval_s=interval if sampling else None,
        max_rss_bytes=max_rss,
    )
    code = proc.returncode
    signal_name = _signal_name(-code) if code < 0 else None
    oom_kills = cgroup.oom_kills() if cgroup is not None else None
    fail_count = cgroup.fail_count() if cgroup is not None else None

    common: dict[str, Any] = {
        "step": limits.step,
        "try_number": try_number,
        "limits": limits,
        "placement": placement,
        "measurement": measurement,
        "exit_code": code,
        "signal": signal_name,
    }
    limit_text = "-" if placement.memory_limit_mib is None else mib_text(placement.memory_limit_mib)
    used = "an unknown amount" if peak is None else used_mib_text(peak)
    status_name = None if outcome is None else outcome["status"]

    # 1. Over its memory: the cgroup's OOM killer struck, or an allocation failed under RLIMIT_DATA.
    killed_by_cgroup = (
        cgroup is not None
        and status_name != "ok"
        and ((oom_kills or 0) > 0 or (oom_kills is None and signal_name == "SIGKILL" and (fail_count or 0) > 0))
    )
    refused_by_rlimit = (
        placement.memory_method == "rlimit"
        and outcome is not None
        and status_name in ("error", "load_error", "main_error")
        and bool(outcome.get("is_memory_error"))
    )
    if killed_by_cgroup and cgroup is not None:
        how = f"the kernel's OOM killer killed {oom_kills or 'a'} process(es) of the step" if oom_kills else "killed by SIGKILL at its cap"
        reason = f"OOMKilled: the step used {used} (its peak) of the {limit_text} asked; {how} (cgroup v{cgroup.version} memory cap)"
        result = StepResult(
            outcome="oom_killed",
            reason=reason,
            traceback=None if outcome is None else outcome.get("traceback"),
            notes=tuple(notes),
            **common,
        )
        return _with_error(result, result.oom_error())
    if refused_by_rlimit and outcome is not None:
        reason = (
            f"OOMKilled: an allocation failed (MemoryError) under the {limit_text} asked, enforced per process as RLIMIT_DATA "
            f"(the data segment and private memory the process may map, not what it has touched); peak resident set {used}"
        )
        result = StepResult(outcome="oom_killed", reason=reason, traceback=outcome.get("traceback"), notes=tuple(notes), **common)
        return _with_error(result, result.oom_error())
    if cgroup is not None and (oom_kills or 0) > 0:
        notes.append(f"the kernel's OOM killer killed {oom_kills} process(es) of the step, which still succeeded")

    # 2. Returned, raised, or ended without saying.
    if outcome is None:
        how = f"was killed by {signal_name}" if signal_name else f"exited with code {code}"
        if signal_name == "SIGKILL" and cgroup is None:
            how += " (not by its own cap: the machine's OOM killer, or someone else)"
        reason = f"the child process {how} before reporting an outcome"
        result = StepResult(outcome="failed", reason=reason, notes=tuple(notes), **common)
        return _with_error(result, StepFailed(reason, result=result))
    if status_name == "ok":
        try:
            value = pickle.loads(outcome["value"])
        except Exception as e:
            reason = f"its return value came back but cannot be unpickled here ({type(e).__name__}: {e})"
            result = StepResult(outcome="failed", reason=reason, notes=tuple(notes), **common)
            accepted = "return plain data (numbers, str, lists, dicts) or classes importable in this process"
            return _with_error(result, StepFailed(reason, result=result, accepted=accepted))
        return StepResult(outcome="succeeded", value=value, notes=tuple(notes), **common)
    if status_name == "unpicklable":
        reason = (
            f"its return value (a {outcome['value_type']}) cannot be pickled back from the child process "
            f"({outcome['type']}: {outcome['message']})"
        )
        result = StepResult(outcome="failed", reason=reason, traceback=outcome["traceback"], notes=tuple(notes), **common)
        accepted = (
            "return plain data (numbers, str, lists, dicts, dataclasses), or write large or live objects to a file and return its path"
        )
        return _with_error(result, StepFailed(reason, result=result, accepted=accepted))
    error = _child_exception(outcome)
    if status_name == "main_error":
        main = outcome.get("main") or "the main script"
        reason = f"the child process failed importing {main}, as multiprocessing's spawn does ({outcome['type']}: {outcome['message']})"
        result = StepResult(outcome="failed", reason=reason, traceback=outcome["traceback"], notes=tuple(notes), **common)
        accepted = 'keep the script\'s side effects (and the code that runs steps) under `if __name__ == "__main__":`'
        return _with_error(result, StepFailed(reason, result=result, accepted=accepted))
    if status_name == "load_error":
        reason = f"the child process could not load the step's callable ({outcome['type']}: {outcome['message']})"
        result = StepResult(outcome="failed", reason=reason, traceback=outcome["traceback"], notes=tuple(notes), **common)
        accepted = "define the step in a module the child can import (not in an interactive session or python -c)"
        return _with_error(result, StepFailed(reason, result=result, accepted=accepted))
    reason = f"raised {outcome['type']}: {outcome['message']}" if outcome["message"] else f"raised {outcome['type']}"
    if outcome.get("is_memory_error") and placement.memory_method != "rlimit":
        reason += " (the machine ran out of memory: not the step's cap)"
    return StepResult(outcome="failed", reason=reason, error=error, traceback=outcome["traceback"], notes=tuple(notes), **common)


def _start_reader(pipe: IO[bytes], on_output: Callable[[str], None]) -> threading.Thread:
    def pump() -> None:
        with contextlib.suppress(ValueError, OSError):  # closed after a timed-out join
            for raw in iter(pipe.readline, b""):
                on_output(raw.decode("utf-8", "replace").rstrip("\r\n"))

    thread = threading.Thread(target=pump, name="allotment-local-output", daemon=True)
    thread.start()
    return thread


def _with_error(result: StepResult, error: BaseException) -> StepResult:
    object.__setattr__(result, "error", error)
    return result


def _read_outcome(workdir: Path) -> dict[str, Any] | None:
    try:
        with open(workdir / "result.pkl", "rb") as f:
            outcome = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    return outcome if isinstance(outcome, dict) else None


def _child_exception(outcome: Mapping[str, Any]) -> BaseException:
    """The child's exception as an object of its own class where it can be unpickled, else a :class:`ChildError`."""
    error: BaseException | None = None
    if outcome.get("error") is not None:
        try:
            loaded = pickle.loads(outcome["error"])
        except Exception:
            loaded = None
        if isinstance(loaded, BaseException):
            error = loaded
    if error is None:
        error = ChildError(outcome["type"], outcome["message"])
    error.add_note("Traceback in the step's child process:\n" + outcome["traceback"].rstrip("\n"))
    return error
