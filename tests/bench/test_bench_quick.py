"""The benchmark harness runs: ``bench/run.py --quick`` (what ``make bench-quick`` runs) in a subprocess
writes a report with a row for every figure of issue 13. Nothing here is about speed: quick mode
takes one sample of each side and judges no goal."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    # 1. import cost
    "import.allotment": "<= 1.3x",
    "import.first_step": "<= 1.5x",
    "import.first_step_vs_pydantic": None,
    "import.airflow": "<= 1.05x",
    "import.argo": "<= 1.05x",
    # 2. DAG parsing: time and peak memory, KubernetesPodOperator and @task.kubernetes
    "dag.kpo.10.time": "<= 1.05x",
    "dag.kpo.10.rss": "<= 1.05x",
    "dag.kpo.10.parse_rss": None,
    "dag.task_kubernetes.10.time": "<= 1.05x",
    "dag.task_kubernetes.10.rss": "<= 1.05x",
    "dag.task_kubernetes.10.parse_rss": None,
    # 3. Argo rendering against raw Hera and the floor, and `allotment render` end to end
    "argo.10.vs_raw": "<= 1x",
    "argo.10.vs_floor": "<= 1.25x",
    "argo.10.fixed_vs_floor": None,
    "argo.10.raw_vs_floor": None,
    "argo.10.bytes_vs_floor": None,
    "argo.10.e2e_vs_floor": "<= 1.25x",
    "argo.10.e2e_vs_raw": "<= 1x",
    # 4. resolution throughput; 5. the YAML emitter before/after
    "resolve.throughput": None,
    "emitter.10.dump": None,
    "emitter.10.render": None,
}


def test_quick_mode_writes_every_figure(tmp_path: Path) -> None:
    out, figures = tmp_path / "RESULTS.md", tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k != "ALLOTMENT_BENCH_METAFLOW"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out), "--json", str(figures)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(figures.read_text())
    assert data["quick"] is True
    assert data["reps"] == 1
    by_id = {f["id"]: f for f in data["figures"]}

    for figure_id, goal in EXPECTED.items():
        assert figure_id in by_id, f"no figure {figure_id}; got {sorted(by_id)}"
        figure = by_id[figure_id]
        assert figure["goal"] == goal, figure_id
        assert len(figure["ratios"]) == 1, figure_id
        assert math.isfinite(figure["ratios"][0]), figure_id
        assert figure["ratios"][0] > 0, figure_id
        assert figure["met"] is None or isinstance(figure["met"], bool)

    # Without a Metaflow venv the peer is not run, and the report says so instead of a figure.
    assert by_id["peer.skipped"]["ratios"] == []
    assert "not run" in by_id["peer.skipped"]["note"]

    report = out.read_text()
    for heading in ("## Machine", "## Versions", "## 1. Import cost", "## 2. DAG parsing", "## 3. Argo rendering", "## 6. The peer"):
        assert heading in report, heading
    assert "- cores: " in report
    assert "- memory: " in report
    assert "- pydantic: " in report
    assert "Quick mode" in report
    assert "not judged (quick)" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| figure") and "| baseline" not in line]
    assert len([r for r in rows if "not judged (quick)" in r or "(no goal)" in r]) == len(by_id)
