"""``allotment run``: run steps on this machine, each through the local executor (docs/run.md).

``allotment run FILE... [--step NAME]... [--with SPEC]... [--report FILE]``:

* a file that defines Hera workflows: each workflow's script templates in DAG and Steps order, with
  their parameters passed on (the Argo face's runner, reached through
  :data:`allotment.faces.RUNNERS`, interprets the workflow; this module runs its steps);
* any other file: its decorated functions (``@resources``, ``@kubernetes``, ``@batch``), in the
  order the file defines them, each called without arguments; ``--step`` picks some.

Every step is resolved for the local backend (its ``@resources``, the ``with`` specs for ``local``
and for every backend, the workflow's defaults, the seed defaults, ``set``, the policy) and runs in
a child process under its cpu, memory and GPUs (:func:`allotment.local.run_with_retries`: memory
grows only after an OOM kill). A step pinned to another backend (``@kubernetes``, ``@batch``) runs
here with the values it would have there, and says so. Progress and the steps' own output go to
stderr while they run; the table of every try goes to stdout at the end, and ``--report FILE``
writes the JSON report (``allotment/local/report.schema.json``). The first step that fails stops
the run.

The faces reach this module through :mod:`allotment.facade`: :class:`LocalRun` (what a face's
runner drives), and :func:`run_local` with :func:`local_table` (what a face's task runs on the
local backend, e.g. Airflow's ``@task.allotment``).

This module imports the standard library only: the step's child process imports it to run
:func:`call_in_file` or :func:`run_script`, before anything of the step is loaded.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from .errors import AllotmentError

if TYPE_CHECKING:
    from .decorators import StepSpec
    from .local import Host, Limits, StepResult, Tries
    from .model import Resources
    from .policy import Policy
    from .resolve import Resolved
    from .settings import Settings
    from .sources import Source

__all__ = [
    "RESULT_LIMIT_BYTES",
    "LocalRun",
    "ScriptExit",
    "StepRun",
    "call_in_file",
    "local_table",
    "run_command",
    "run_local",
    "run_paths",
    "run_script",
]

RESULT_LIMIT_BYTES: Final = 256 * 1024
"""A try's stdout is kept up to its last 256 KiB, as Argo keeps a script's ``outputs.result``."""

_PYTHON: Final = re.compile(r"python(\d+(\.\d+)?)?")


# --- what the step's child process runs (imported there: standard library only) -----------------


class ScriptExit(Exception):
    """A script ended with a non-zero exit status (``code``), as its container would have."""

    def __init__(self, code: int | str | None, command: str) -> None:
        self.code = code
        self.command = command
        super().__init__(f"{command} exited with status {code}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ScriptExit, (self.code, self.command))


def call_in_file(path: str, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> Any:
    """In the step's child: import the file ``path`` as :func:`allotment.discover.load_module` does
    (same module name, so what it returns unpickles in the parent) and call its global ``name``."""
    from .discover import load_module

    module = load_module(Path(path))
    function = getattr(module, name)
    return function(*args, **dict(kwargs or {}))


def _is_python(word: str) -> bool:
    return bool(_PYTHON.fullmatch(os.path.basename(word)))


def run_script(source: str, command: Sequence[str], name: str = "script") -> None:
    """In the step's child: run a script template's ``source`` as its container runs it, written to a
    file that is then the last argument of ``command``. A lone ``python`` (``python3``, ...) runs it
    in this interpreter (``runpy``, ``__name__ == "__main__"``, the script's folder first on
    ``sys.path``); any other command runs as a process, with ``python`` in it meaning this
    interpreter. A non-zero exit status raises :class:`ScriptExit`."""
    import runpy
    import shutil
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="allotment-script-")
    path = os.path.join(folder, "script")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        words = list(command) or ["python"]
        if len(words) == 1 and _is_python(words[0]):
            sys.argv = [path]
            sys.path.insert(0, folder)
            try:
                runpy.run_path(path, run_name="__main__")
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise ScriptExit(e.code, f"{words[0]} {name}") from None
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            return
        argv = [sys.executable if i == 0 and _is_python(w) else w for i, w in enumerate(words)] + [path]
        sys.stdout.flush()
        code = subprocess.call(argv)
        if code != 0:
            raise ScriptExit(code, " ".join([*words, name]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --- output of a step's child, while it runs --------------------------------------------------


class _Stream:
    """One pipe the step's child writes to (its stdout or stderr): each line is echoed to ``echo``
    with a prefix as it comes, and the text of each try is kept (its last 256 KiB).

    The tries share the pipe; after each try the parent writes a token of its own into it, which the
    reader sees after every byte the try wrote (the child has exited by then), so each try's text
    is exact."""

    def __init__(self, prefix: str, echo: Callable[[str], None]) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.prefix = prefix
        self.echo = echo
        self.token = b"\x00allotment-end-of-try-" + os.urandom(8).hex().encode() + b"\x00"
        self.tries: list[str] = []
        self._current = bytearray()
        self._thread = threading.Thread(target=self._pump, name="allotment-run-output", daemon=True)
        self._thread.start()

    def _lines(self, data: bytes, final: bool) -> bytes:
        """Echo the complete lines of ``data`` (all of it when ``final``); return the rest."""
        *lines, rest = data.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        for line in lines:
            self.echo(self.prefix + line.decode("utf-8", errors="replace").rstrip("\r"))
        return rest

    def _keep(self, data: bytes) -> None:
        self._current += data
        if len(self._current) > 2 * RESULT_LIMIT_BYTES:
            del self._current[: len(self._current) - RESULT_LIMIT_BYTES]

    def _finish_try(self) -> None:
        text = bytes(self._current[-RESULT_LIMIT_BYTES:]).decode("utf-8", errors="replace")
        self.tries.append(text)
        self._current = bytearray()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            while (at := pending.find(self.token)) >= 0:
                segment, pending = pending[:at], pending[at + len(self.token) :]
                self._keep(segment)
                self._lines(segment, final=True)
                self._finish_try()
            cut = pending.rfind(b"\n") + 1
            if cut:
                self._keep(pending[:cut])
                self._lines(pending[:cut], final=True)
                pending = pending[cut:]
        if pending:
            self._keep(pending)
            self._lines(pending, final=True)

    def end_try(self) -> None:
        """Mark the end of a try (called after its child exited)."""
        os.write(self.write_fd, self.token)

    def close(self) -> None:
        """Close the write end and wait for the reader to drain the pipe."""
        os.close(self.write_fd)
        self._thread.join(timeout=10)
        os.close(self.read_fd)


# --- a step run by a face's task (Airflow's @task.allotment) ---------------------------------------


def run_local(
    resolved: Resolved,
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    policy: Policy | None = None,
    earlier_oom_kills: int = 0,
    retries: int = 0,
    on_output: Callable[[str], None] | None = None,
    main_module: bool = False,
    host: Host | None = None,
) -> Tries:
    """Run ``fn(*args, **kwargs)`` on this machine under ``resolved`` (the local executor, docs/local.md).

    ``earlier_oom_kills``: tries of this step that an engine already ran and that ended in an OOM
    kill (an Airflow retry is a new process: the engine counts them); memory starts at the resolved
    memory x ``retry_memory_factor`` ^ that, held to the policy's memory cap (the one
    :meth:`Resolved.retry_growth` names). ``retries``: further tries here, memory growing only
    after an OOM kill. ``on_output``: called with each line the step writes (stdout and stderr).
    ``main_module``: re-import the caller's main module in the child (only when ``fn`` lives there).
    Raises what stops the step from starting (too few GPUs, an unpicklable callable...); the step's
    own failure is in the result (``.ok``, ``.get()``)."""
    from .local import Limits, run_with_retries

    limits = Limits.from_resolved(resolved)
    growth = resolved.retry_growth(policy)
    cap = growth.cap if growth is not None else None
    options: dict[str, Any] = {"main_module": main_module}
    if host is not None:
        options["host"] = host
    return run_with_retries(
        limits, fn, args, kwargs, retries=retries, memory_cap_mib=cap, earlier_oom_kills=earlier_oom_kills, on_output=on_output, **options
    )


def local_table(results: Sequence[StepResult]) -> str:
    """The local backend's table of ``results`` (one row per try; :func:`allotment.local.format_table`)."""
    from .local import format_table

    return format_table(results)


