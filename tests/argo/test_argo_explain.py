"""`allotment explain` on Hera files: templates run on Kubernetes and take the workflow's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from allotment.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_explain_on_a_hera_file_shows_workflow_defaults_and_kubernetes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(ROOT / "workflows" / "nightly_training.py"), "-o", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    steps = {item["step"]: item for item in items}
    evaluate = {f["field"]: f for f in steps["evaluate"]["fields"]}
    assert steps["evaluate"]["backend"] == "kubernetes"
    assert evaluate["cpu"]["shown"] == "2"
    assert evaluate["cpu"]["source"] == "workflow default allotment.argo.defaults(nightly-train)"
    assert evaluate["gpu"]["source"] == "@resources"
    # each template once, although the @script functions are module globals too
    assert [item["step"] for item in items] == ["prepare", "train", "evaluate"]
