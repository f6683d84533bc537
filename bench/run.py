"""allotment's benchmarks: ``make bench`` (full) or ``make bench-quick`` (proves the harness runs).

::

    python bench/run.py [--quick] [--reps 7] [--only import,dag,argo,resolve,emitter,peer]
                        [--metaflow-venv DIR] [--out bench/RESULTS.md] [--json FILE]

Every figure is a ratio to a baseline measured in the same run: the runs of a comparison
alternate (A B A B ...), each sample is a fresh process, each comparison starts with one
untimed warm-up of each side, and min/median/max are over the repetitions (7 by default; the
goal is judged on the median). Sections (issue 13):

1. import cost: ``import allotment`` and friends against pydantic, the provider operators, Hera;
2. DAG parsing: ``DagBag`` over generated DAG files of N KubernetesPodOperator / ``@task.kubernetes``
   tasks, allotment's spec against the same pod arguments written by hand: time and peak RSS;
3. Argo rendering: a chain of N Hera script templates built and ``to_yaml()``-ed, against raw Hera
   resources and against no resources (the floor); ``allotment render --target argo`` end to end;
4. resolution throughput on one core, against pydantic validating the same input dicts;
5. the YAML emitter of ``allotment render``: libyaml against the pure-Python emitter (same bytes);
6. the peer: Metaflow's ``argo-workflows create --only-json`` against ``allotment render --target
   argo``, only with ``--metaflow-venv`` (or env ``ALLOTMENT_BENCH_METAFLOW``) naming a venv that
   has metaflow; never in CI.

With pyinstrument importable (``pip install pyinstrument`` into the venv; no dependency of
allotment) the full run also profiles the DAG parse and the Argo build once each and lists
allotment's own hot spots. Quick mode: N = 10 (2 for the peer), one repetition, no warm-up, no
profile; its figures are not judged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import peer  # noqa: E402
import workloads  # noqa: E402
from harness import BenchError, Figure, Goal, Round, Run  # noqa: E402

READING_NOTE = (
    "Every figure is a ratio to a baseline measured in the same run: the two sides alternate (A B A B ...), every "
    "sample is a fresh process, each comparison starts with one untimed warm-up of each side, and min / median / max "
    "are over the repetitions; a goal is judged on the median. A time is the **CPU time** (user + system) of the "
    "measured part only (`process_time()` inside the child around the import, the `DagBag()` call, the build plus "
    "`to_yaml()`), or of the whole command for rows that say *whole process* (`os.wait4` rusage): the machine is small "
    "and shared with other engineers' work, and CPU time is what such sharing disturbs least. The last column is the "
    "median of the same ratio on wall-clock time, shown, not judged. Peak RSS is `ru_maxrss` of the child process."
)
SECTIONS = ("import", "dag", "argo", "resolve", "emitter", "peer")
PACKAGES = (
    "allotment",
    "pydantic",
    "pydantic-core",
    "PyYAML",
    "apache-airflow",
    "apache-airflow-core",
    "apache-airflow-task-sdk",
    "apache-airflow-providers-cncf-kubernetes",
    "kubernetes",
    "hera",
    "moto",
    "pyinstrument",
)


class Bench:
    """One benchmark run: its settings, scratch folder, figures and report sections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick: bool = args.quick
        self.reps: int = 1 if args.quick else args.reps
        self.warmup = not args.quick
        self.scratch = Path(tempfile.mkdtemp(prefix="allotment-bench-"))
        self.figures: list[Figure] = []
        self.extra: dict[str, list[str]] = {}
        self.metaflow_venv: Path | None = Path(args.metaflow_venv) if args.metaflow_venv else None
        home = self.scratch / "airflow-home"
        home.mkdir()
        # Byte-code caches are written (a deployment has them); nothing else of this shell's Python,
        # Airflow or allotment settings leaks in.
        drop = ("ALLOTMENT_", "AIRFLOW__", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
                "PYTHONHASHSEED": "0",
            }
        )
        self.env = env

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def measure(self, runs: Sequence[Run], reps: int | None = None) -> Round:
        self.log("  " + " | ".join(r.label for r in runs))
        return Round(runs, reps or self.reps, self.warmup).measure(self.env, self.log)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def sizes(self, full: Sequence[int]) -> Sequence[int]:
        return (10,) if self.quick else full

    # ------------------------------------------------------------------ 1. import cost

    def imports(self) -> None:
        section = "1. Import cost"
        self.log(section)

        def code(label: str, measured: str, setup: str = "", freeze: bool = False) -> Run:
            return Run(label, "code", {"setup": setup, "code": measured, "freeze": freeze})

        model = "class Model(BaseModel):\n    cpu: int | None = None\n    memory: int | None = None"
        step = "@allotment.resources(cpu=2, memory='4Gi')\ndef step() -> None: ..."
        r = self.measure(
            [
                code("import allotment", "import allotment"),
                code("import pydantic", "import pydantic"),
                code("import allotment + first @resources step", f"import allotment\n{step}"),
                code("import pydantic + one BaseModel subclass", f"from pydantic import BaseModel\n{model}"),
            ]
        )
        self.add(
            Figure(
                "import.allotment",
                section,
                "`import allotment`",
                "`import pydantic`",
                r.ratios("import allotment", "import pydantic"),
                Goal("<=", 1.3),
            ),
            Figure(
                "import.first_step",
                section,
                "`import allotment` + first `@resources` step",
                "`import pydantic` + one `BaseModel` subclass",
                r.ratios("import allotment + first @resources step", "import pydantic + one BaseModel subclass"),
                Goal("<=", 1.5),
            ),
            Figure(
                "import.first_step_vs_pydantic",
                section,
                "`import allotment` + first `@resources` step",
                "`import pydantic` alone",
                r.ratios("import allotment + first @resources step", "import pydantic"),
                note="the issue's earlier 2.75x",
            ),
        )
        airflow_core = "import airflow.sdk"
        r = self.measure(
            [
                code(
                    "allotment.airflow operators",
                    "from allotment.airflow import KubernetesPodOperator, KubernetesDecoratedOperator",
                    airflow_core,
                    freeze=True,
                ),
                code(
                    "provider operators",
                    "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator\n"
                    "from airflow.providers.cncf.kubernetes.decorators.kubernetes import _KubernetesDecoratedOperator",
                    airflow_core,
                    freeze=True,
                ),
            ]
        )
        self.add(
            Figure(
                "import.airflow",
                section,
                "`from allotment.airflow import KubernetesPodOperator, KubernetesDecoratedOperator`",
                "the provider's `KubernetesPodOperator` and `_KubernetesDecoratedOperator` they extend",
                r.ratios("allotment.airflow operators", "provider operators"),
                Goal("<=", 1.05),
                note="Airflow's core (`airflow.sdk`) loaded first, untimed, then `gc.freeze()`, as in the DAG processor",
            )
        )
        r = self.measure(
            [
                code("allotment.argo", "from allotment.argo import install\ninstall()"),
                code("hera.workflows", "import hera.workflows"),
            ]
        )
        self.add(
            Figure(
                "import.argo",
                section,
                "`from allotment.argo import install; install()`",
                "`import hera.workflows`",
                r.ratios("allotment.argo", "hera.workflows"),
                Goal("<=", 1.05),
            )
        )

    # ------------------------------------------------------------------ 2. DAG parsing

    def dags(self) -> None:
        section = "2. DAG parsing (DagBag, fresh process)"
        self.log(section)
        growth: list[str] = []
        for family, make, label in (
            ("kpo", workloads.kpo_dag, "KubernetesPodOperator `resources=`"),
            ("task_kubernetes", workloads.task_kubernetes_dag, "`@resources` on `@task.kubernetes`"),
        ):
            base = (
                "hand-written `container_resources`, volumes, tolerations"
                if family == "kpo"
                else "plain `@task.kubernetes` with the same objects"
            )
            for n in self.sizes((10, 100, 1000)):
                folders = {}
                for ours in (True, False):
                    folder = self.scratch / f"dags_{family}_{n}_{'allotment' if ours else 'hand'}"
                    workloads.write(folder, f"bench_{family}_{n}.py", make(n, allotment=ours))
                    folders[ours] = folder
                runs = [
                    Run("allotment", "dagbag", {"folder": str(folders[True]), "tasks": n, "pods": n <= 100}),
                    Run("hand-written", "dagbag", {"folder": str(folders[False]), "tasks": n, "pods": n <= 100}),
                ]
                r = self.measure(runs)
                if n <= 100:
                    self._same(r, "pods", f"{family} N={n}: allotment's pods differ from the hand-written ones")
                for s in (*r.samples["allotment"], *r.samples["hand-written"]):
                    s["parse_rss_kib"] = max(s["maxrss_kib"] - s["maxrss_before_kib"], 1)
                self.add(
                    Figure(
                        f"dag.{family}.{n}.time",
                        section,
                        f"{label}, N={n}: parse time",
                        base,
                        r.ratios("allotment", "hand-written"),
                        Goal("<=", 1.05),
                    ),
                    Figure(
                        f"dag.{family}.{n}.rss",
                        section,
                        f"{label}, N={n}: peak RSS of the process",
                        base,
                        r.ratios("allotment", "hand-written", "maxrss_kib"),
                        Goal("<=", 1.05),
                    ),
                    Figure(
                        f"dag.{family}.{n}.parse_rss",
                        section,
                        f"{label}, N={n}: RSS added by the parse",
                        base,
                        r.ratios("allotment", "hand-written", "parse_rss_kib"),
                        note="peak after minus peak before `DagBag()`",
                    ),
                )
                growth.append(f"| {family} | {n} | {r.median('allotment') / n * 1e3:.2f} | {r.median('hand-written') / n * 1e3:.2f} |")
        self.extra["dag_growth"] = [
            "Parse CPU time per task (median ms; for the shape of the growth with N only, the figures above are the ratios):",
            "",
            "| DAG | N | allotment | hand-written |",
            "|---|---:|---:|---:|",
            *growth,
        ]

    def _same(self, r: Round, key: str, message: str) -> None:
        """The runs of ``r`` produced the same ``key`` (the baselines ask Kubernetes for the same)."""
        values = {label: json.dumps(samples[0][key], sort_keys=True) for label, samples in r.samples.items() if key in samples[0]}
        if len(set(values.values())) > 1:
            first, *rest = values.items()
            raise BenchError(f"{message}:\n{first[0]}: {first[1][:1500]}\n" + "\n".join(f"{k}: {v[:1500]}" for k, v in rest))

    # ------------------------------------------------------------------ 3. Argo rendering

    def argo(self) -> None:
        section = "3. Argo rendering (Hera, fresh process)"
        self.log(section)
        ours = {"preload": ["hera.workflows", "allotment", "allotment.argo.hooks"], "install": True}
        theirs = {"preload": ["hera.workflows"], "install": False}
        medians: dict[str, dict[int, float]] = {}
        for n in self.sizes((10, 100, 1000, 5000)):
            files = {
                v: workloads.write(self.scratch / f"hera_{n}", f"wf_{v.replace('-', '_')}_{n}.py", workloads.hera_workflow(n, v))
                for v in workloads.HERA_VARIANTS
            }
            canonical = n <= 100
            runs = [
                Run(v, "hera", {"file": str(files[v]), "canonical": canonical, **(ours if v.startswith("allotment") else theirs)})
                for v in workloads.HERA_VARIANTS
            ]
            reps = self.reps if n < 5000 or self.quick else max(5, self.reps - 2)
            r = self.measure(runs, reps)
            if canonical:
                sub = Round(r.runs, r.reps, samples={k: v for k, v in r.samples.items() if k != "floor"})
                self._same(sub, "templates_k8s", f"Hera N={n}: allotment's template resources differ from raw Hera's")
            note = "" if reps == self.reps else f"{reps} repetitions"
            self.add(
                Figure(
                    f"argo.{n}.vs_raw",
                    section,
                    f"build + `to_yaml()`, N={n}",
                    "raw Hera `Resources`/`EmptyDirVolume`/tolerations",
                    r.ratios("allotment", "raw"),
                    Goal("<=", 1.0),
                    note,
                ),
                Figure(
                    f"argo.{n}.vs_floor",
                    section,
                    f"build + `to_yaml()`, N={n}",
                    "the same workflow without resources (floor)",
                    r.ratios("allotment", "floor"),
                    Goal("<=", 1.25),
                    note,
                ),
                Figure(
                    f"argo.{n}.fixed_vs_floor",
                    section,
                    f"build + `to_yaml()`, N={n}, submit parameters off (`overridable(False)`)",
                    "floor",
                    r.ratios("allotment-fixed", "floor"),
                    note=note,
                ),
                Figure(f"argo.{n}.raw_vs_floor", section, f"raw Hera resources, N={n}", "floor", r.ratios("raw", "floor"), note=note),
                Figure(
                    f"argo.{n}.bytes_vs_floor",
                    section,
                    f"YAML bytes, N={n}",
                    "floor",
                    r.ratios("allotment", "floor", "bytes"),
                    note="output size, not time",
                ),
            )
            for v in workloads.HERA_VARIANTS:
                medians.setdefault(v, {})[n] = r.median(v)
            # End to end: `allotment render --target argo` against the floor and raw files printing their own to_yaml().
            cli = shutil.which("allotment", path=str(Path(sys.executable).parent)) or "allotment"
            e2e = self.measure(
                [
                    Run("allotment render", argv=[cli, "render", "--target", "argo", str(files["allotment"])]),
                    Run("python floor file", argv=[sys.executable, str(files["floor"])]),
                    Run("python raw file", argv=[sys.executable, str(files["raw"])]),
                ],
                reps,
            )
            self.add(
                Figure(
                    f"argo.{n}.e2e_vs_floor",
                    section,
                    f"`allotment render --target argo`, N={n}, whole process",
                    "`python floor.py` printing Hera's `to_yaml()`",
                    e2e.ratios("allotment render", "python floor file"),
                    Goal("<=", 1.25),
                    note,
                ),
                Figure(
                    f"argo.{n}.e2e_vs_raw",
                    section,
                    f"`allotment render --target argo`, N={n}, whole process",
                    "`python raw.py` printing Hera's `to_yaml()`",
                    e2e.ratios("allotment render", "python raw file"),
                    Goal("<=", 1.0),
                    note,
                ),
            )
            for label in ("allotment render", "python floor file"):
                medians.setdefault(label, {})[n] = e2e.median(label)
        sizes = sorted(next(iter(medians.values())))
        if len(sizes) > 1:
            head = " | ".join(f"t({b})/t({a})" for a, b in itertools.pairwise(sizes))
            lines = [
                "How each grows with N (ratio of median CPU times between sizes; N grows 10x, then 5x):",
                "",
                f"| variant | {head} |",
                "|---|" + "---:|" * (len(sizes) - 1),
            ]
            for v, per in medians.items():
                lines.append(f"| {v} | " + " | ".join(harness.fmt(per[b] / per[a]) for a, b in itertools.pairwise(sizes)) + " |")
            self.extra["argo_growth"] = lines

    # ------------------------------------------------------------------ 4. resolution throughput

    def resolve(self) -> None:
        section = "4. Resolution throughput (one core)"
        self.log(section)
        count = 200 if self.quick else 5000
        r = self.measure([Run("allotment", "resolve", {"count": count}), Run("pydantic", "pydantic", {"count": count})])
        self.add(
            Figure(
                "resolve.throughput",
                section,
                f"specs decorated, resolved and compiled to Kubernetes per second ({count} specs)",
                "pydantic validating the same input dicts per second",
                r.ratios("allotment", "pydantic", invert=True),
                note="a throughput ratio: below 1 is slower than pydantic",
            )
        )

    # ------------------------------------------------------------------ 5. the YAML emitter

    def emitter(self) -> None:
        section = "5. YAML emitter of `allotment render` (plugin/output.py)"
        self.log(section)
        n = 10 if self.quick else 500
        source = workloads.write(self.scratch / "emitter", f"wf_emit_{n}.py", workloads.hera_workflow(n, "allotment"))
        cli = shutil.which("allotment", path=str(Path(sys.executable).parent)) or "allotment"
        docs = self.scratch / "emitter" / "documents.json"
        rendered = subprocess.run(
            [cli, "render", "--target", "argo", "-o", "json", str(source)], env=self.env, capture_output=True, text=True, check=False
        )
        if rendered.returncode != 0 or not rendered.stdout.strip():
            raise BenchError(f"allotment render -o json failed\n{rendered.stderr[-3000:]}")
        docs.write_text(rendered.stdout)
        r = self.measure(
            [Run("libyaml", "emit", {"file": str(docs), "native": True}), Run("pure Python", "emit", {"file": str(docs), "native": False})]
        )
        self._same(r, "sha256", "libyaml's YAML differs from the pure-Python emitter's")
        pure = (
            "import sys\nimport allotment.output as o\nfrom allotment.cli import main\n"
            "o.yaml_dumper = lambda native=True, _f=o.yaml_dumper: _f(False)\nraise SystemExit(main(sys.argv[1:]))"
        )
        args = ["render", "--target", "argo", str(source)]
        e2e = self.measure(
            [Run("render (libyaml)", argv=[cli, *args]), Run("render (pure-Python emitter)", argv=[sys.executable, "-c", pure, *args])]
        )
        if e2e.samples["render (libyaml)"][0]["head"] != e2e.samples["render (pure-Python emitter)"][0]["head"]:
            raise BenchError("allotment render's YAML differs between the two emitters")
        self.add(
            Figure(
                f"emitter.{n}.dump",
                section,
                f"YAML dump of a {n}-template workflow, libyaml (after)",
                "pure-Python `SafeDumper` (before)",
                r.ratios("libyaml", "pure Python"),
                note="byte-identical output checked",
            ),
            Figure(
                f"emitter.{n}.render",
                section,
                f"`allotment render --target argo`, N={n}, libyaml (after)",
                "the same with the pure-Python emitter (before)",
                e2e.ratios("render (libyaml)", "render (pure-Python emitter)"),
                note="whole process",
            ),
        )

    # ------------------------------------------------------------------ 6. the peer

    def peer(self) -> None:
        section = "6. The peer: Metaflow `argo-workflows create --only-json`"
        self.log(section)
        venv = self.metaflow_venv
        if venv is None or not (venv / "bin" / "python").exists():
            reason = (
                "no Metaflow venv given (`--metaflow-venv DIR` or env ALLOTMENT_BENCH_METAFLOW)"
                if venv is None
                else f"{venv} has no bin/python"
            )
            self.add(Figure("peer.skipped", section, "Metaflow peer", "-", [], note=f"not run: {reason}"))
            return
        cli = shutil.which("allotment", path=str(Path(sys.executable).parent)) or "allotment"
        with peer.MetaflowPeer(venv, self.scratch / "metaflow", self.env, self.log) as mf:
            comparison: list[str] = []
            for n in (2,) if self.quick else (2, 100, 500):
                steps = workloads.metaflow_steps(n)
                hera_file = workloads.write(self.scratch / "peer", f"wf_peer_{steps}.py", workloads.hera_workflow(steps, "allotment"))
                flow = mf.flow(steps)
                runs = [
                    Run("metaflow", argv=mf.argv(flow), env=mf.env, cwd=str(flow.parent)),
                    Run("allotment render", argv=[cli, "render", "--target", "argo", str(hera_file)]),
                    Run("allotment render -o json", argv=[cli, "render", "--target", "argo", "-o", "json", str(hera_file)]),
                ]
                r = self.measure(runs)
                goal = Goal(">=", 2.0) if steps == 500 else None
                self.add(
                    Figure(
                        f"peer.{steps}.yaml",
                        section,
                        f"speed-up over Metaflow, {steps} steps, YAML, submit parameters on",
                        "Metaflow `--only-json`",
                        r.ratios("allotment render", "metaflow", invert=True),
                        goal,
                    ),
                    Figure(
                        f"peer.{steps}.json",
                        section,
                        f"speed-up over Metaflow, {steps} steps, JSON (`-o json`)",
                        "Metaflow `--only-json`",
                        r.ratios("allotment render -o json", "metaflow", invert=True),
                    ),
                )
                if not comparison:
                    comparison = peer.compare_resources(r.samples["metaflow"][0]["head"], r.samples["allotment render -o json"][0]["head"])
            self.extra["peer_resources"] = comparison

    # ------------------------------------------------------------------ profiles

    def profiles(self) -> None:
        if self.quick or importlib.util.find_spec("pyinstrument") is None:
            self.extra["profiles"] = [
                "Not profiled: "
                + ("quick mode." if self.quick else "pyinstrument is not installed in this venv (`pip install pyinstrument`).")
            ]
            return
        self.log("profiles")
        lines: list[str] = []
        jobs: list[tuple[str, str, dict[str, Any], Callable[[], None]]] = []
        for family, make in (("kpo", workloads.kpo_dag), ("task_kubernetes", workloads.task_kubernetes_dag)):
            folder = self.scratch / f"profile_{family}"

            def writer(folder: Path = folder, make: Any = make, family: str = family) -> None:
                workloads.write(folder, f"bench_{family}_1000.py", make(1000, allotment=True))

            jobs.append((f"DagBag, {family}, N=1000, allotment", "dagbag", {"folder": str(folder), "tasks": 1000}, writer))
        hera_file = self.scratch / "profile_hera" / "wf_profile_1000.py"

        def hera_writer() -> None:
            workloads.write(hera_file.parent, hera_file.name, workloads.hera_workflow(1000, "allotment"))

        jobs.append(
            (
                "Hera build + to_yaml(), N=1000, allotment",
                "hera",
                {"file": str(hera_file), "preload": ["hera.workflows", "allotment", "allotment.argo.hooks"], "install": True},
                hera_writer,
            )
        )
        for title, kind, args, prepare in jobs:
            prepare()
            done = subprocess.run(
                [sys.executable, str(HERE / "profiling.py"), kind, json.dumps(args)],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise BenchError(f"profile {title} failed\n{done.stderr[-3000:]}")
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            lines += [
                f"**{title}** (pyinstrument, one run; share of the profiled time, inclusive):",
                "",
                "| share | allotment function | where |",
                "|---:|---|---|",
            ]
            lines += [f"| {row['share'] * 100:.1f}% | `{row['function']}` | {row['where']} |" for row in summary["ours"][:12]]
            lines += ["", "| share | largest others | where |", "|---:|---|---|"]
            skip = (
                "measure",
                "[self]",
                "<module>",
                "import_module",
                "_gcd_import",
                "_find_and_load",
                "_find_and_load_unlocked",
                "_load_unlocked",
                "exec_module",
                "_call_with_frames_removed",
            )
            others = [row for row in summary["others"] if row["function"] not in skip][:10]
            lines += [f"| {row['share'] * 100:.1f}% | `{row['function']}` | {row['where']} |" for row in others]
            lines.append("")
        self.extra["profiles"] = lines

    # ------------------------------------------------------------------ report

    def state(self, started: dt.datetime, package_versions: dict[str, str], machine: dict[str, str]) -> dict[str, Any]:
        """Everything the report is made of (written to the JSON file; ``--report-from`` reads it back)."""
        return {
            "quick": self.quick,
            "reps": self.reps,
            "started": started.isoformat(),
            "minutes": (dt.datetime.now(dt.UTC) - started).total_seconds() / 60,
            "machine": machine,
            "versions": package_versions,
            "figures": [f.as_dict() for f in self.figures],
            "extra": self.extra,
        }


def report(state: dict[str, Any]) -> str:
    """RESULTS.md from a run's :meth:`Bench.state`, with ``bench/ANALYSIS.md`` (hand-written) appended to a full run's."""
    quick: bool = state["quick"]
    judged = not quick
    started = dt.datetime.fromisoformat(state["started"])
    figures = [
        Figure(
            f["id"],
            f["section"],
            f["name"],
            f["baseline"],
            f["ratios"],
            Goal(*_goal(f["goal"])) if f["goal"] else None,
            f["note"],
            f["wall_ratios"],
        )
        for f in state["figures"]
    ]
    extra: dict[str, list[str]] = state["extra"]
    out = ["# allotment benchmarks", ""]
    out.append(
        f"Written by `{'make bench-quick' if quick else 'make bench'}` (`bench/run.py`) on {started:%Y-%m-%d %H:%M} UTC"
        f" (the run took {state['minutes']:.0f} min). "
        + (
            "**Quick mode**: one repetition, small N; it proves the harness runs and judges nothing."
            if quick
            else f"{state['reps']} repetitions per comparison unless a row says otherwise. "
            "Per-repetition ratios and raw figures: `bench/results.json`."
        )
    )
    out += ["", READING_NOTE, ""]
    out += ["## Machine", "", *[f"- {k}: {v}" for k, v in state["machine"].items()], ""]
    out += ["## Versions", "", *[f"- {k}: {v}" for k, v in state["versions"].items()], ""]
    goals = [f for f in figures if f.goal is not None and f.ratios]
    if goals and judged:
        missed = [f for f in goals if f.goal is not None and not f.goal.met(f.median)]
        text = f"{len(goals) - len(missed)} of {len(goals)} goals met (judged on the median)."
        if missed:
            text += " Missed: " + "; ".join(f"{f.name} vs {f.baseline}: {harness.fmt(f.median)} (goal {f.goal})" for f in missed) + "."
        out += ["## Summary", "", text, ""]
    for section in sorted(dict.fromkeys(f.section for f in figures)):
        out += [f"## {section}", "", *harness.table([f for f in figures if f.section == section], judged), ""]
        key = {"2": "dag_growth", "3": "argo_growth", "6": "peer_resources"}.get(section[0])
        if key and extra.get(key):
            out += [*extra[key], ""]
    if "profiles" in extra:
        out += ["## Profiles", "", *extra["profiles"], ""]
    analysis = HERE / "ANALYSIS.md"
    if analysis.exists() and not quick:
        out += [analysis.read_text().rstrip(), ""]
    return "\n".join(out)


def _goal(text: str) -> tuple[str, float]:
    op, value = text.split()
    return op, float(value.removesuffix("x"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="small N, one repetition, no warm-up, no profile (CI: proves the harness runs)"
    )
    parser.add_argument("--reps", type=int, default=7, help="repetitions per comparison (default 7)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections to run: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--metaflow-venv", default=os.environ.get("ALLOTMENT_BENCH_METAFLOW"), help="a venv with metaflow (enables the peer section)"
    )
    parser.add_argument(
        "--out", help="the Markdown report (default bench/RESULTS.md; in quick mode allotment-bench-quick.md in the temp folder)"
    )
    parser.add_argument("--json", help="the run as JSON (default bench/results.json; in quick mode none)")
    parser.add_argument(
        "--report-from", metavar="JSON", help="measure nothing: write the report again from a run's JSON (after editing bench/ANALYSIS.md)"
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.report_from:
        state = json.loads(Path(args.report_from).read_text())
        target = Path(args.out) if args.out else HERE / "RESULTS.md"
        target.write_text(report(state) + "\n")
        print(f"bench: wrote {target}", file=sys.stderr)
        return 0
    bench = Bench(args)
    started = dt.datetime.now(dt.UTC)
    machine = harness.machine()
    package_versions = harness.versions(PACKAGES)
    try:
        import yaml

        package_versions["PyYAML"] += " (libyaml: " + ("yes" if getattr(yaml, "__with_libyaml__", False) else "no") + ")"
    except ImportError:
        pass
    if "peer" in only and bench.metaflow_venv is not None and (bench.metaflow_venv / "bin" / "python").exists():
        package_versions.update(
            {
                f"{k} (peer venv)": v
                for k, v in harness.versions(("metaflow", "boto3", "kubernetes"), str(bench.metaflow_venv / "bin" / "python")).items()
            }
        )
    steps: dict[str, Callable[[], None]] = {
        "import": bench.imports,
        "dag": bench.dags,
        "argo": bench.argo,
        "resolve": bench.resolve,
        "emitter": bench.emitter,
        "peer": bench.peer,
    }
    try:
        chosen = [steps[name] for name in SECTIONS if name in only]
        if bench.quick:
            # Quick mode judges nothing, so its sections may share the machine: two at a time.
            with ThreadPoolExecutor(max_workers=2) as pool:
                for future in [pool.submit(step) for step in chosen]:
                    future.result()
        else:
            for step in chosen:
                step()
        if "dag" in only or "argo" in only:
            bench.profiles()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(bench.scratch, ignore_errors=True)
    if hasattr(os, "getloadavg"):
        machine["load average (1, 5, 15 min) at the end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    state = bench.state(started, package_versions, machine)
    json_out = Path(args.json) if args.json else None if bench.quick else HERE / "results.json"
    if json_out is not None:
        json_out.write_text(json.dumps(state, indent=1) + "\n")
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / "allotment-bench-quick.md" if bench.quick else HERE / "RESULTS.md"
    out.write_text(report(state) + "\n")
    print(f"bench: wrote {out}" + (f" and {json_out}" if json_out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
