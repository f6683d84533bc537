"""Packaging and import-cost guarantees of the design card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("airflow", "hera", "kubernetes", "boto3", "botocore", "yaml")


def _run(code: str, cwd: Path = ROOT) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_airflow_from_repo_root_is_apache_airflow() -> None:
    """`python -c` puts the current folder first on sys.path; our airflow/ folder must not win."""
    info = json.loads(_run("import sys, json, airflow; print(json.dumps([sys.path[0], airflow.__file__, airflow.__version__]))"))
    first_path, airflow_file, version = info
    assert first_path == ""  # the repo root is really on the path, so the check means something
    assert Path(airflow_file).parent != ROOT / "airflow"
    assert "site-packages" in Path(airflow_file).parts
    assert version.startswith("3.")


def test_face_folders_have_no_init_file() -> None:
    assert not (ROOT / "airflow" / "__init__.py").exists()
    assert not (ROOT / "argo" / "__init__.py").exists()


def test_import_allotment_loads_no_heavy_module() -> None:
    code = (
        "import sys, json, allotment\n"
        "from allotment import resources, kubernetes\n"
        "@resources(cpu=1, memory='1Gi')\n"
        "@kubernetes(qos='guaranteed')\n"
        "def step(): pass\n"
        "import allotment.airflow, allotment.argo\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_run(code, cwd=ROOT / "tests")) == []


def test_faces_import_through_allotment() -> None:
    info = json.loads(_run(
        "import json, allotment.airflow as a, allotment.argo.names as n; "
        "print(json.dumps([a.get_provider_info()['package-name'], n.parameter_name('train', 'shared_memory')]))",
        cwd=ROOT / "tests",
    ))
    assert info == ["allotment", "train-shared-memory"]


@pytest.mark.slow
def test_wheel_contains_core_and_faces(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("allotment-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "allotment/__init__.py" in names
    assert "allotment/airflow/provider.py" in names
    assert "allotment/argo/names.py" in names
    assert "allotment/kubernetes/fit.py" in names and "allotment/batch/compile.py" in names
    assert not any(n.startswith(("airflow/", "argo/", "plugin/")) for n in names)
    assert not any(n.endswith(("airflow/__init__.py", "argo/__init__.py")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text and "allotment.airflow.provider:get_provider_info" in text
