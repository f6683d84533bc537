"""The example DAGs in dags/: they parse under real Airflow, and every resourced task renders the
pod its golden file holds, which passes kubernetes-validate (strict) and docs/design.md §3's rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from af_helpers import DAGS, GOLDEN, POLICY, ROOT, check_pod, dagbag
from allotment.settings import load_settings
from golden import check_golden

EXPECTED = {
    ("gpu_training", "prepare_data"),
    ("gpu_training", "train"),
    ("gpu_training", "evaluate"),
    ("feature_pipeline", "extract"),
    ("feature_pipeline", "featurize"),
    ("feature_pipeline", "embed"),
    ("nightly_aggregate", "aggregate"),
    ("nightly_aggregate", "report"),
    ("portable_training", "prepare"),  # the Kubernetes variant: no deployment backend named (test_batch_operator.py: Batch)
    ("portable_training", "train"),
}
LOCAL = {("training_pipeline", "prep"), ("training_pipeline", "train"), ("training_pipeline", "evaluate")}
"""Tasks of @task.allotment on the local default: a child process on this machine, no pod."""


def _settings() -> Any:
    return load_settings(cli={"policy": str(POLICY)}, env={})


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    from allotment.airflow.render import render

    return render([DAGS], _settings(), {})


def _golden_form(document: dict[str, Any]) -> dict[str, Any]:
    """The document as kept in a golden file: the Airflow version label is the only varying value."""
    doc = json.loads(json.dumps(document))
    doc["file"] = Path(doc["file"]).relative_to(ROOT).as_posix() if Path(doc["file"]).is_absolute() else doc["file"]
    labels = (doc["pod"]["metadata"].get("labels") or {}) if "pod" in doc else {}
    if "airflow_version" in labels:
        labels["airflow_version"] = "AIRFLOW_VERSION"
    return doc


def test_every_dag_file_parses_with_no_import_error() -> None:
    bag = dagbag(DAGS)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"gpu_training", "feature_pipeline", "nightly_aggregate", "portable_training", "training_pipeline"}
    assert bag.dags["gpu_training"].schedule == "@daily"


def test_every_resourced_task_is_rendered(rendered: list[dict[str, Any]]) -> None:
    assert {(d["dag_id"], d["task_id"]) for d in rendered} == EXPECTED | LOCAL
    assert all(d["pod"]["kind"] == "Pod" for d in rendered if (d["dag_id"], d["task_id"]) in EXPECTED)
    local = [d for d in rendered if (d["dag_id"], d["task_id"]) in LOCAL]
    assert all(d["runs_on"] == "local" and "pod" not in d and d["resources"]["memory"] for d in local)


@pytest.mark.golden
@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}.{k[1]}" if isinstance(k, tuple) else str(k))
def test_rendered_pod_matches_golden_and_passes_the_rules(rendered: list[dict[str, Any]], key: tuple[str, str]) -> None:
    document = next(d for d in rendered if (d["dag_id"], d["task_id"]) == key)
    check_pod(document["pod"])
    check_golden(GOLDEN / f"{key[0]}.{key[1]}.yaml", yaml.safe_dump(_golden_form(document), sort_keys=False))


def test_dagbag_tasks_render_the_same_pods(rendered: list[dict[str, Any]]) -> None:
    """The pods of the tasks Airflow itself parsed (DAG processor, worker) equal the CLI's."""
    from allotment.airflow.render import render_task

    bag = dagbag(DAGS)
    settings = _settings()
    for document in [d for d in rendered if "pod" in d]:
        task = bag.dags[document["dag_id"]].get_task(document["task_id"])
        result = render_task(task, settings)
        assert result is not None
        assert result == (document["pod_of"], document["pod"])


def test_examples_show_what_the_issue_asks(rendered: list[dict[str, Any]]) -> None:
    pods = {(d["dag_id"], d["task_id"]): d["pod"] for d in rendered if "pod" in d}
    train = pods[("gpu_training", "train")]
    spec, base = train["spec"], train["spec"]["containers"][0]
    assert base["resources"]["requests"]["nvidia.com/gpu"] == base["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in spec["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in base["volumeMounts"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    # default_args["allotment"] fills what @resources left open (evaluate's memory)
    assert pods[("gpu_training", "evaluate")]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "2Gi"
    # the user's own volumes, tolerations, selectors and CPU limit are kept and merged
    featurize = pods[("feature_pipeline", "featurize")]["spec"]
    assert [v["name"] for v in featurize["volumes"]] == ["features", "dshm"]
    assert featurize["containers"][0]["resources"]["limits"]["cpu"] == "8"
    assert featurize["containers"][0]["resources"]["requests"]["cpu"] == "4"
    embed = pods[("feature_pipeline", "embed")]["spec"]
    assert [t["key"] for t in embed["tolerations"]] == ["spot", "nvidia.com/gpu"]
    assert embed["nodeSelector"] == {"topology.kubernetes.io/zone": "us-east-1a", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    # Airflow's ram form is MiB
    assert pods[("feature_pipeline", "extract")]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "4Gi"


def test_cli_render_prints_only_deterministic_yaml(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "PYTHONPATH"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    out = subprocess.run(
        [sys.executable, "-m", "allotment", "render", "dags", "--target", "airflow", "--policy", str(POLICY)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    documents = list(yaml.safe_load_all(out.stdout))  # stdout is YAML only: Airflow's logs went to stderr
    assert [(d["dag_id"], d["task_id"]) for d in documents] == [(d["dag_id"], d["task_id"]) for d in rendered]
    assert [_golden_form(d) for d in documents] == [_golden_form(d) for d in rendered]
    assert "XXXXXXXX" in out.stdout


def test_explain_works_on_dag_files(capsys: pytest.CaptureFixture[str]) -> None:
    from allotment.cli import main

    assert main(["explain", str(DAGS / "gpu_training.py"), "-o", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    by_step = {item["step"]: item for item in items}
    assert set(by_step) == {"prepare_data", "train", "evaluate"}
    memory = next(f for f in by_step["evaluate"]["fields"] if f["field"] == "memory")
    assert memory["shown"] == "2Gi" and memory["source"] == "workflow default default_args['allotment']"
    assert by_step["train"]["backend"] == "kubernetes"
