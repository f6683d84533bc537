"""Airflow provider registration: ``airflow providers list`` shows allotment.

Registered through the ``apache_airflow_provider`` entry point in ``pyproject.toml``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """The provider description Airflow's ProvidersManager reads."""
    from allotment import __version__

    return {
        "package-name": "allotment",
        "name": "allotment",
        "description": "One compute-resource spec (`@resources`) for KubernetesPodOperator, `@task.kubernetes`, "
        "the KubernetesExecutor and AWS Batch.",
        "versions": [__version__],
    }