# --- allotment run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRun:
    """How one step of ``allotment run`` ended: every try (``tries``), and each try's stdout.

    ``stdout``: what the last try wrote to stdout (its last 256 KiB), e.g. a script's
    ``outputs.result``. ``started``: the wall-clock time (``time.time()``) before its first try."""

    name: str
    tries: Tries
    stdout: str
    started: float

    @property
    def ok(self) -> bool:
        """True when the last try succeeded."""
        return self.tries.ok

    @property
    def value(self) -> Any:
        """The last try's return value (None unless it succeeded)."""
        return self.tries.final.value

    @property
    def reason(self) -> str:
        """Why the last try failed (empty when it succeeded)."""
        return self.tries.final.reason or ""


class LocalRun:
    """One ``allotment run``: resolves each step for the local backend, runs it in a child process,
    shows progress on ``err`` while it runs, and keeps every try (``results``) for the table and the
    report. A face's runner drives it (:data:`allotment.faces.RUNNERS`)."""

    def __init__(self, settings: Settings, *, err: IO[str] | None = None, host: Host | None = None, retries: int | None = None) -> None:
        self.settings = settings
        self.err = err if err is not None else sys.stderr
        self.host = host
        self.retries = retries
        """``--retries``: tries after the first for every step (None: each step's own)."""
        self.results: list[StepResult] = []
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        """A progress line on ``err``."""
        with self._lock:
            print(text, file=self.err, flush=True)

    def note(self, text: str) -> None:
        """A note about the run (``allotment run: ...``) on ``err``."""
        self.say(f"allotment run: {text}")

    def resolve(
        self,
        name: str,
        spec: StepSpec | None,
        *,
        defaults: Sequence[tuple[Resources, Source]] = (),
        extra: Sequence[tuple[Resources, Source]] = (),
    ) -> Resolved:
        """The step resolved for the local backend (or for the backend a decorator pins it to)."""
        return self.settings.resolve(spec, step=name, backend="local", defaults=defaults, extra=extra)

    def limits(
        self, label: str, spec: StepSpec | None, *, name: str | None = None, defaults: Sequence[tuple[Resources, Source]] = ()
    ) -> tuple[Limits, int | None]:
        """The limits of one step, named ``label`` in the table, and the memory cap its retry growth
        holds to (the policy's, :meth:`Resolved.retry_growth`). ``name``: the step's name for
        ``with`` specs (default ``label``). No spec at all means no limit (a template or task
        without one runs unconstrained on its engine too); it is measured all the same."""
        from .local import Limits

        if spec is None:
            return Limits(step=label), None
        resolved = self.resolve(name or label, spec, defaults=defaults)
        if resolved.backend != "local":
            pinned = spec.backend or resolved.backend
            self.note(f"{label}: pinned to {resolved.backend} by @{pinned}; it runs here with the values it has there")
        limits = Limits.from_resolved(resolved)
        growth = resolved.retry_growth(self.settings.policy)
        return (limits if limits.step == label else dataclasses.replace(limits, step=label)), (growth.cap if growth is not None else None)

    def run(
        self,
        label: str,
        limits: Limits,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        retries: int = 0,
        env: Mapping[str, str] | None = None,
        memory_cap_mib: int | None = None,
    ) -> StepRun:
        """Run ``fn(*args, **kwargs)`` as step ``label`` under ``limits``, with up to ``retries``
        further tries (``--retries`` instead, when given), echoing its output as it comes.
        ``env``: variables added to the child's environment."""
        from .local import run_with_retries
        from .local.units import seconds_text, used_mib_text

        retries = self.retries if self.retries is not None else retries
        self.say(f"allotment run: {label}: starting ({limits.asked_text()}" + (f", up to {retries} retries)" if retries else ")"))
        out = _Stream(f"  {label} | ", self.say)
        err = _Stream(f"  {label} ! ", self.say)
        child_env = None if not env else {**os.environ, **env}

        def ended(result: StepResult) -> None:
            out.end_try()
            err.end_try()
            m = result.measurement
            peak = "" if m.peak_memory_bytes is None else f", peak {used_mib_text(m.peak_memory_bytes)}"
            head = f"allotment run: {label}" + (f" (try {result.try_number})" if result.try_number > 1 else "")
            if result.ok:
                returned = "" if result.value is None else f", returned {_short(result.value)}"
                self.say(f"{head}: succeeded in {seconds_text(m.wall_time_s)}{peak}{returned}")
            else:
                self.say(f"{head}: {result.outcome.replace('_', '-')}: {result.reason}")

        started = time.time()
        try:
            tries = run_with_retries(
                limits,
                fn,
                args,
                kwargs,
                retries=retries,
                memory_cap_mib=memory_cap_mib,
                on_try=ended,
                earlier_oom_kills=0,  # allotment run counts every try itself
                stdout=out.write_fd,
                stderr=err.write_fd,
                env=child_env,
                main_module=False,
                **({"host": self.host} if self.host is not None else {}),
            )
        except AllotmentError:
            self.say(f"allotment run: {label}: could not start")
            raise
        finally:
            out.close()
            err.close()
        self.results.extend(tries.tries)
        if not tries.ok:
            self.failed.append(label)
        stdout = out.tries[-1] if out.tries else ""
        return StepRun(label, tries, stdout, started)

    def run_function(self, label: str, spec: StepSpec | None, file: Path, name: str, *, retries: int = 0) -> StepRun:
        """Run the global ``name`` of ``file`` (a decorated function) without arguments."""
        limits, cap = self.limits(label, spec)
        return self.run(label, limits, call_in_file, (str(file.resolve()), name), retries=retries, memory_cap_mib=cap)

    def run_script(
        self,
        label: str,
        spec: StepSpec | None,
        source: str,
        command: Sequence[str],
        *,
        name: str | None = None,
        defaults: Sequence[tuple[Resources, Source]] = (),
        retries: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> StepRun:
        """Run a script (``source``, run by ``command`` with the script's file appended, as a
        container runs an Argo script template) as step ``label``."""
        limits, cap = self.limits(label, spec, name=name, defaults=defaults)
        return self.run(label, limits, run_script, (source, list(command), label), retries=retries, env=env, memory_cap_mib=cap)

    def table(self) -> str:
        """The table of every try so far."""
        return local_table(self.results) if self.results else "no step ran\n"


class Plan(Protocol):
    """What a face's runner (:data:`allotment.faces.RUNNERS`) returns for a file it takes on."""

    @property
    def names(self) -> Sequence[str]:
        """Every name ``--step`` may give for this file (task, template and step names)."""
        ...

    def run(self, run: LocalRun, steps: Sequence[str]) -> None:
        """Run the file's steps (only ``steps`` and what they need, when given) through ``run``;
        stop at the first that fails (``run.failed``)."""
        ...


@dataclass(frozen=True)
class _Plain:
    """A decorated function of a file, to run without arguments (``problem``: why it cannot be)."""

    name: str
    spec: StepSpec | None
    global_name: str
    problem: str | None = None


def _plain_steps(file: Path, module: Any) -> list[_Plain]:
    """Each decorated function of ``module``, in file order; a task of an engine is an error."""
    from .discover import find_steps

    names = {id(value): key for key, value in vars(module).items()}
    steps: list[_Plain] = []
    for step in find_steps(module, file):
        global_name = names.get(id(step.obj))
        if global_name is None or not inspect.isfunction(step.obj):
            raise AllotmentError(
                f"in {file.as_posix()} is a task of an engine ({type(step.obj).__name__}), not a plain function",
                step=step.name,
                accepted="run an Airflow DAG with `airflow dags test DAG_ID`; allotment run takes decorated functions and Hera workflows",
            )
        required = [
            p.name
            for p in inspect.signature(step.obj).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        problem = (
            f"takes parameters without defaults ({', '.join(required)}); allotment run calls each step without arguments"
            if required
            else None
        )
        steps.append(_Plain(step.name, step.spec, global_name, problem))
    return steps


def run_command(
    paths: Sequence[Path],
    settings: Settings,
    *,
    steps: Sequence[str] = (),
    report: str | None = None,
    retries: int | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    host: Host | None = None,
) -> int:
    """``allotment run``: run the steps under ``paths`` (module docs) and return the exit status
    (:func:`run_paths`). The table goes to ``out``, progress to ``err``."""
    return run_paths(paths, LocalRun(settings, err=err, host=host, retries=retries), steps=steps, report=report, out=out)


def run_paths(
    paths: Sequence[Path], run: LocalRun, *, steps: Sequence[str] = (), report: str | None = None, out: IO[str] | None = None
) -> int:
    """Run the steps under ``paths`` through ``run``: 0 when every step ran and succeeded, 1 when
    one failed or none was found. The table of every try goes to ``out`` at the end, and
    ``report`` (a path) gets the JSON report, whatever happened. What stops a step from starting
    (too few GPUs, a workflow feature not covered...) is raised, after the table of what ran."""
    from .discover import find_steps, load_module, python_files
    from .faces import RUNNERS, load_runner
    from .withspec import check_steps

    settings = run.settings
    out = out if out is not None else sys.stdout
    if settings.backend != "local":
        run.note(
            f"the backend {settings.backend} (from {dict(settings.origins).get('backend', 'default')}) does not apply here: "
            "allotment run runs every step on this machine, with the with specs for local and for every backend"
        )
    files = python_files(paths)
    work: list[tuple[Path, Plan | None, list[_Plain]]] = []
    names: list[str] = []
    selectable: set[str] = set()
    for file in files:
        module = load_module(file)
        names += [s.name for s in find_steps(module, file)]
        plan = next((p for engine in RUNNERS if engine in sys.modules and (p := load_runner(engine)(module, file)) is not None), None)
        if plan is not None:
            selectable.update(plan.names)
            work.append((file, plan, []))
        else:
            plain = _plain_steps(file, module)
            selectable.update(p.name for p in plain)
            work.append((file, None, [p for p in plain if not steps or p.name in steps]))
    check_steps([*settings.withs, *settings.sets], names)
    for _, _, plain in work:
        for p in plain:
            if p.problem is not None:
                raise AllotmentError(
                    p.problem,
                    step=p.name,
                    accepted="give the parameters defaults, or run the step from your own script with allotment.local.run_step",
                )
    unknown = [s for s in steps if s not in selectable]
    if unknown:
        raise AllotmentError(
            f"--step {', '.join(repr(s) for s in unknown)} names no step of {', '.join(f.as_posix() for f in files)}",
            accepted=f"steps are {', '.join(sorted(selectable)) or '(none)'}",
        )
    problem: AllotmentError | None = None
    try:
        for file, plan, plain in work:
            if plan is not None:
                plan.run(run, list(steps))
            else:
                for p in plain:
                    if not run.run_function(p.name, p.spec, file, p.global_name).ok:
                        break
            if run.failed:
                break
    except AllotmentError as e:
        problem = e
    finally:
        out.write(run.table())
        out.flush()
        if report is not None:
            from .local import write_report

            write_report(report, run.results, run.host)
            run.note(f"report written to {report}")
    if problem is not None:
        raise problem
    if not run.results:
        run.note(f"found no step to run in {', '.join(f.as_posix() for f in files)}")
        return 1
    if run.failed:
        run.note(f"failed: {', '.join(run.failed)}; the steps after it did not run")
        return 1
    return 0
