"""The measuring machinery: fresh processes, alternating rounds, ratios, and the report.

A :class:`Run` is one thing measured: either a :mod:`bench.child` kind (the child times the
measured part itself and reports its peak RSS) or a whole command (timed from here, its peak
RSS from ``os.wait4``). A :class:`Round` runs its runs one after the other, A B C A B C ...,
``reps`` times, each in a fresh process, after one untimed warm-up of each (so byte-code caches
and the page cache are as warm for the first sample as for the last). A :class:`Figure` is the
ratio of one run to another **within the same repetition**; its min, median and max are over
the repetitions, and a goal is judged on the median. No absolute time is ever a figure.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHILD = HERE / "child.py"


class BenchError(RuntimeError):
    """A run failed or its work was not what it should be: the harness stops, no figure is made."""


@dataclass(frozen=True)
class Run:
    """One measured thing. ``kind`` and ``args``: a :mod:`bench.child` kind (in-process timing);
    or ``argv``: a whole command (wall time and peak RSS of the process). ``python``: the
    interpreter for a child kind (default this one)."""

    label: str
    kind: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    argv: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    python: str = sys.executable
    cwd: str | None = None

    def sample(self, base_env: Mapping[str, str]) -> dict[str, Any]:
        """Measure once in a fresh process: ``seconds``, ``maxrss_kib`` and what the run reports."""
        env = {**base_env, **(self.env or {})}
        if self.argv:
            return _process(self.argv, env, self.cwd)
        argv = [self.python, str(CHILD), self.kind, json.dumps(dict(self.args))]
        done = subprocess.run(argv, env=env, cwd=self.cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"{self.label}: child exited {done.returncode}\n{done.stderr[-4000:]}{done.stdout[-2000:]}")
        try:
            record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError) as e:
            raise BenchError(f"{self.label}: no JSON record from the child ({e})\n{done.stdout[-2000:]}") from e
        return record


def _process(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> dict[str, Any]:
    """A whole command: wall seconds from here, its own peak RSS (``os.wait4``), its output size."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}\n{err.read().decode(errors='replace')[-4000:]}")
        size = out.tell()
        out.seek(0)
        head = out.read(200_000)
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu": cpu, "maxrss_kib": int(usage.ru_maxrss), "bytes": size, "head": head.decode(errors="replace")}


class Ratios(list[float]):
    """Ratios per repetition, with the same ratios on wall-clock time (``wall``) where they are CPU times."""

    def __init__(self, values: Sequence[float], wall: Sequence[float] = ()) -> None:
        super().__init__(values)
        self.wall = list(wall)


@dataclass
class Round:
    """Runs measured in turn, ``reps`` times; ``samples[label]`` lists one record per repetition."""

    runs: Sequence[Run]
    reps: int
    warmup: bool = True
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def measure(self, base_env: Mapping[str, str], log: Callable[[str], None] = print) -> Round:
        """Take the samples (warm-up first, when asked)."""
        if self.warmup:
            for run in self.runs:
                run.sample(base_env)
        self.samples = {run.label: [] for run in self.runs}
        for rep in range(self.reps):
            for run in self.runs:
                self.samples[run.label].append(run.sample(base_env))
            last = ", ".join(f"{r.label} {self.samples[r.label][-1]['cpu']:.3f}s cpu" for r in self.runs)
            log(f"    repetition {rep + 1}/{self.reps}: {last}")
        return self

    def ratios(self, a: str, b: str, metric: str = "cpu", invert: bool = False) -> Ratios:
        """Per repetition: ``a``'s metric over ``b``'s (``invert``: ``b`` over ``a``); for CPU time,
        the wall-clock ratios ride along (``.wall``)."""

        def per(m: str) -> list[float]:
            pairs = zip(self.samples[a], self.samples[b], strict=True)
            return [(y[m] / x[m]) if invert else (x[m] / y[m]) for x, y in pairs]

        return Ratios(per(metric), wall=per("seconds") if metric == "cpu" else [])

    def median(self, label: str, metric: str = "cpu") -> float:
        """The median of one run's metric (for growth with N, never shown as a figure itself)."""
        return statistics.median(s[metric] for s in self.samples[label])


@dataclass(frozen=True)
class Goal:
    """``op`` is ``<=`` or ``>=``; judged on the median."""

    op: str
    value: float

    def met(self, median: float) -> bool:
        return median <= self.value if self.op == "<=" else median >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}x"


@dataclass
class Figure:
    """One ratio, with its goal (None: reported, no goal set). ``wall``: the same ratio on wall-clock
    time, per repetition, where the figure is a time (shown beside it, never judged)."""

    id: str
    section: str
    name: str
    baseline: str
    ratios: list[float]
    goal: Goal | None = None
    note: str = ""
    wall: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.wall and isinstance(self.ratios, Ratios):
            self.wall = self.ratios.wall
        self.ratios = list(self.ratios)

    @property
    def median(self) -> float:
        return statistics.median(self.ratios) if self.ratios else math.nan

    def verdict(self, judged: bool) -> str:
        if self.goal is None:
            return "(no goal)"
        if not judged:
            return "not judged (quick)"
        return "met" if self.goal.met(self.median) else "**missed**"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "name": self.name,
            "baseline": self.baseline,
            "ratios": self.ratios,
            "min": min(self.ratios) if self.ratios else None,
            "median": self.median if self.ratios else None,
            "max": max(self.ratios) if self.ratios else None,
            "goal": str(self.goal) if self.goal else None,
            "met": self.goal.met(self.median) if self.goal and self.ratios else None,
            "note": self.note,
            "wall_ratios": self.wall,
            "wall_median": statistics.median(self.wall) if self.wall else None,
        }


def machine() -> dict[str, str]:
    """Cores, memory, CPU model, OS, Python, and the load average (how busy the shared machine was)."""
    info = {"cores": str(os.cpu_count())}
    if hasattr(os, "sched_getaffinity"):
        info["cores usable"] = str(len(os.sched_getaffinity(0)))
    try:
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory"] = f"{int(mem.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        info["memory"] = "unknown"
    try:
        model = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        info["cpu"] = model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or "unknown"
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version()
    if hasattr(os, "getloadavg"):
        info["load average (1, 5, 15 min) at start"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def versions(names: Sequence[str], python: str = sys.executable) -> dict[str, str]:
    """Installed versions of ``names`` in ``python``'s environment (``-`` when not installed)."""
    program = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = '-'\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([python, "-c", program, *names], capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(done.stdout)
    return found


def fmt(x: float) -> str:
    """A ratio as printed: three significant digits."""
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def table(figures: Sequence[Figure], judged: bool) -> list[str]:
    """Markdown rows for ``figures``."""
    lines = ["| figure | baseline | min | median | max | goal | verdict | wall-clock median |", "|---|---|---:|---:|---:|---|---|---:|"]
    for f in figures:
        lo, hi = (fmt(min(f.ratios)), fmt(max(f.ratios))) if f.ratios else ("-", "-")
        med = fmt(f.median) if f.ratios else "-"
        name = f"{f.name}" + (f" ({f.note})" if f.note else "")
        wall = fmt(statistics.median(f.wall)) if f.wall else "-"
        lines.append(f"| {name} | {f.baseline} | {lo} | {med} | {hi} | {f.goal or '-'} | {f.verdict(judged)} | {wall} |")
    return lines
