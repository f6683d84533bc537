"""Helpers for the AWS Batch tests: botocore's real Batch model, its Fargate table, resolved specs,
described base job definitions as DescribeJobDefinitions returns them, and a moto server on
127.0.0.1 with a job queue (also used by tests/airflow/test_batch_operator.py)."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import botocore.session
import pytest
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


def _post_json(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (in this process, a free port): yields its endpoint URL.

    No docker: Batch jobs are recorded and marked SUCCEEDED at once (moto's batch_simple).
    moto's config is process-wide (the server runs in this process): it is put back, and the
    server's state reset, afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=10) as response:
        before = json.load(response)["batch"]
    _post_json(f"{endpoint}/moto-api/config", {"batch": {"use_docker": False}})
    try:
        yield endpoint
    finally:
        _post_json(f"{endpoint}/moto-api/config", {"batch": before})
        _post_json(f"{endpoint}/moto-api/reset", {})
        server.stop()


@dataclass
class MotoBatch:
    """A Batch client on a moto server, with a job queue (on an unmanaged compute environment)."""

    endpoint: str
    client: Any
    queue: str
    prefix: str

    def recorded(self, job_id: str) -> dict[str, Any]:
        """The overrides the server stored for a submitted job (moto's describe_jobs does not show
        ``containerOverrides.resourceRequirements``)."""
        from moto.batch.models import batch_backends

        job = batch_backends[ACCOUNT][REGION]._jobs[job_id]
        return {"containerOverrides": job.container_overrides, "eksPropertiesOverride": job.eks_properties_override}

    def revisions(self, name: str) -> list[dict[str, Any]]:
        """The ACTIVE revisions of a job definition, oldest first."""
        found = self.client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        return sorted(found, key=lambda d: d["revision"])


def moto_batch(endpoint: str) -> MotoBatch:
    """A fresh job queue (names prefixed with a random ``t<8 hex>``) on the moto server at ``endpoint``."""
    import boto3

    keys = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    client = boto3.client("batch", **keys)
    iam = boto3.client("iam", **keys)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=f"{prefix}-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client.create_compute_environment(computeEnvironmentName=f"{prefix}-ce", type="UNMANAGED", state="ENABLED", serviceRole=role)
    client.create_job_queue(
        jobQueueName=f"{prefix}-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": f"{prefix}-ce"}],
    )
    return MotoBatch(endpoint, client, f"{prefix}-queue", prefix)


def real_aws_queue(what: str) -> str:
    """The queue named by ALLOTMENT_TEST_BATCH_QUEUE when real AWS is asked for (ALLOTMENT_TEST_REAL_AWS=1
    and credentials are present); otherwise the test skips, saying how to run ``what`` against AWS."""
    wanted = os.environ.get("ALLOTMENT_TEST_REAL_AWS") == "1"
    has_credentials = bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))
    queue = os.environ.get("ALLOTMENT_TEST_BATCH_QUEUE")
    if not (wanted and has_credentials and queue):
        pytest.skip(
            "real AWS Batch: set ALLOTMENT_TEST_REAL_AWS=1, AWS credentials (AWS_ACCESS_KEY_ID or AWS_PROFILE) and "
            f"ALLOTMENT_TEST_BATCH_QUEUE (an existing EC2 job queue) to run {what} against AWS"
        )
    return queue
