"""Every rendered SubmitJob and RegisterJobDefinition request, over 2,000 generated specs per
platform, passes botocore's own parameter validation against the real Batch model, and the
rules botocore does not check hold: Fargate pairs from botocore's documentation, whole EC2
vCPUs, EKS cpu in quarters, requests = limits, ephemeral storage 21–200 GiB."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from allotment.batch import FARGATE_PAIRS, compile_batch, job_name
from allotment.batch.jobdefs import NAME_MARK, derive_job_definition
from batch_support import base, fargate_doc_pairs, resolved_of, validation_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_FARGATE_VCPUS = sorted(FARGATE_PAIRS)
_FARGATE_MEMORIES = sorted({m for ms in FARGATE_PAIRS.values() for m in ms})


def _near(values: list[int], low: int, high: int) -> st.SearchStrategy[int]:
    """Values on and next to the table's edges, where rounding is most likely to go wrong."""
    return st.sampled_from(sorted({n for v in values for n in (v - 1, v, v + 1) if low <= n <= high}))


def _cpu(high: int, edges: list[int]) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, high), _near(edges, 1, high), st.sampled_from([1, 250, 500, 999, 1000, 1001, 1500]))


def _memory(high: int, edges: list[int]) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, high), _near(edges, 1, high), st.sampled_from([1, 3, 4, 5, 512, 4096]))


@st.composite
def specs(draw: st.DrawFn, platform: str) -> dict[str, Any]:
    """Held units (cpu millicores, sizes MiB) that the platform can run."""
    if platform == "fargate":
        spec: dict[str, Any] = {
            "cpu": draw(_cpu(32000, _FARGATE_VCPUS)),
            "memory": draw(_memory(_FARGATE_MEMORIES[-1], _FARGATE_MEMORIES)),
        }
        spec["gpu"] = draw(st.sampled_from([None, 0]))
        spec["disk"] = draw(st.one_of(st.none(), st.integers(1, 200 * 1024), _near([20 * 1024, 21 * 1024, 200 * 1024], 1, 200 * 1024)))
    else:
        spec = {"cpu": draw(_cpu(192_000, [1000, 2000, 96_000])), "memory": draw(_memory(4 * 1024 * 1024, [4, 1024, 2048]))}
        spec["gpu"] = draw(st.one_of(st.none(), st.integers(0, 16)))
        spec["disk"] = draw(st.one_of(st.none(), st.integers(1, 4 * 1024 * 1024)))
        spec["shared_memory"] = draw(st.one_of(st.none(), st.integers(1, spec["memory"])))
        if spec["gpu"]:
            spec["gpu_type"] = draw(st.sampled_from([None, "H100", "A100-80GB", "L4"]))
            spec["gpu_vendor"] = draw(st.sampled_from([None, "nvidia"]))
    spec["retry_memory_factor"] = draw(st.sampled_from([None, 1.5]))
    return {k: v for k, v in spec.items() if v is not None}


def _check_register(platform: str, plan_fields: dict[str, Any], step: str) -> dict[str, Any]:
    derived = derive_job_definition(base(platform), plan_fields, platform=platform, step=step)
    request = dict(derived.request)
    assert validation_errors("RegisterJobDefinition", request) == ""
    assert request["jobDefinitionName"].startswith(base(platform)["jobDefinitionName"] + NAME_MARK)
    assert len(request["jobDefinitionName"]) <= 128
    assert not {"jobDefinitionArn", "revision", "status", "containerOrchestrationType"} & set(request)
    assert not any(key.startswith("aws:") for key in request.get("tags", {}))
    return request


def _submit(plan: Any, step: str) -> dict[str, Any]:
    request: dict[str, Any] = plan.submit_job_request(job_name(step), "queue", "jobdef")
    assert validation_errors("SubmitJob", request) == ""
    return request


def _requirements(request: dict[str, Any]) -> dict[str, str]:
    items = request["containerOverrides"]["resourceRequirements"]
    assert all(isinstance(r["value"], str) for r in items)
    assert len({r["type"] for r in items}) == len(items)
    return {r["type"]: r["value"] for r in items}


