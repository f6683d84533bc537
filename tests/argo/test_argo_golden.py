"""Golden files: each workflows/*.py renders exactly its sibling .yaml.

Regenerate with ``make golden`` after a deliberate change, and review the diff (:mod:`golden`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from allotment.argo.render import render
from allotment.cli import main
from allotment.output import dump
from allotment.settings import load_settings
from argo_support import WORKFLOWS
from golden import check_golden

EXAMPLES = sorted(WORKFLOWS.glob("*.py"))


def test_there_are_at_least_three_examples() -> None:
    assert len(EXAMPLES) >= 3
    kinds = {doc["kind"] for path in EXAMPLES for doc in render([path], load_settings(cli={}, env={}), {})}
    assert {"Workflow", "WorkflowTemplate", "CronWorkflow"} <= kinds


@pytest.mark.golden
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_renders_its_golden_yaml(path: Path) -> None:
    check_golden(path.with_suffix(".yaml"), dump(render([path], load_settings(cli={}, env={}), {"namespace": None})))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_cli_prints_the_golden_yaml(path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_BACKEND", "ALLOTMENT_POLICY", "ALLOTMENT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["render", str(path), "--target", "argo"]) == 0
    assert capsys.readouterr().out == path.with_suffix(".yaml").read_text()


def test_no_example_uses_future_annotations() -> None:
    """Hera reads @script parameter annotations at build time; string annotations break it."""
    for path in EXAMPLES:
        assert "from __future__ import annotations" not in path.read_text(), path
