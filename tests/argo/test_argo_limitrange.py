"""``allotment render --target limitrange``: the policy's caps as a LimitRange, checked with a
model of the API server's LimitRange defaulting and the LimitRanger admission plugin
(:func:`argo_support.admit_container`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from allotment import AllotmentError
from allotment.argo.render import render as render_argo
from allotment.cli import main
from allotment.kubernetes.limitrange import limit_range, render
from allotment.policy import Policy
from allotment.quantity import parse_quantity
from allotment.settings import load_settings
from argo_support import (
    K8S_VERSION,
    WORKFLOWS,
    Rejected,
    admit_container,
    limit_range_errors,
    limit_range_item_defaults,
    parameter_defaults,
    pod_for,
    pod_templates,
)

EXAMPLES = sorted(WORKFLOWS.glob("*.py"))
GIB = 1024**3

POLICY = """\
caps:
  cpu: 32
  memory: 256Gi
  gpu: 8
  disk: 500Gi
  shared_memory: 64Gi
gpu_types: [H100, A100-80GB, 1g.10gb]
runtime:
  with: true
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


GPU_KEYS = ["amd.com/gpu", "aws.amazon.com/neuron", "gpu.intel.com/i915", "habana.ai/gaudi", "nvidia.com/gpu", "nvidia.com/mig-1g.10gb"]


def _policy_range(policy_file: Path) -> dict[str, Any]:
    (document,) = render([], load_settings(cli={"policy": str(policy_file)}, env={}), {"namespace": "ml"})
    return document


def test_limit_range_holds_the_caps_and_explicit_defaults(policy_file: Path) -> None:
    document = _policy_range(policy_file)
    assert document == {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "allotment-policy", "namespace": "ml", "labels": {"app.kubernetes.io/managed-by": "allotment"}},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "500Gi"} | {key: "8" for key in GPU_KEYS},
                    "default": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "500Gi"} | {key: "0" for key in GPU_KEYS},
                    "defaultRequest": {"cpu": "1", "memory": "4Gi", "ephemeral-storage": "0"} | {key: "0" for key in GPU_KEYS},
                }
            ]
        },
    }
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert limit_range_errors(document) == []
    # The API server's defaulting leaves our values alone: every capped key has both.
    (item,) = document["spec"]["limits"]
    assert limit_range_item_defaults(item) == item


def test_only_the_capped_keys_appear() -> None:
    document = limit_range(Policy.from_mapping({"caps": {"memory": 1500}}, origin="p.toml"))
    assert document["spec"]["limits"] == [
        {"type": "Container", "max": {"memory": "1500Mi"}, "default": {"memory": "1500Mi"}, "defaultRequest": {"memory": "1500Mi"}}
    ]
    assert "namespace" not in document["metadata"]
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert limit_range_errors(document) == []
    with pytest.raises(AllotmentError, match=r"policy p\.toml has no caps a LimitRange can hold"):
        limit_range(Policy.from_mapping({"caps": {"shared_memory": 10}}, origin="p.toml"))


def test_caps_below_the_seed_defaults_are_the_defaults() -> None:
    document = limit_range(Policy.from_mapping({"caps": {"cpu": "500m", "memory": 2048, "gpu": 0, "disk": 100}}, origin="low.yaml"))
    (item,) = document["spec"]["limits"]
    assert item["default"]["cpu"] == item["defaultRequest"]["cpu"] == item["max"]["cpu"] == "500m"
    assert item["default"]["memory"] == item["defaultRequest"]["memory"] == item["max"]["memory"] == "2Gi"
    assert item["max"]["nvidia.com/gpu"] == item["default"]["nvidia.com/gpu"] == "0"
    assert "nvidia.com/mig-1g.10gb" not in item["max"]  # no gpu_types: no MIG keys
    assert limit_range_errors(document) == []
    assert admit_container(None, document)["requests"] == {
        "cpu": "500m",
        "memory": "2Gi",
        "ephemeral-storage": "0",
    } | {key: "0" for key in GPU_KEYS[:-1]}


def test_a_max_only_limit_range_would_give_every_container_the_caps(policy_file: Path) -> None:
    """Why the defaults are explicit: with ``max`` alone the API server defaults ``default`` and
    ``defaultRequest`` to it (what allotment rendered before)."""
    document = _policy_range(policy_file)
    (item,) = document["spec"]["limits"]
    max_only = {**document, "spec": {"limits": [{"type": "Container", "max": item["max"]}]}}
    requests = admit_container(None, max_only)["requests"]
    assert requests["nvidia.com/gpu"] == "8" and requests["cpu"] == "32" and requests["memory"] == "256Gi"
    assert requests["ephemeral-storage"] == "500Gi"


