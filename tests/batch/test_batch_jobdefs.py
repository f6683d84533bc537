"""Job-definition derivation: stripping, merging, naming by content, idempotent registration
(against an in-memory client; the moto test does it against a server)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from allotment import AllotmentError
from allotment.batch import compile_batch
from allotment.batch.jobdefs import (
    BASE_TAG,
    DIGEST_TAG,
    READ_ONLY_FIELDS,
    REGISTER_FIELDS,
    derive_job_definition,
    describe_base,
    ensure_job_definition,
    registration_request,
)
from batch_support import base, batch_model, resolved_of, validation_errors


def test_register_fields_are_botocores() -> None:
    model = batch_model()
    register = model.operation_model("RegisterJobDefinition").input_shape
    assert register is not None
    assert set(REGISTER_FIELDS) == set(register.members)
    described = set(model.shape_for("JobDefinition").members)
    assert set(READ_ONLY_FIELDS) == described - set(register.members)


def test_registration_request_strips_read_only_members_and_aws_tags() -> None:
    described = base("ec2")
    described["someFutureField"] = "x"
    described["schedulingPriority"] = None
    request = registration_request(described)
    assert not set(READ_ONLY_FIELDS) & set(request)
    assert "someFutureField" not in request and "schedulingPriority" not in request
    assert request["tags"] == {"team": "ml"}
    assert described == {**base("ec2"), "someFutureField": "x", "schedulingPriority": None}  # not changed
    assert validation_errors("RegisterJobDefinition", request) == ""


def _fields(platform: str, **spec: Any) -> dict[str, Any]:
    return dict(compile_batch(resolved_of("train", **spec), platform).job_definition_fields)


def test_derive_ec2_shared_memory() -> None:
    derived = derive_job_definition(base("ec2"), _fields("ec2", memory=16384, shared_memory=8192), platform="ec2", step="train")
    request = dict(derived.request)
    assert request["containerProperties"]["linuxParameters"] == {"initProcessEnabled": True, "sharedMemorySize": 8192}
    assert derived.name == f"trainer-allot-{derived.digest}" and len(derived.digest) == 12
    assert request["jobDefinitionName"] == derived.name
    assert request["tags"] == {"team": "ml", DIGEST_TAG: derived.digest, BASE_TAG: "trainer:3"}
    assert derived.notes == (
        "containerProperties.linuxParameters.sharedMemorySize 64 of the base job definition 'trainer:3' replaced by 8192 from the spec",
    )
    # everything else is the base's
    expected = registration_request(base("ec2"))
    expected["containerProperties"]["linuxParameters"]["sharedMemorySize"] = 8192
    assert {k: v for k, v in request.items() if k not in ("jobDefinitionName", "tags")} == {
        k: v for k, v in expected.items() if k not in ("jobDefinitionName", "tags")
    }


def test_derive_is_deterministic_and_named_by_content() -> None:
    first = derive_job_definition(base("ec2"), _fields("ec2", memory=16384, shared_memory=8192), platform="ec2")
    again = derive_job_definition(base("ec2"), _fields("ec2", memory=16384, shared_memory=8192), platform="ec2")
    other = derive_job_definition(base("ec2"), _fields("ec2", shared_memory=4096), platform="ec2")
    changed_base = base("ec2")
    changed_base["containerProperties"]["image"] += "-new"
    moved = derive_job_definition(changed_base, _fields("ec2", memory=16384, shared_memory=8192), platform="ec2")
    assert first.request == again.request and first.name == again.name
    assert len({first.digest, other.digest, moved.digest}) == 3
    # the base's revision number and ARN are not content
    renumbered = base("ec2") | {"revision": 9, "jobDefinitionArn": "arn:aws:batch:us-east-1:123456789012:job-definition/trainer:9"}
    assert derive_job_definition(renumbered, _fields("ec2", memory=16384, shared_memory=8192), platform="ec2").digest == first.digest


def test_derive_long_base_name_stays_within_128() -> None:
    long = base("ec2") | {"jobDefinitionName": "x" * 128}
    derived = derive_job_definition(long, _fields("ec2", shared_memory=64 * 2), platform="ec2")
    assert len(derived.name) == 128 and derived.name.endswith(f"-allot-{derived.digest}")


def test_derive_fargate_ephemeral_storage() -> None:
    derived = derive_job_definition(base("fargate"), _fields("fargate", disk=30 * 1024), platform="fargate")
    assert derived.request["containerProperties"]["ephemeralStorage"] == {"sizeInGiB": 30}
    assert derived.request["platformCapabilities"] == ["FARGATE"]
    assert derived.notes == ()
    assert validation_errors("RegisterJobDefinition", dict(derived.request)) == ""


def test_derive_eks_adds_the_shm_volume_to_the_named_container() -> None:
    derived = derive_job_definition(base("eks"), _fields("eks", memory=8192, shared_memory=2048), platform="eks", container="sidecar")
    pod = derived.request["eksProperties"]["podProperties"]
    assert pod["volumes"] == [{"name": "data", "emptyDir": {}}, {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2048Mi"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert pod["containers"][1]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]


def test_derive_eks_resizes_an_existing_memory_volume_at_dev_shm() -> None:
    described = base("eks")
    pod = described["eksProperties"]["podProperties"]
    pod["volumes"].append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})
    pod["containers"][0]["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
    derived = derive_job_definition(described, _fields("eks", memory=8192, shared_memory=1024), platform="eks")
    new_pod = derived.request["eksProperties"]["podProperties"]
    assert new_pod["volumes"][-1] == {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}}
    assert [m["name"] for m in new_pod["containers"][0]["volumeMounts"]] == ["data", "shm"]
    assert derived.notes == (
        "/dev/shm volume 'shm' of the base job definition 'eks-trainer:2': sizeLimit '64Mi' replaced by '1024Mi' from the spec",
    )


def test_derive_eks_conflicts() -> None:
    described = base("eks")
    described["eksProperties"]["podProperties"]["volumes"].append({"name": "shm", "hostPath": {"path": "/dev/shm"}})
    described["eksProperties"]["podProperties"]["containers"][0]["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
    with pytest.raises(AllotmentError) as caught:
        derive_job_definition(described, _fields("eks", shared_memory=1024), platform="eks", step="train")
    assert str(caught.value) == (
        "step 'train': job_definition='eks-trainer:2' mounts volume 'shm' at /dev/shm that is not an emptyDir of medium Memory; "
        "drop that mount from the base job definition (shared_memory sizes /dev/shm), or drop shared_memory"
    )
    named = base("eks")
    named["eksProperties"]["podProperties"]["volumes"].append({"name": "dshm", "emptyDir": {}})
    with pytest.raises(AllotmentError, match=r"has a volume named 'dshm' not mounted at /dev/shm; rename that volume"):
        derive_job_definition(named, _fields("eks", shared_memory=1024), platform="eks", step="train")
    with pytest.raises(AllotmentError, match=r"has no container named 'nope'; its containers are 'main', 'sidecar'"):
        derive_job_definition(base("eks"), _fields("eks", shared_memory=1024), platform="eks", container="nope")


@pytest.mark.parametrize(
    ("described", "platform", "fields", "message"),
    [
        ("ec2", "fargate", {"containerProperties": {"ephemeralStorage": {"sizeInGiB": 30}}}, "is not a Fargate job definition"),
        ("fargate", "ec2", {"containerProperties": {"linuxParameters": {"sharedMemorySize": 1}}}, "is a Fargate job definition"),
        ("eks", "ec2", {"containerProperties": {"linuxParameters": {"sharedMemorySize": 1}}}, "is an EKS job definition"),
        ("ec2", "eks", {"eksProperties": {}}, "has no eksProperties, so it is not an EKS job definition"),
    ],
)
def test_derive_checks_the_base_platform(described: str, platform: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(AllotmentError, match=rf"^step 'train': job_definition='[a-z0-9-]+:\d+' {message}"):
        derive_job_definition(base(described), fields, platform=platform, step="train")


def test_derive_rejects_multi_node_bases() -> None:
    described = base("ec2")
    described["nodeProperties"] = {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": []}
    with pytest.raises(AllotmentError, match="is a multi-node parallel job definition"):
        derive_job_definition(described, _fields("ec2", shared_memory=8), platform="ec2")


class FakeBatch:
    """An in-memory Batch: job definitions with revisions and tags, pages of one."""

    def __init__(self) -> None:
        self.definitions: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def register_job_definition(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("register", request))
        assert validation_errors("RegisterJobDefinition", request) == ""
        name = request["jobDefinitionName"]
        revision = 1 + max((d["revision"] for d in self.definitions if d["jobDefinitionName"] == name), default=0)
        arn = f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}:{revision}"
        stored = copy.deepcopy(request) | {"jobDefinitionArn": arn, "revision": revision, "status": "ACTIVE"}
        stored.setdefault("containerOrchestrationType", "EKS" if "eksProperties" in request else "ECS")
        self.definitions.append(stored)
        return {"jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision}

    def describe_job_definitions(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("describe", kwargs))
        found = self.definitions
        if "jobDefinitionName" in kwargs:
            found = [d for d in found if d["jobDefinitionName"] == kwargs["jobDefinitionName"]]
        if "jobDefinitions" in kwargs:
            wanted = set(kwargs["jobDefinitions"])
            found = [d for d in found if d["jobDefinitionArn"] in wanted or f"{d['jobDefinitionName']}:{d['revision']}" in wanted]
        if "status" in kwargs:
            found = [d for d in found if d["status"] == kwargs["status"]]
        start = int(kwargs.get("nextToken") or 0)
        page = {"jobDefinitions": copy.deepcopy(found[start : start + 1])}
        if start + 1 < len(found):
            page["nextToken"] = str(start + 1)
        return page


def _fake_with_base() -> FakeBatch:
    fake = FakeBatch()
    request = registration_request(base("ec2"))
    fake.register_job_definition(**request)
    request["containerProperties"]["image"] = "trainer:2.0"
    fake.register_job_definition(**request)  # revision 2: the latest
    fake.calls.clear()
    return fake


def test_ensure_registers_once_and_reuses() -> None:
    fake = _fake_with_base()
    plan = compile_batch(resolved_of("train", shared_memory=1024), "ec2")
    first = ensure_job_definition(fake, "trainer", plan)
    assert first.registered and first.derived and first.revision == 1
    assert first.job_definition == f"arn:aws:batch:us-east-1:123456789012:job-definition/{first.name}:1"
    registered = [c for c in fake.calls if c[0] == "register"]
    assert len(registered) == 1
    assert registered[0][1]["containerProperties"]["image"] == "trainer:2.0"  # derived from the latest ACTIVE revision
    fake.calls.clear()
    second = ensure_job_definition(fake, "trainer", plan)
    assert not second.registered and second.job_definition == first.job_definition
    assert [c[0] for c in fake.calls] == ["describe", "describe", "describe"]  # base (2 pages), then the derived name
    assert len([d for d in fake.definitions if d["jobDefinitionName"] == first.name]) == 1


def test_ensure_with_a_new_spec_registers_another_definition() -> None:
    fake = _fake_with_base()
    one = ensure_job_definition(fake, "trainer", compile_batch(resolved_of("train", shared_memory=1024), "ec2"))
    two = ensure_job_definition(fake, "trainer", compile_batch(resolved_of("train", shared_memory=2048), "ec2"))
    assert one.name != two.name and one.registered and two.registered


def test_ensure_needs_no_call_without_job_definition_fields() -> None:
    fake = FakeBatch()
    ref = ensure_job_definition(fake, "trainer", compile_batch(resolved_of("train", cpu=4000), "ec2"))
    assert ref.job_definition == "trainer" and not ref.derived and not ref.registered
    assert fake.calls == []


def test_ensure_reregisters_when_the_existing_revision_is_inactive() -> None:
    fake = _fake_with_base()
    plan = compile_batch(resolved_of("train", shared_memory=1024), "ec2")
    first = ensure_job_definition(fake, "trainer", plan)
    next(d for d in fake.definitions if d["jobDefinitionArn"] == first.job_definition)["status"] = "INACTIVE"
    second = ensure_job_definition(fake, "trainer", plan)
    assert second.registered and second.revision == 2


def test_describe_base_by_revision_and_missing() -> None:
    fake = _fake_with_base()
    assert describe_base(fake, "trainer:1")["revision"] == 1
    assert describe_base(fake, "trainer")["revision"] == 2
    with pytest.raises(AllotmentError) as caught:
        describe_base(fake, "nope", step="train")
    assert str(caught.value) == (
        "step 'train': job_definition='nope' names no ACTIVE job definition; register the base job definition first, "
        "or name an existing one with @batch(job_definition=...)"
    )
