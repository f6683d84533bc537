"""allotment is registered with Airflow: the provider (``airflow providers list``), its config
section, and the cluster policy that makes ``@resources`` stack with ``@task.kubernetes``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest


def test_provider_info_is_valid_and_discovered() -> None:
    from airflow.providers_manager import ProvidersManager
    from allotment.airflow import get_provider_info

    import airflow

    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    providers = ProvidersManager().providers
    assert "allotment" in providers
    assert providers["allotment"].data["description"].startswith("One compute-resource spec")


def test_config_section_reads_as_unset_until_set() -> None:
    from allotment.airflow.config import airflow_config

    assert airflow_config() == {}


def test_airflow_config_section_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.airflow.config import airflow_config, airflow_settings

    monkeypatch.setenv("AIRFLOW__ALLOTMENT__WITH", "kubernetes:cpu=2")
    monkeypatch.setenv("AIRFLOW__ALLOTMENT__PROFILE", "gke")
    assert airflow_config() == {"with": "kubernetes:cpu=2", "profile": "gke"}
    settings = airflow_settings()
    assert settings.profile.name == "gke" and settings.origins["profile"] == "config [allotment] profile"
    monkeypatch.setenv("ALLOTMENT_PROFILE", "eks-karpenter")  # the environment wins for single values
    assert airflow_settings().profile.name == "eks-karpenter"


def test_cluster_policy_is_registered() -> None:
    from airflow.settings import get_policy_plugin_manager
    from allotment.airflow import policy

    manager = get_policy_plugin_manager()
    assert manager.get_plugin("allotment") is policy
    assert any(impl.plugin is policy for impl in manager.hook.task_policy.get_hookimpls())
