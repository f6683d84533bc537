"""The AWS Batch compiler (docs/design.md §5): values, roundings and their notes, errors by message,
platform precedence, explain's effects, and the Fargate table against botocore's documentation."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from allotment import AllotmentError, batch, resources
from allotment.batch import (
    FARGATE_PAIRS,
    BatchPlan,
    batch_effects,
    batch_notes,
    batch_platform,
    compile_batch,
    fargate_size,
    format_vcpu,
    job_name,
)
from allotment.decorators import spec_of
from allotment.errors import AllotmentWarning
from allotment.settings import Settings, load_settings
from batch_support import fargate_doc_pairs, resolved_of
from hypothesis import given, settings
from hypothesis import strategies as st


def _values(plan: BatchPlan) -> dict[str, str]:
    return {r["type"]: r["value"] for r in plan.submit_overrides["containerOverrides"]["resourceRequirements"]}


def _eks(plan: BatchPlan) -> dict[str, Any]:
    (container,) = plan.submit_overrides["eksPropertiesOverride"]["podProperties"]["containers"]
    resources: dict[str, Any] = container["resources"]
    return resources


# -- the Fargate table ---------------------------------------------------------------------------


def test_fargate_table_equals_botocore_documentation() -> None:
    ours = {(vcpu, memory) for vcpu, memories in FARGATE_PAIRS.items() for memory in memories}
    assert ours == set(fargate_doc_pairs())
    assert len(ours) == 77
    assert all(list(ms) == sorted(ms) for ms in FARGATE_PAIRS.values())


def test_fargate_table_matches_design_card() -> None:
    # docs/design.md §5, spelled out: 0.25 -> 512/1024/2048; ... 32 -> 61440, 122880, 249856
    assert FARGATE_PAIRS[250] == (512, 1024, 2048)
    assert FARGATE_PAIRS[500] == (1024, 2048, 3072, 4096)
    assert FARGATE_PAIRS[8000] == tuple(range(16384, 61441, 4096))
    assert FARGATE_PAIRS[16000] == tuple(range(32768, 122881, 8192))
    assert FARGATE_PAIRS[32000] == (61440, 122880, 249856)


@settings(max_examples=300, deadline=None)
@given(cpu=st.integers(1, 32000), memory=st.integers(1, 249856))
def test_fargate_size_is_the_smallest_fitting_pair(cpu: int, memory: int) -> None:
    size = fargate_size(cpu, memory)
    assert size is not None and size in fargate_doc_pairs()
    vcpu, mib = size
    assert vcpu >= cpu and mib >= memory
    fitting = [(v, m) for v, m in fargate_doc_pairs() if v >= cpu and m >= memory]
    assert size == min(fitting)
    assert all(v >= vcpu or m > mib for v, m in fitting)  # none is smaller in vCPU without more memory


def test_fargate_size_beyond_the_largest() -> None:
    assert fargate_size(32001, 512) is None
    assert fargate_size(250, 249857) is None


def test_format_vcpu() -> None:
    assert [format_vcpu(m) for m in (250, 500, 1000, 1250, 1500, 32000)] == ["0.25", "0.5", "1", "1.25", "1.5", "32"]


# -- the seed rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["ec2", "fargate", "eks"])
def test_seed_rule_resources_and_batch_combine_by_maximum(platform: str) -> None:
    @resources(cpu=4, memory=8192)
    @batch(cpu=2, memory=16384)
    def train() -> None: ...

    resolved = Settings().resolve(spec_of(train), backend="batch")
    assert resolved.backend == "batch"
    plan = compile_batch(resolved, platform)
    if platform == "eks":
        assert _eks(plan) == {"requests": {"cpu": "4", "memory": "16384Mi"}, "limits": {"memory": "16384Mi"}}
    else:
        assert _values(plan) == {"VCPU": "4", "MEMORY": "16384"}
        assert plan.submit_overrides == {
            "containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "16384"}]}
        }
    assert plan.notes == () and plan.warnings == () and plan.job_definition_fields == {}


def test_issue_example_ec2_with_shared_memory() -> None:
    # cpu 8, memory 32Gi, gpu 1, shared_memory 8Gi -> VCPU 8, MEMORY 32768, GPU 1 + sharedMemorySize 8192
    resolved = resolved_of("train", cpu=8000, memory=32768, gpu=1, shared_memory=8192)
    plan = compile_batch(resolved, "ec2")
    assert plan.submit_overrides["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "32768"},
        {"type": "GPU", "value": "1"},
    ]
    assert plan.job_definition_fields == {"containerProperties": {"linuxParameters": {"sharedMemorySize": 8192}}}
    assert plan.needs_job_definition


# -- EC2 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "vcpu", "note"),
    [
        (500, "1", "cpu 500m rounded up to VCPU 1: AWS Batch on EC2 takes at least 1"),
        (1500, "2", "cpu 1500m rounded up to VCPU 2: AWS Batch on EC2 takes whole vCPUs only"),
        (1001, "2", "cpu 1001m rounded up to VCPU 2: AWS Batch on EC2 takes whole vCPUs only"),
        (3000, "3", None),
    ],
)
def test_ec2_cpu_rounds_up_to_whole_vcpus_with_a_note(cpu: int, vcpu: str, note: str | None) -> None:
    plan = compile_batch(resolved_of("s", cpu=cpu, memory=2048), "ec2")
    assert _values(plan)["VCPU"] == vcpu
    assert plan.notes == ((note,) if note else ())
    assert plan.effects["cpu"].startswith(f"containerOverrides VCPU {vcpu}")
    if note:
        assert "rounded up from" in plan.effects["cpu"]


def test_ec2_memory_is_at_least_4_mib() -> None:
    plan = compile_batch(resolved_of("s", cpu=1000, memory=2), "ec2")
    assert _values(plan)["MEMORY"] == "4"
    assert plan.notes == ("memory 2Mi raised to MEMORY 4: AWS Batch needs at least 4 MiB",)


def test_ec2_gpu_zero_adds_no_gpu() -> None:
    plan = compile_batch(resolved_of("s", cpu=1000, memory=2048, gpu=0), "ec2")
    assert _values(plan) == {"VCPU": "1", "MEMORY": "2048"}
    assert plan.effects["gpu"] == "no GPU"


def test_ec2_disk_is_an_explicit_warning() -> None:
    resolved = resolved_of("train", cpu=1000, memory=2048, disk=51200)
    with pytest.warns(AllotmentWarning, match=r"step 'train': disk='50Gi' from @resources is not applied on AWS Batch EC2") as caught:
        plan = compile_batch(resolved, "ec2")
    assert len(caught) == 1
    assert "launch template" in str(caught[0].message)
    assert plan.warnings == (str(caught[0].message),)
    assert str(caught[0].message) in plan.notes
    assert "disk" not in str(plan.submit_overrides) and plan.job_definition_fields == {}
    assert issubclass(AllotmentWarning, UserWarning)


def test_warn_false_keeps_the_warning_in_the_plan_only() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = compile_batch(resolved_of("train", disk=1024), "ec2", warn=False)
    assert len(plan.warnings) == 1


def test_ec2_gpu_type_is_noted_not_set() -> None:
    plan = compile_batch(resolved_of("train", gpu=2, gpu_type="H100"), "ec2")
    assert _values(plan)["GPU"] == "2"
    assert any("gpu_type 'H100'" in n and "compute environment" in n for n in plan.notes)
    assert "H100" not in str(plan.submit_overrides)


# -- Fargate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "vcpu", "mib", "notes"),
    [
        (250, 512, "0.25", "512", []),
        (300, 600, "0.5", "1024", ["cpu 300m rounded up to VCPU 0.5", "memory 600Mi rounded up to MEMORY 1024"]),
        (1000, 10000, "2", "10240", ["cpu 1 rounded up to VCPU 2", "memory 10000Mi rounded up to MEMORY 10240"]),
        (4000, 1024, "4", "8192", ["memory 1Gi rounded up to MEMORY 8192"]),
        (20000, 1024, "32", "61440", ["cpu 20 rounded up to VCPU 32", "memory 1Gi rounded up to MEMORY 61440"]),
        (1000, 249856, "32", "249856", ["cpu 1 rounded up to VCPU 32"]),
        (16000, 65536, "16", "65536", []),
    ],
)
def test_fargate_rounds_up_to_the_nearest_valid_pair(cpu: int, memory: int, vcpu: str, mib: str, notes: list[str]) -> None:
    plan = compile_batch(resolved_of("etl", cpu=cpu, memory=memory), "fargate")
    assert _values(plan) == {"VCPU": vcpu, "MEMORY": mib}
    assert len(plan.notes) == len(notes)
    for expected, got in zip(notes, plan.notes, strict=True):
        assert got.startswith(expected)
        assert f"the smallest valid Fargate size {vcpu} vCPU / {mib} MiB" in got
    assert plan.job_definition_fields == {} and plan.warnings == ()


def test_fargate_rounding_is_in_the_effects() -> None:
    effects = batch_effects(resolved_of("etl", cpu=300, memory=600, options={"platform": "fargate"}))
    assert effects["cpu"] == "containerOverrides VCPU 0.5 (Fargate size 0.5 vCPU / 1024 MiB), rounded up from 300m"
    assert effects["memory"] == "containerOverrides MEMORY 1024 (Fargate size 0.5 vCPU / 1024 MiB), rounded up from 600Mi"


@pytest.mark.parametrize(
    ("disk", "size", "note"),
    [
        (10 * 1024, 21, "disk 10Gi rounded up to ephemeralStorage.sizeInGiB 21: Fargate's smallest ephemeral storage is 21 GiB"),
        (21 * 1024, 21, None),
        (50 * 1024 + 1, 51, "disk 51201Mi rounded up to ephemeralStorage.sizeInGiB 51: Fargate sizes ephemeral storage in whole GiB"),
        (200 * 1024, 200, None),
    ],
)
def test_fargate_disk_is_ephemeral_storage(disk: int, size: int, note: str | None) -> None:
    plan = compile_batch(resolved_of("etl", disk=disk), "fargate")
    assert plan.job_definition_fields == {"containerProperties": {"ephemeralStorage": {"sizeInGiB": size}}}
    rounding = [n for n in plan.notes if "rounded up to ephemeralStorage" in n]
    assert rounding == ([note] if note else [])
    assert plan.effects["disk"].startswith(f"job definition ephemeralStorage.sizeInGiB {size}")


# -- errors (docs/design.md §5), by message --------------------------------------------------------------------


def _error(platform: str, **fields: Any) -> str:
    with pytest.raises(AllotmentError) as caught:
        compile_batch(resolved_of("train", **fields), platform)
    return str(caught.value)


def test_error_gpu_on_fargate() -> None:
    assert _error("fargate", gpu=1) == (
        "step 'train': gpu='1' from @resources cannot run on AWS Batch Fargate: Fargate has no GPUs; "
        "set gpu to 0, or use platform 'ec2' or 'eks'"
    )


def test_gpu_zero_on_fargate_is_fine() -> None:
    plan = compile_batch(resolved_of("train", gpu=0), "fargate")
    assert _values(plan) == {"VCPU": "1", "MEMORY": "4096"}


def test_error_shared_memory_on_fargate() -> None:
    assert _error("fargate", shared_memory=1024) == (
        "step 'train': shared_memory='1Gi' from @resources cannot be set on AWS Batch Fargate: Fargate takes no "
        "linuxParameters.sharedMemorySize (/dev/shm size); drop shared_memory for this step, or use platform 'ec2' or 'eks'"
    )


def test_error_disk_beyond_fargate_ephemeral_storage() -> None:
    assert _error("fargate", disk=200 * 1024 + 1) == (
        "step 'train': disk='204801Mi' from @resources is more than Fargate's largest ephemeral storage (200 GiB); "
        "ask for at most 200Gi, or use platform 'ec2' (disk from the launch template) or 'eks'"
    )


def test_error_cpu_beyond_fargate() -> None:
    assert _error("fargate", cpu=33000) == (
        "step 'train': cpu='33' from @resources is more than Fargate's largest size (32 vCPU); "
        "ask for at most 32 vCPU, or use platform 'ec2' or 'eks'"
    )


def test_error_memory_beyond_fargate() -> None:
    assert _error("fargate", memory=249857) == (
        "step 'train': memory='249857Mi' from @resources is more than Fargate's largest size (249856 MiB); "
        "ask for at most 244Gi (249856 MiB), or use platform 'ec2' or 'eks'"
    )


@pytest.mark.parametrize("platform", ["ec2", "eks"])
def test_error_gpu_vendor_other_than_nvidia(platform: str) -> None:
    message = _error(platform, gpu=1, gpu_vendor="amd")
    assert message == (
        f"step 'train': gpu_vendor='amd' from @resources is not available on AWS Batch ({platform}): Batch schedules NVIDIA GPUs "
        "only; drop gpu_vendor or set it to 'nvidia', or run this step on kubernetes"
    )


@pytest.mark.parametrize("platform", ["ec2", "eks"])
def test_error_mig_gpu_type(platform: str) -> None:
    assert _error(platform, gpu=1, gpu_type="1g.10gb") == (
        f"step 'train': gpu_type='1g.10gb' from @resources is a MIG profile; AWS Batch ({platform}) schedules whole GPUs only; "
        "use a whole-GPU gpu_type such as 'A100-80GB', or run this step on kubernetes"
    )


def test_error_names_the_runtime_source() -> None:
    settings_ = load_settings(cli={"with": ["batch:gpu=2"]}, env={})

    @resources(cpu=1)
    def train() -> None: ...

    resolved = settings_.resolve(spec_of(train), backend="batch")
    with pytest.raises(AllotmentError, match=r"^step 'train': gpu='2' from with --with 'batch:gpu=2' cannot run on AWS Batch Fargate"):
        compile_batch(resolved, "fargate")


def test_error_unknown_platform() -> None:
    with pytest.raises(AllotmentError) as caught:
        compile_batch(resolved_of("train"), "spot")
    assert str(caught.value) == "step 'train': platform='spot' from --platform is not an AWS Batch platform; use one of ec2, fargate, eks"


# -- EKS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "shown", "note"),
    [
        (100, "0.25", "cpu 100m rounded up to cpu 0.25: EKS-backed Batch takes multiples of 0.25 vCPU"),
        (1300, "1.5", "cpu 1300m rounded up to cpu 1.5: EKS-backed Batch takes multiples of 0.25 vCPU"),
        (1750, "1.75", None),
        (2000, "2", None),
    ],
)
def test_eks_cpu_in_quarters(cpu: int, shown: str, note: str | None) -> None:
    plan = compile_batch(resolved_of("train", cpu=cpu, memory=1024), "eks")
    assert _eks(plan)["requests"]["cpu"] == shown
    assert plan.notes == ((note,) if note else ())


def test_eks_memory_gpu_disk_requests_equal_limits() -> None:
    plan = compile_batch(resolved_of("train", cpu=2000, memory=16384, gpu=2, disk=10240), "eks", container="main")
    (container,) = plan.submit_overrides["eksPropertiesOverride"]["podProperties"]["containers"]
    assert container == {
        "name": "main",
        "resources": {
            "requests": {"cpu": "2", "memory": "16384Mi", "ephemeral-storage": "10240Mi", "nvidia.com/gpu": "2"},
            "limits": {"memory": "16384Mi", "ephemeral-storage": "10240Mi", "nvidia.com/gpu": "2"},
        },
    }
    assert plan.warnings == () and plan.job_definition_fields == {}


def test_eks_shared_memory_is_a_job_definition_volume() -> None:
    plan = compile_batch(resolved_of("train", memory=16384, shared_memory=8192), "eks")
    assert plan.job_definition_fields == {
        "eksProperties": {
            "podProperties": {
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8192Mi"}}],
                "containers": [{"volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}],
            }
        }
    }
    assert plan.effects["shared_memory"] == "job definition volume dshm (emptyDir Memory, 8192Mi) at /dev/shm (a derived revision)"


# -- platform precedence -----------------------------------------------------------------------------


def test_platform_precedence() -> None:
    pinned = resolved_of("train", options={"platform": "fargate"})
    assert batch_platform(pinned, "eks") == ("fargate", "@batch(platform=...)")
    assert batch_platform(resolved_of("train"), "eks") == ("eks", "--platform")
    assert batch_platform(resolved_of("train")) == ("ec2", "default")
    plan = compile_batch(pinned, "eks")
    assert plan.platform == "fargate" and "containerOverrides" in plan.submit_overrides
    assert plan.notes == ("platform fargate from @batch(platform=...) (not eks from the caller)",)


def test_batch_decorator_platform_option_reaches_the_compiler() -> None:
    @batch(platform="eks", queue="gpu-queue", job_definition="trainer")
    def train() -> None: ...

    plan = compile_batch(Settings().resolve(spec_of(train), backend="batch"))
    assert plan.platform == "eks" and plan.platform_source == "@batch(platform=...)"


# -- effects for explain, and the rest --------------------------------------------------------------------


def test_batch_effects_ec2() -> None:
    resolved = resolved_of("train", cpu=1500, memory=8192, gpu=1, gpu_vendor="nvidia", shared_memory=1024, retry_memory_factor=1.5)
    assert batch_effects(resolved, None) == {
        "gpu_vendor": "NVIDIA GPUs (the only kind AWS Batch schedules)",
        "cpu": "containerOverrides VCPU 2 (rounded up from 1500m)",
        "memory": "containerOverrides MEMORY 8192 (MiB)",
        "gpu": "containerOverrides GPU 1",
        "shared_memory": "job definition linuxParameters.sharedMemorySize 1024 (MiB; a derived revision, not overridable at submit)",
        "retry_memory_factor": "memory x1.5 after each OOM kill (OutOfMemoryError; applied at submit)",
    }


def test_batch_effects_issues_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert batch_effects(resolved_of("train", disk=2048))["disk"].startswith("not applied")


def test_batch_notes_are_the_compilers_own() -> None:
    resolved = resolved_of("train", cpu=300, memory=1000, retry_memory_factor=2.0).with_memory_after(1, try_number=2)
    assert resolved.notes and not any("rounded" in n for n in resolved.notes)
    assert batch_notes(resolved, "fargate") == (
        "cpu 300m rounded up to VCPU 0.5: the smallest valid Fargate size 0.5 vCPU / 2048 MiB",
        "memory 2000Mi rounded up to MEMORY 2048: the smallest valid Fargate size 0.5 vCPU / 2048 MiB",
    )


def test_resolved_notes_are_kept() -> None:
    resolved = resolved_of("train", memory=1000, retry_memory_factor=2.0).with_memory_after(1, try_number=2)
    plan = compile_batch(resolved, "ec2")
    assert plan.notes[0].startswith("try 2: memory")
    assert _values(plan)["MEMORY"] == "2000"


def test_submit_job_request_is_a_fresh_copy() -> None:
    plan = compile_batch(resolved_of("train"), "ec2")
    first = plan.submit_job_request("train", "q", "jd")
    first["containerOverrides"]["resourceRequirements"].clear()
    assert plan.submit_job_request("train", "q", "jd")["containerOverrides"]["resourceRequirements"] != []
    assert list(first) == ["jobName", "jobQueue", "jobDefinition", "containerOverrides"]


@pytest.mark.parametrize(
    ("step", "name"), [("train", "train"), ("_private", "private"), ("étape_1", "-tape_1"[1:]), ("__", "job"), ("a" * 200, "a" * 128)]
)
def test_job_name(step: str, name: str) -> None:
    assert job_name(step) == name
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", job_name(step))


def test_compiler_and_jobdefs_import_no_aws_sdk() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, json, allotment.batch, allotment.batch.jobdefs\n"
        "print(json.dumps([m for m in ('boto3', 'botocore', 'yaml', 'airflow', 'moto') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
