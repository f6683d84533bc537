"""Airflow provider registration: ``airflow providers list`` shows allotment.

Registered through the ``apache_airflow_provider`` entry point in ``pyproject.toml``. The
provider also declares the ``[allotment]`` config section (``airflow config list`` shows it).
allotment's cluster policy is registered separately, through the ``airflow.policy`` entry point
(:mod:`allotment.airflow.policy`). The provider adds one task decorator, ``@task.allotment``
(:mod:`allotment.airflow.local_task`: the deployment's backend runs the callable); ``@resources``
also stacks with the stock ``@task.kubernetes``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


def _option(description: str, example: str) -> dict[str, Any]:
    return {"description": description, "version_added": "0.1.0", "type": "string", "example": example, "default": None}


def get_provider_info() -> dict[str, Any]:
    """The provider description Airflow's ProvidersManager reads."""
    from importlib.metadata import version

    __version__ = version("allotment")
    return {
        "package-name": "allotment",
        "name": "allotment",
        "description": "One compute-resource spec (`@resources`) for KubernetesPodOperator, `@task.kubernetes`, "
        "the KubernetesExecutor, AWS Batch and this machine (`@task.allotment`).",
        "versions": [__version__],
        "task-decorators": [{"name": "allotment", "class-name": "allotment.airflow.local_task.allotment_task"}],
        "config": {
            "allotment": {
                "description": "Deployment-wide allotment settings. The environment (ALLOTMENT_WITH, "
                "ALLOTMENT_POLICY, ALLOTMENT_PROFILE, ALLOTMENT_BACKEND) wins over these for single values; "
                "`with` specs from both apply.",
                "options": {
                    "with": _option(
                        "Runtime floors for every task, ';'-separated, same grammar as `allotment --with`.",
                        "kubernetes:cpu=2,memory=8Gi",
                    ),
                    "policy": _option(
                        "Policy file (YAML, TOML or JSON): caps, allowed GPU types, runtime rules.", "/opt/airflow/policy.yaml"
                    ),
                    "profile": _option("Cluster profile mapping gpu_type to node labels: nvidia-gfd, gke, eks-karpenter or a file.", "gke"),
                    "backend": _option("Backend of steps without a backend decorator: kubernetes, batch or local.", "kubernetes"),
                },
            }
        },
    }
