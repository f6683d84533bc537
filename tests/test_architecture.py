"""The layers of the design card, checked on the code: faces see the core through one façade, the
core imports no face, ``import allotment`` loads the standard library only, every Kubernetes key is
written in one table, and golden files change only by a deliberate run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _core_modules() -> set[str]:
    """Every module of the core (``plugin/``) except the façade and the faces' stand-in ``__init__`` files."""
    names = {f"allotment.{p.stem}" for p in (ROOT / "plugin").glob("*.py") if p.stem not in ("__init__", "airflow", "argo")}
    names |= {f"allotment.{p.name}" for p in (ROOT / "plugin").iterdir() if (p / "__init__.py").is_file()}
    return names


def _contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_the_contracts_name_every_core_module() -> None:
    contracts = _contracts()
    assert set(contracts["faces-see-the-facade"]["forbidden_modules"]) == _core_modules() - {"allotment.facade"}  # type: ignore[arg-type]
    assert set(contracts["core-imports-no-face"]["source_modules"]) == _core_modules()  # type: ignore[arg-type]


def _tree(target: Path) -> Path:
    """The installed layout (.ci/package_tree.py) as real files, so that it can be edited."""
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import package_tree
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    linked = package_tree.build(target / "linked")
    real = target / "real"
    shutil.copytree(linked, real, symlinks=False)
    shutil.copy(PYPROJECT, target / "pyproject.toml")
    return real


def _lint_imports(tree: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), str(config)], check=False, cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_layers_hold_and_a_wrong_import_breaks_them(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    kept = _lint_imports(tree, tmp_path / "pyproject.toml")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout

    # A face that reaches past the façade into a core module ...
    names = tree / "allotment" / "argo" / "names.py"
    names.write_text(names.read_text() + "\nfrom allotment.model import Resources as _R  # a wrong import\n")
    # ... and a core module that imports a face.
    render = tree / "allotment" / "render.py"
    render.write_text(render.read_text() + "\nimport allotment.airflow.render  # a wrong import\n")
    broken = _lint_imports(tree, tmp_path / "pyproject.toml")
    assert broken.returncode != 0
    assert "The faces see the core only through allotment.facade BROKEN" in broken.stdout
    assert "allotment.argo.names -> allotment.model" in broken.stdout
    assert "The core imports no face and no engine BROKEN" in broken.stdout
    assert "allotment.render -> allotment.airflow.render" in broken.stdout


def test_import_allotment_loads_only_the_standard_library() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import allotment\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", env=env, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert loaded and all(m == "allotment" or m.startswith("allotment.") for m in loaded), loaded
    assert not [m for m in loaded if m.startswith(("allotment.kubernetes", "allotment.batch", "allotment.model"))]


def test_importing_the_backend_packages_keeps_the_decorators() -> None:
    import allotment

    # The import system binds a loaded submodule on its parent; allotment keeps its decorators.
    import allotment.batch.render
    import allotment.kubernetes.fit
    from allotment import decorators

    assert allotment.kubernetes is decorators.kubernetes
    assert allotment.batch is decorators.batch
    assert "allotment.kubernetes" in sys.modules and "allotment.batch" in sys.modules


@pytest.mark.parametrize(
    "key", [r"ephemeral-storage", r"nvidia\.com/gpu(?![.\w])", r"amd\.com/gpu", r"habana\.ai/gaudi", r"nvidia\.com/mig-", r"\bdshm\b"]
)
def test_every_kubernetes_key_is_written_only_in_the_targets_table(key: str) -> None:
    sources = [p for folder in ("plugin", "airflow", "argo") for p in (ROOT / folder).rglob("*.py")]
    holders = sorted(p.relative_to(ROOT).as_posix() for p in sources if re.search(key, p.read_text()))
    assert holders == ["plugin/targets.py"]


def test_make_golden_refuses_under_ci() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        [make, "-s", "golden"], check=False, cwd=ROOT, env={**os.environ, "CI": "1"}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert "refused under CI" in out.stderr