def test_a_container_without_resources_gets_allotments_seed_defaults_and_no_gpu(policy_file: Path) -> None:
    document = _policy_range(policy_file)
    for empty in (None, {}, {"requests": {}, "limits": {}}):
        admitted = admit_container(empty, document)
        requests = {k: parse_quantity(v) for k, v in admitted["requests"].items()}
        assert requests["cpu"] == 1
        assert requests["memory"] == 4 * GIB
        assert all(requests[key] == 0 for key in GPU_KEYS)
        assert requests["ephemeral-storage"] == 0  # reserves no node disk
        limits = admitted["limits"]
        assert limits["memory"] == "256Gi" and limits["cpu"] == "32" and limits["ephemeral-storage"] == "500Gi"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_allotment_containers_keep_their_requests_and_pass_the_caps(path: Path, policy_file: Path) -> None:
    document = _policy_range(policy_file)
    checked = 0
    for manifest in render_argo([path], load_settings(cli={}, env={}), {}):
        parameters = parameter_defaults(manifest)
        for template in pod_templates(manifest):
            attempts = int(template.get("retryStrategy", {}).get("limit", 0)) + 1
            for retries in range(attempts):
                resources = pod_for(template, parameters, retries)["spec"]["containers"][0].get("resources")
                if not resources:
                    continue  # not an allotment template
                admitted = admit_container(resources, document)
                own = (resources or {}).get("requests", {})
                assert {k: admitted["requests"][k] for k in own} == own, template["name"]
                added = {k: v for k, v in admitted["requests"].items() if k not in own}
                assert all(parse_quantity(v) == 0 for v in added.values()), added  # only zero GPU/disk requests
                own_limits = (resources or {}).get("limits", {})
                assert {k: admitted["limits"][k] for k in own_limits} == own_limits
                checked += 1
    assert checked


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"requests": {"memory": "300Gi"}, "limits": {"memory": "300Gi"}},
            "maximum memory usage per Container is 256Gi, but limit is 300Gi",
        ),
        ({"limits": {"nvidia.com/gpu": "9"}}, "maximum nvidia.com/gpu usage per Container is 8, but limit is 9"),
        ({"limits": {"amd.com/gpu": "16"}}, "maximum amd.com/gpu usage per Container is 8"),
        ({"requests": {"cpu": "40"}}, "maximum cpu usage per Container is 32, but request is 40"),
        ({"requests": {"ephemeral-storage": "1Ti"}}, "maximum ephemeral-storage usage per Container is 500Gi, but request is 1Ti"),
        ({"requests": {"memory": "300Gi"}}, "maximum memory usage per Container is 256Gi, but request is 300Gi"),
    ],
)
def test_a_container_over_the_caps_is_rejected(policy_file: Path, resources: dict[str, Any], message: str) -> None:
    with pytest.raises(Rejected, match=re.escape(message)):
        admit_container(resources, _policy_range(policy_file))


def test_what_the_limit_range_does_not_cap(policy_file: Path) -> None:
    document = _policy_range(policy_file)
    # An explicit vendor key, and a MIG profile not in gpu_types: documented as not capped.
    assert admit_container({"limits": {"example.com/gpu": "64", "nvidia.com/mig-3g.40gb": "64"}}, document)
    # A cpu or memory request without a limit bursts up to the cap (the namespace's other pods keep working).
    assert admit_container({"requests": {"cpu": "4"}}, document)["limits"]["cpu"] == "32"
    assert admit_container({"requests": {"memory": "8Gi"}}, document)["limits"]["memory"] == "256Gi"


def test_cli_renders_the_limit_range(policy_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ALLOTMENT_POLICY", raising=False)
    # The policy file as PATH (PATH is required by the CLI), or with --policy.
    assert main(["render", str(policy_file), "--target", "limitrange", "--namespace", "ml"]) == 0
    as_path = capsys.readouterr().out
    assert main(["render", str(policy_file.parent), "--target", "limitrange", "--policy", str(policy_file), "--namespace", "ml"]) == 0
    assert capsys.readouterr().out == as_path
    (document,) = yaml.safe_load_all(as_path)
    assert document["kind"] == "LimitRange" and document["metadata"]["namespace"] == "ml"
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    # No policy at all is an error, not an empty LimitRange.
    assert main(["render", str(policy_file.parent), "--target", "limitrange"]) == 1
    assert "needs a policy file" in capsys.readouterr().err
