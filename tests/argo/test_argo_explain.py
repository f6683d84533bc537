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


CLASH = '''\
from hera.workflows import Resources, Steps, Workflow, script
from allotment import resources

@resources(cpu=2, memory="1Gi")
@script(resources=Resources(cpu_request=4))
def train() -> None:
    print(1)

with Workflow(name="clash", entrypoint="main") as w:
    with Steps(name="main"):
        train()
'''


def test_explain_fails_like_render_on_a_template_whose_own_fields_clash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """explain resolves a Hera template as building the workflow does: fitted into its own fields."""
    path = tmp_path / "clash.py"
    path.write_text(CLASH)
    error = (
        f"allotment: error: {path}: step 'train': requests.cpu='4' from Script 'train''s own fields conflicts with "
        "requests.cpu='2' from allotment's spec; give this resource in one place only (allotment's spec, or the "
        "container's own resources)"
    )
    for argv in (["explain", str(path)], ["render", str(path), "--target", "argo"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert [line for line in err.splitlines() if line.startswith("allotment: error: ")] == [error], argv
