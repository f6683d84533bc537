"""The wheel carries allotment.local: its modules, the child script run by path, and the report's schema."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_the_local_backend_and_its_schema(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = tmp_path.glob("allotment-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"__init__.py", "child.py", "run.py", "report.py", "report.schema.json", "cgroups.py", "host.py", "placement.py", "retry.py"}
    assert {f"allotment/local/{name}" for name in expected} <= names
