"""``allotment render --target limitrange``: the policy's caps as a LimitRange."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from allotment import AllotmentError
from allotment.argo.limitrange import limit_range, render
from allotment.cli import main
from allotment.policy import Policy
from allotment.settings import load_settings
from argo_support import K8S_VERSION

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


def test_limit_range_holds_the_caps(policy_file: Path) -> None:
    (document,) = render([], load_settings(cli={"policy": str(policy_file)}, env={}), {"namespace": "ml"})
    assert document == {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "allotment-policy", "namespace": "ml", "labels": {"app.kubernetes.io/managed-by": "allotment"}},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {
                        "cpu": "32",
                        "memory": "256Gi",
                        "ephemeral-storage": "500Gi",
                        "amd.com/gpu": "8",
                        "aws.amazon.com/neuron": "8",
                        "gpu.intel.com/i915": "8",
                        "habana.ai/gaudi": "8",
                        "nvidia.com/gpu": "8",
                        "nvidia.com/mig-1g.10gb": "8",
                    },
                }
            ]
        },
    }
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_only_the_capped_keys_appear() -> None:
    document = limit_range(Policy.from_mapping({"caps": {"memory": 1500}}, origin="p.toml"))
    assert document["spec"]["limits"] == [{"type": "Container", "max": {"memory": "1500Mi"}}]
    assert "namespace" not in document["metadata"]
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    with pytest.raises(AllotmentError, match=r"policy p\.toml has no caps a LimitRange can hold"):
        limit_range(Policy.from_mapping({"caps": {"shared_memory": 10}}, origin="p.toml"))


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
