"""The same file renders the same bytes: twice in a process, and in fresh interpreters with
other hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys

from allotment.argo.render import render
from allotment.output import dump
from allotment.settings import load_settings
from argo_support import ROOT, WORKFLOWS

EXAMPLES = sorted(WORKFLOWS.glob("*.py"))


def _text() -> str:
    return dump(render(EXAMPLES, load_settings(cli={}, env={}), {}))


def test_rendering_twice_is_byte_identical() -> None:
    first, second = _text(), _text()
    assert first == second
    assert "uuid" not in first.lower()
    assert "dshm" in first


def test_rendering_in_other_processes_with_other_hash_seeds_is_byte_identical() -> None:
    expected = _text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOTMENT_") and k != "PYTHONPATH"}
    for seed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-m", "allotment", "render", *map(str, EXAMPLES), "--target", "argo"],
            cwd=ROOT,
            env={**env, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout == expected, seed
