"""Lay the package out as it is installed, for tools that read source files rather than import them.

``plugin/`` is the package ``allotment``, and the face folders ``airflow/`` and ``argo/`` are its
subpackages ``allotment.airflow`` and ``allotment.argo``; ``plugin/airflow.py`` and
``plugin/argo.py`` stand in for their ``__init__.py`` (the folders have none, so that ``import
airflow`` from the repository root still finds Apache Airflow). mypy and import-linter read files
by path, so this script builds ``build/tree/allotment/`` from symbolic links in that installed
shape (the wheel's) and prints the folder to put on their path. Nothing is copied (folders are
real, files are links); the tree is rebuilt on each run and ignored by git.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACES = ("airflow", "argo")


def build(target: Path) -> Path:
    """Build the tree under ``target`` (replacing it) and return ``target``."""
    if target.exists():
        shutil.rmtree(target)
    package = target / "allotment"
    package.mkdir(parents=True)
    for entry in sorted((ROOT / "plugin").iterdir()):
        if entry.name == "__pycache__" or (entry.suffix == ".py" and entry.stem in FACES):
            continue
        if entry.is_dir():  # a subpackage: a real folder of links (tools do not walk linked folders)
            (package / entry.name).mkdir()
            for source in sorted(entry.glob("*.py")):
                (package / entry.name / source.name).symlink_to(source)
        else:
            (package / entry.name).symlink_to(entry)
    for face in FACES:
        folder = package / face
        folder.mkdir()
        (folder / "__init__.py").symlink_to(ROOT / "plugin" / f"{face}.py")
        for source in sorted((ROOT / face).glob("*.py")):
            (folder / source.name).symlink_to(source)
    return target


if __name__ == "__main__":
    print(build(ROOT / "build" / "tree"))
    sys.exit(0)
