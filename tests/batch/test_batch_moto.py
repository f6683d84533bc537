"""End to end through the real boto3 client: a moto server on 127.0.0.1 (no-docker Batch), or
real AWS when asked for. Register a base job definition, derive the revision the spec needs,
submit with the compiled overrides, and check what the server recorded: the revisions
(registration is idempotent) and the submitted job.

Real AWS: set ``ALLOTMENT_TEST_REAL_AWS=1``, credentials (``AWS_ACCESS_KEY_ID``... or
``AWS_PROFILE``), ``AWS_DEFAULT_REGION`` and ``ALLOTMENT_TEST_BATCH_QUEUE`` (an existing
EC2 job queue). The test registers job definitions named ``allotment-test-<random>...``,
terminates its jobs and deregisters those definitions afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from allotment import batch, resources
from allotment.batch import compile_batch, job_name
from allotment.batch.jobdefs import DIGEST_TAG, ensure_job_definition
from allotment.decorators import spec_of
from allotment.settings import Settings
from batch_support import ACCOUNT, moto_batch, moto_server, real_aws_queue

boto3 = pytest.importorskip("boto3")


@dataclass
class BatchTarget:
    """A Batch endpoint to test against and how to read back what it recorded."""

    kind: str
    client: Any
    queue: str
    prefix: str
    recorded: Callable[[str], dict[str, Any]] | None = None  # job id -> the overrides the server stored
    job_ids: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server")
    with moto_server() as endpoint:
        yield endpoint


def _moto_target(endpoint: str) -> BatchTarget:
    moto = moto_batch(endpoint)
    return BatchTarget("moto", moto.client, moto.queue, moto.prefix, moto.recorded)


def _aws_target() -> BatchTarget:
    queue = real_aws_queue("this")
    return BatchTarget("aws", boto3.client("batch"), queue, f"allotment-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["moto", "aws"])
def target(request: pytest.FixtureRequest) -> Iterator[BatchTarget]:
    made = _moto_target(request.getfixturevalue("moto_endpoint")) if request.param == "moto" else _aws_target()
    try:
        yield made
    finally:
        if made.kind == "aws":  # pragma: no cover - needs AWS
            for job_id in made.job_ids:
                made.client.terminate_job(jobId=job_id, reason="allotment test cleanup")
            for page in made.client.get_paginator("describe_job_definitions").paginate(status="ACTIVE"):
                for definition in page["jobDefinitions"]:
                    if definition["jobDefinitionName"].startswith(made.prefix):
                        made.client.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])


def _revisions(target: BatchTarget, name: str) -> list[dict[str, Any]]:
    found = target.client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    return sorted(found, key=lambda d: d["revision"])


def _submit(target: BatchTarget, plan: Any, job_definition: str) -> dict[str, Any]:
    request = plan.submit_job_request(job_name(plan.step), target.queue, job_definition)
    job_id = target.client.submit_job(**request)["jobId"]
    target.job_ids.append(job_id)
    (job,) = target.client.describe_jobs(jobs=[job_id])["jobs"]
    return dict(job)


def test_ec2_shared_memory_revision_and_submit(target: BatchTarget) -> None:
    base_name = f"{target.prefix}-trainer"
    target.client.register_job_definition(
        jobDefinitionName=base_name,
        type="container",
        containerProperties={
            "image": "busybox",
            "command": ["echo", "train"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "linuxParameters": {"sharedMemorySize": 64},
        },
        tags={"team": "ml"},
    )

    @resources(cpu=2, memory="8Gi", shared_memory="2Gi")
    @batch(cpu=1.5, queue=target.queue, job_definition=base_name)
    def train() -> None: ...

    resolved = Settings().resolve(spec_of(train), backend="batch")
    plan = compile_batch(resolved)
    assert plan.platform == "ec2"

    first = ensure_job_definition(target.client, resolved.options["job_definition"], plan)
    assert first.registered and first.derived and first.revision == 1
    assert first.name.startswith(f"{base_name}-allot-")
    (derived,) = _revisions(target, first.name)
    assert derived["jobDefinitionArn"] == first.job_definition
    assert derived["containerProperties"]["linuxParameters"]["sharedMemorySize"] == 2048
    assert derived["containerProperties"]["image"] == "busybox"
    assert derived["tags"][DIGEST_TAG] == first.digest and derived["tags"]["team"] == "ml"

    # idempotent: the same spec registers nothing new
    second = ensure_job_definition(target.client, base_name, plan)
    assert not second.registered and second.job_definition == first.job_definition
    assert len(_revisions(target, first.name)) == 1
    assert [d["revision"] for d in _revisions(target, base_name)] == [1]  # the base is never changed

    job = _submit(target, plan, second.job_definition)
    assert job["jobName"] == "train" and job["jobDefinition"] == first.job_definition
    assert job["jobQueue"].endswith(f"job-queue/{target.queue}")
    if target.recorded is not None:
        assert target.recorded(job["jobId"])["containerOverrides"] == {
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "8192"}]
        }
        assert job["status"] == "SUCCEEDED"


def test_fargate_ephemeral_storage_revision_and_submit(target: BatchTarget) -> None:
    if target.kind == "aws":  # pragma: no cover - needs AWS
        pytest.skip("the real-AWS run uses the EC2 queue only")
    iam_role = f"arn:aws:iam::{ACCOUNT}:role/{target.prefix}-batch-service"
    base_name = f"{target.prefix}-etl"
    target.client.register_job_definition(
        jobDefinitionName=base_name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "busybox",
            "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}],
            "executionRoleArn": iam_role,
            "networkConfiguration": {"assignPublicIp": "ENABLED"},
        },
    )

    @batch(cpu=0.3, memory=600, disk="30Gi", platform="fargate", job_definition=base_name)
    def etl() -> None: ...

    plan = compile_batch(Settings().resolve(spec_of(etl), backend="batch"))
    assert any("rounded up to VCPU 0.5" in n for n in plan.notes)
    refs = [ensure_job_definition(target.client, base_name, plan) for _ in range(3)]
    assert [r.registered for r in refs] == [True, False, False]
    assert len({r.job_definition for r in refs}) == 1
    (derived,) = _revisions(target, refs[0].name)
    assert derived["containerProperties"]["ephemeralStorage"] == {"sizeInGiB": 30}
    assert derived["platformCapabilities"] == ["FARGATE"]

    job = _submit(target, plan, refs[0].job_definition)
    assert job["jobDefinition"] == refs[0].job_definition
    assert target.recorded is not None
    assert target.recorded(job["jobId"])["containerOverrides"] == {
        "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}]
    }


def test_eks_shm_volume_revision_and_submit(target: BatchTarget) -> None:
    if target.kind == "aws":  # pragma: no cover - needs AWS
        pytest.skip("the real-AWS run uses the EC2 queue only")
    base_name = f"{target.prefix}-eks"
    target.client.register_job_definition(
        jobDefinitionName=base_name,
        type="container",
        eksProperties={
            "podProperties": {
                "containers": [
                    {"name": "main", "image": "busybox", "resources": {"limits": {"cpu": "1", "memory": "2048Mi"}}},
                ]
            }
        },
    )

    @resources(cpu=1.1, memory="16Gi", gpu=1, shared_memory="4Gi")
    @batch(platform="eks", job_definition=base_name)
    def train() -> None: ...

    plan = compile_batch(Settings().resolve(spec_of(train), backend="batch"), container="main")
    first = ensure_job_definition(target.client, base_name, plan)
    again = ensure_job_definition(target.client, base_name, plan)
    assert first.registered and not again.registered and again.job_definition == first.job_definition
    (derived,) = _revisions(target, first.name)
    pod = derived["eksProperties"]["podProperties"]
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4096Mi"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]

    job = _submit(target, plan, first.job_definition)
    resources_ = {
        "requests": {"cpu": "1.25", "memory": "16384Mi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "16384Mi", "nvidia.com/gpu": "1"},
    }
    assert target.recorded is not None
    assert target.recorded(job["jobId"])["eksPropertiesOverride"] == {
        "podProperties": {"containers": [{"name": "main", "resources": resources_}]}
    }
    assert job["eksProperties"]["podProperties"]["containers"][0]["resources"] == resources_
