"""``allotment.airflow``: the Airflow face, imported lazily.

The face's code lives in the repository's top-level ``airflow/`` folder, which has no
``__init__.py`` so that, from the repository root, ``import airflow`` still finds Apache
Airflow. This module stands in for that missing ``__init__``: it makes ``allotment.airflow``
a package whose submodules are that folder's files (``__path__``), and it imports a public
name from them only when it is first used, so ``import allotment`` never imports Airflow.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Final

EXPORTS: Final[dict[str, str]] = {
    "ResourcesMixin": "operators",
    "KubernetesPodOperator": "operators",
    "KubernetesDecoratedOperator": "operators",
    "BatchOperator": "batch",
    "resources_from_airflow": "tasks",
    "task_policy": "policy",
    "use_settings": "config",
    "get_provider_info": "provider",
}
"""Public name -> the submodule of ``allotment.airflow`` that defines it."""

_here = Path(__file__)
# Installed (wheel or strict editable): allotment/airflow/ beside this file. Source tree (a plain
# editable install maps allotment -> plugin/): the repository's airflow/ folder.
_source_tree = _here.parent.name == "plugin" and (_here.parent.parent / "pyproject.toml").is_file()
__path__: list[str] = [str(_here.parent.parent / "airflow" if _source_tree else _here.with_suffix(""))]
__all__ = ["EXPORTS"]


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module 'allotment.airflow' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *EXPORTS])
