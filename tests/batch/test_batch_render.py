"""``allotment render FILE --target batch [--platform ...]``: per step, the SubmitJob request and
the job-definition fields it needs; deterministic; bad specs exit 1 with the message."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import allotment
import pytest
import yaml
from allotment import decorators, faces
from allotment.batch import JOB_DEFINITION_PLACEHOLDER, JOB_QUEUE_PLACEHOLDER
from allotment.cli import main
from batch_support import validation_errors

FLOW = '''\
from allotment import batch, kubernetes, resources


@resources(cpu=0.5, memory="1Gi")
def prepare():
    """No backend decorator: runs on the deployment's backend."""


@resources(cpu=4, memory=8192, gpu=1, shared_memory="2Gi")
@batch(cpu=2, memory=16384, queue="gpu-queue", job_definition="trainer")
def train():
    """The seed rule: cpu 4, memory 16384."""


@batch(platform="fargate", cpu=0.3, memory=600, disk="30Gi", job_definition="etl")
def etl():
    """Pinned to Fargate by its decorator."""


@resources(disk="10Gi")
def scratch():
    """Disk on EC2: a warning."""


@kubernetes(cpu=1)
def serve():
    """Pinned to Kubernetes: not rendered for batch."""
'''


def test_the_batch_target_is_the_core_batch_package_and_the_decorator_stays() -> None:
    # Importing the package `allotment.batch` must not replace the package attribute `batch` (the @batch decorator).
    assert faces.RENDER_TARGETS["batch"][0] == "allotment.batch.render:render"
    faces.load_target("batch")
    assert allotment.batch is decorators.batch


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.py"
    path.write_text(FLOW)
    return path


def _render(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["render", *argv, "--target", "batch"])
    out, err = capsys.readouterr()
    return code, out, err


def _documents(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, dict[str, Any]], str]:
    code, out, err = _render(capsys, *argv, "-o", "json")
    assert code == 0, err
    return {d["step"]: d for d in json.loads(out)}, err


def test_render_batch_documents(flow: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs, err = _documents(capsys, str(flow))
    assert list(docs) == ["prepare", "train", "etl", "scratch"]
    assert "allotment: step 'serve' runs on kubernetes (@kubernetes); not rendered for batch" in err
    assert "allotment: warning: step 'scratch': disk='10Gi' from @resources is not applied on AWS Batch EC2" in err

    train = docs["train"]
    assert train["file"] == flow.as_posix() and train["platform"] == "ec2"
    assert train["submitJob"] == {
        "jobName": "train",
        "jobQueue": "gpu-queue",
        "jobDefinition": "trainer",
        "containerOverrides": {
            "resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "16384"}, {"type": "GPU", "value": "1"}]
        },
    }
    assert train["jobDefinitionFields"] == {"containerProperties": {"linuxParameters": {"sharedMemorySize": 2048}}}
    assert "warnings" not in train

    prepare = docs["prepare"]
    assert prepare["submitJob"]["jobQueue"] == JOB_QUEUE_PLACEHOLDER == "<job-queue>"
    assert prepare["submitJob"]["jobDefinition"] == JOB_DEFINITION_PLACEHOLDER == "<job-definition>"
    assert prepare["submitJob"]["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "1024"},
    ]
    assert "cpu 500m rounded up to VCPU 1: AWS Batch on EC2 takes at least 1" in prepare["notes"]
    assert any("placeholder" in n and "@batch(queue=...)" in n for n in prepare["notes"])
    assert "jobDefinitionFields" not in prepare

    etl = docs["etl"]
    assert etl["platform"] == "fargate"
    assert etl["submitJob"]["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "0.5"},
        {"type": "MEMORY", "value": "1024"},
    ]
    assert etl["jobDefinitionFields"] == {"containerProperties": {"ephemeralStorage": {"sizeInGiB": 30}}}
    assert sum("rounded up" in n for n in etl["notes"]) == 2

    scratch = docs["scratch"]
    assert scratch["warnings"] == [
        "step 'scratch': disk='10Gi' from @resources is not applied on AWS Batch EC2: an EC2 job's disk is sized by the compute "
        "environment's launch template (its volumes); size it there"
    ]
    for doc in docs.values():
        assert validation_errors("SubmitJob", doc["submitJob"]) == ""


def test_render_platform_option_and_decorator_precedence(flow: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs, _ = _documents(capsys, str(flow), "--platform", "eks")
    assert {step: d["platform"] for step, d in docs.items()} == {"prepare": "eks", "train": "eks", "etl": "fargate", "scratch": "eks"}
    (container,) = docs["train"]["submitJob"]["eksPropertiesOverride"]["podProperties"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16384Mi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "16384Mi", "nvidia.com/gpu": "1"},
    }
    assert docs["train"]["jobDefinitionFields"]["eksProperties"]["podProperties"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2048Mi"}}
    ]
    assert "platform fargate from @batch(platform=...) (not eks from the caller)" in docs["etl"]["notes"]
    assert (
        docs["scratch"]["submitJob"]["eksPropertiesOverride"]["podProperties"]["containers"][0]["resources"]["limits"]["ephemeral-storage"]
        == "10240Mi"
    )


def test_render_with_runtime_floor(flow: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs, _ = _documents(capsys, str(flow), "--with", "batch:memory=65536")
    assert docs["train"]["submitJob"]["containerOverrides"]["resourceRequirements"][1] == {"type": "MEMORY", "value": "65536"}
    # Fargate: 0.3 vCPU with 64Gi fits no pair below 16 vCPU
    assert docs["etl"]["submitJob"]["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "16"},
        {"type": "MEMORY", "value": "65536"},
    ]
    assert "cpu 300m rounded up to VCPU 16: the smallest valid Fargate size 16 vCPU / 65536 MiB" in docs["etl"]["notes"]


def test_render_is_deterministic_yaml(flow: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _render(capsys, str(flow))
    second = _render(capsys, str(flow))
    assert first == second and first[0] == 0
    documents = list(yaml.safe_load_all(first[1]))
    assert [d["step"] for d in documents] == ["prepare", "train", "etl", "scratch"]
    assert documents[1]["submitJob"]["containerOverrides"]["resourceRequirements"][0] == {"type": "VCPU", "value": "4"}


def test_render_error_exits_1_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        textwrap.dedent(
            """\
            from allotment import batch

            @batch(platform="fargate", gpu=1)
            def train():
                pass
            """
        )
    )
    code, out, err = _render(capsys, str(bad))
    assert code == 1 and out == ""
    assert err == (
        f"allotment: error: {bad}: step 'train': gpu='1' from @batch cannot run on AWS Batch Fargate: Fargate has no GPUs; "
        "set gpu to 0, or use platform 'ec2' or 'eks'\n"
        "allotment: render --target batch: 0 documents, 1 step in 1 file, 1 error\n"
    )


def test_rendering_keeps_the_batch_decorator(flow: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # importing the compiler must not rebind `allotment.batch` (the decorator) to a module
    _render(capsys, str(flow))
    assert allotment.batch is decorators.batch
    from allotment import batch as imported

    assert imported is decorators.batch
