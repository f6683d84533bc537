"""Helpers for the AWS Batch tests: botocore's real Batch model, its Fargate table, resolved specs,
and described base job definitions as DescribeJobDefinitions returns them."""

from __future__ import annotations

import copy
import functools
import re
from fractions import Fraction
from typing import Any

import botocore.session
from allotment.model import Resources
from allotment.resolve import Resolved, resolve
from allotment.sources import Source
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

ACCOUNT = "123456789012"
REGION = "us-east-1"


@functools.cache
def batch_model() -> ServiceModel:
    """botocore's Batch service model (2016-08-10), loaded once."""
    return botocore.session.get_session().get_service_model("batch")


@functools.cache
def input_shape(operation: str) -> Shape:
    shape = batch_model().operation_model(operation).input_shape
    assert shape is not None
    return shape


_VALIDATOR = ParamValidator()


def validation_errors(operation: str, params: dict[str, Any]) -> str:
    """botocore's own parameter validation of ``params`` for ``operation``: '' when valid."""
    report = _VALIDATOR.validate(params, input_shape(operation))
    return report.generate_report() if report.has_errors() else ""


_PAIR = re.compile(r"<dt>value = ([^<]+)</dt>\s*<dd>\s*<p>\s*<code>(VCPU|MEMORY)</code>\s*=\s*([^<]+)</p>")


def _numbers(text: str) -> list[str]:
    return re.findall(r"[0-9]+(?:\.[0-9]+)?", text)


@functools.cache
def fargate_doc_pairs() -> frozenset[tuple[int, int]]:
    """Valid Fargate (vCPU millicores, MiB) pairs, parsed from ``ResourceRequirement.value``'s
    documentation in botocore's model. The doc lists them twice, keyed by MEMORY and keyed by
    VCPU; both lists must agree."""
    doc = batch_model().shape_for("ResourceRequirement").members["value"].documentation
    memory_part = doc.split('<dt>type="MEMORY"</dt>')[1].split('<dt>type="VCPU"</dt>')[0]
    vcpu_part = doc.split('<dt>type="VCPU"</dt>')[1]
    by_memory: set[tuple[int, int]] = set()
    for key, kind, values in _PAIR.findall(memory_part):
        assert kind == "VCPU"
        for memory in _numbers(key):
            for vcpu in _numbers(values):
                by_memory.add((int(Fraction(vcpu) * 1000), int(memory)))
    by_vcpu: set[tuple[int, int]] = set()
    for key, kind, values in _PAIR.findall(vcpu_part):
        assert kind == "MEMORY"
        for vcpu in _numbers(key):
            for memory in _numbers(values):
                by_vcpu.add((int(Fraction(vcpu) * 1000), int(memory)))
    assert by_memory, "no Fargate pairs parsed from the MEMORY table"
    assert by_memory == by_vcpu, f"the doc's two Fargate tables differ: {sorted(by_memory ^ by_vcpu)}"
    return frozenset(by_memory)


def resolved_of(step: str = "train", options: dict[str, Any] | None = None, **fields: Any) -> Resolved:
    """A resolved spec whose ``fields`` (held units: cpu millicores, sizes MiB) come from @resources."""
    from types import MappingProxyType

    result = resolve(None, step=step, backend="batch", extra=[(Resources.normalized(**fields), Source("@resources"))])
    if options:
        result = Resolved(result.step, result.backend, result.winners, result.contributions, MappingProxyType(options), result.notes)
    return result


_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition"

BASES: dict[str, dict[str, Any]] = {
    "ec2": {
        "jobDefinitionName": "trainer",
        "jobDefinitionArn": f"{_ARN}/trainer:3",
        "revision": 3,
        "status": "ACTIVE",
        "type": "container",
        "parameters": {"epochs": "10"},
        "containerProperties": {
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1.2",
            "command": ["python", "-m", "train", "Ref::epochs"],
            "jobRoleArn": f"arn:aws:iam::{ACCOUNT}:role/trainer",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "environment": [{"name": "MODE", "value": "batch"}],
            "linuxParameters": {"initProcessEnabled": True, "sharedMemorySize": 64},
            "volumes": [],
            "mountPoints": [],
            "ulimits": [],
            "secrets": [],
        },
        "retryStrategy": {"attempts": 2},
        "timeout": {"attemptDurationSeconds": 3600},
        "tags": {"team": "ml", "aws:cloudformation:stack-name": "stack"},
        "propagateTags": True,
        "platformCapabilities": ["EC2"],
        "containerOrchestrationType": "ECS",
    },
    "fargate": {
        "jobDefinitionName": "etl",
        "jobDefinitionArn": f"{_ARN}/etl:1",
        "revision": 1,
        "status": "ACTIVE",
        "type": "container",
        "parameters": {},
        "containerProperties": {
            "image": "public.ecr.aws/docker/library/python:3.12",
            "command": ["python", "etl.py"],
            "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecution",
            "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}],
            "networkConfiguration": {"assignPublicIp": "ENABLED"},
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        },
        "tags": {},
        "platformCapabilities": ["FARGATE"],
        "containerOrchestrationType": "ECS",
    },
    "eks": {
        "jobDefinitionName": "eks-trainer",
        "jobDefinitionArn": f"{_ARN}/eks-trainer:2",
        "revision": 2,
        "status": "ACTIVE",
        "type": "container",
        "parameters": {},
        "eksProperties": {
            "podProperties": {
                "hostNetwork": False,
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sleep", "1"],
                        "resources": {"limits": {"cpu": "1", "memory": "2048Mi"}, "requests": {"cpu": "1", "memory": "2048Mi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    },
                    {"name": "sidecar", "image": "busybox"},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        },
        "platformCapabilities": ["EC2"],
        "containerOrchestrationType": "EKS",
    },
}
"""A base job definition per platform, in DescribeJobDefinitions form (read-only members included)."""


def base(platform: str) -> dict[str, Any]:
    """A fresh copy of the platform's base job definition."""
    return copy.deepcopy(BASES[platform])