@EXAMPLES
@given(spec=specs("ec2"))
def test_ec2_requests_pass_botocore_validation(spec: dict[str, Any]) -> None:
    resolved = resolved_of("train", **spec)
    plan = compile_batch(resolved, "ec2", warn=False)
    values = _requirements(_submit(plan, "train"))
    vcpu = int(values["VCPU"])  # a whole number, as a string
    assert values["VCPU"] == str(vcpu) and vcpu >= 1 and vcpu * 1000 >= spec["cpu"] and (vcpu - 1) * 1000 < max(spec["cpu"], 1)
    assert int(values["MEMORY"]) == max(4, spec["memory"])
    assert values.get("GPU") == (str(spec["gpu"]) if spec.get("gpu") else None)
    assert bool(plan.warnings) == ("disk" in spec)
    if "shared_memory" in spec:
        request = _check_register("ec2", dict(plan.job_definition_fields), "train")
        assert request["containerProperties"]["linuxParameters"] == {"initProcessEnabled": True, "sharedMemorySize": spec["shared_memory"]}
    else:
        assert plan.job_definition_fields == {}


@EXAMPLES
@given(spec=specs("fargate"))
def test_fargate_requests_pass_botocore_validation_and_are_valid_pairs(spec: dict[str, Any]) -> None:
    resolved = resolved_of("etl", **spec)
    plan = compile_batch(resolved, "fargate", warn=False)
    values = _requirements(_submit(plan, "etl"))
    assert set(values) == {"VCPU", "MEMORY"}
    vcpu, memory = int(Decimal(values["VCPU"]) * 1000), int(values["MEMORY"])
    assert (vcpu, memory) in fargate_doc_pairs()
    assert vcpu >= spec["cpu"] and memory >= spec["memory"]
    # nothing smaller in both dimensions would have done
    assert not any(
        v <= vcpu and m <= memory and (v, m) != (vcpu, memory) and v >= spec["cpu"] and m >= spec["memory"] for v, m in fargate_doc_pairs()
    )
    assert (vcpu != spec["cpu"]) == any("rounded up to VCPU" in n for n in plan.notes)
    assert (memory != spec["memory"]) == any("rounded up to MEMORY" in n for n in plan.notes)
    assert plan.warnings == ()
    if "disk" in spec:
        request = _check_register("fargate", dict(plan.job_definition_fields), "etl")
        size = request["containerProperties"]["ephemeralStorage"]["sizeInGiB"]
        assert isinstance(size, int) and 21 <= size <= 200 and size * 1024 >= spec["disk"]
        assert size == max(21, math.ceil(spec["disk"] / 1024))
        assert "linuxParameters" not in request["containerProperties"]
        assert request["platformCapabilities"] == ["FARGATE"]
    else:
        assert plan.job_definition_fields == {}


@EXAMPLES
@given(spec=specs("eks"))
def test_eks_requests_pass_botocore_validation(spec: dict[str, Any]) -> None:
    resolved = resolved_of("train", **spec)
    plan = compile_batch(resolved, "eks", warn=False, container="main")
    request = _submit(plan, "train")
    assert "containerOverrides" not in request
    (container,) = request["eksPropertiesOverride"]["podProperties"]["containers"]
    assert container["name"] == "main"
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert all(isinstance(v, str) for v in [*requests.values(), *limits.values()])
    cpu = Decimal(requests["cpu"])
    assert "m" not in requests["cpu"] and cpu % Decimal("0.25") == 0 and cpu * 1000 >= spec["cpu"] and cpu * 1000 - 250 < spec["cpu"]
    assert "cpu" not in limits
    assert requests["memory"] == limits["memory"] == f"{max(4, spec['memory'])}Mi"
    if spec.get("gpu"):
        assert requests["nvidia.com/gpu"] == limits["nvidia.com/gpu"] == str(spec["gpu"])
    else:
        assert "nvidia.com/gpu" not in requests and "nvidia.com/gpu" not in limits
    if "disk" in spec:
        assert requests["ephemeral-storage"] == limits["ephemeral-storage"] == f"{spec['disk']}Mi"
    if "shared_memory" in spec:
        registered = _check_register("eks", dict(plan.job_definition_fields), "train")
        pod = registered["eksProperties"]["podProperties"]
        assert pod["volumes"][-1] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{spec['shared_memory']}Mi"}}
        assert pod["containers"][0]["volumeMounts"][-1] == {"name": "dshm", "mountPath": "/dev/shm"}
        assert "volumeMounts" not in pod["containers"][1]
    else:
        assert plan.job_definition_fields == {}
