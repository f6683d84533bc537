"""The one comparison rule of every golden suite (rendered Argo workflows, Airflow pods, ...).

A golden test renders text and calls :func:`check_golden`: the text must equal the file byte for
byte. ``make golden`` (``ALLOTMENT_REGEN=1`` on the tests marked ``golden``) rewrites the files
from the current output instead, for a deliberate change whose diff is then reviewed; under CI
(``CI`` set) it is refused, so a golden file never changes by accident.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

__all__ = ["check_golden", "regenerating"]


def regenerating() -> bool:
    """True when this run rewrites golden files (refused under CI)."""
    if os.environ.get("ALLOTMENT_REGEN") != "1":
        return False
    if os.environ.get("CI"):
        pytest.fail("ALLOTMENT_REGEN=1 under CI: golden files change only by a deliberate local `make golden`")
    return True


def check_golden(path: Path, text: str) -> None:
    """``text`` equals the golden file ``path`` byte for byte (or rewrites it, see the module docs)."""
    if regenerating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} is missing; run `make golden` to write it, then review it"
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "rendered now", n=2))
        pytest.fail(f"{path} differs from what renders now (run `make golden` if the change is deliberate):\n{diff}", pytrace=False)
