"""``allotment.airflow``: the Airflow face, imported lazily.

The face's code lives in the repository's top-level ``airflow/`` folder, which has no
``__init__.py`` so that, from the repository root, ``import airflow`` still finds Apache
Airflow. This module stands in for that missing ``__init__``: it makes ``allotment.airflow``
a package whose submodules are that folder's files (``__path__``), and it imports a public
name from them only when it is first used, so ``import allotment`` never imports Airflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from allotment.faces import face_package

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
    from allotment.airflow.batch import BatchOperator
    from allotment.airflow.config import using_settings
    from allotment.airflow.operators import KubernetesDecoratedOperator, KubernetesPodOperator, ResourcesMixin
    from allotment.airflow.policy import task_policy
    from allotment.airflow.portable import portable_task
    from allotment.airflow.provider import get_provider_info
    from allotment.airflow.tasks import resources_from_airflow

EXPORTS: Final[dict[str, str]] = {
    "ResourcesMixin": "operators",
    "KubernetesPodOperator": "operators",
    "KubernetesDecoratedOperator": "operators",
    "BatchOperator": "batch",
    "portable_task": "portable",
    "resources_from_airflow": "tasks",
    "task_policy": "policy",
    "using_settings": "config",
    "get_provider_info": "provider",
}
"""Public name -> the submodule of ``allotment.airflow`` that defines it."""

__path__, __getattr__, __dir__ = face_package(__name__, __file__, "airflow", EXPORTS, globals())
__all__ = [
    "BatchOperator",
    "KubernetesDecoratedOperator",
    "KubernetesPodOperator",
    "ResourcesMixin",
    "get_provider_info",
    "portable_task",
    "resources_from_airflow",
    "task_policy",
    "using_settings",
]
