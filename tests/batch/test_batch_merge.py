"""allotment.batch_merge: the user's own Batch overrides kept, defaults yielding, conflicts named,
and the AwsBatchExecutor's executor_config complete and valid for SubmitJob (engine-free)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from allotment import AllotmentError
from allotment.airflow.executors import executor_config
from allotment.batch import compile_batch, merge_container_overrides, merge_eks_properties_override, merge_submit_overrides
from allotment.model import Resources
from allotment.resolve import resolve
from allotment.sources import Source
from batch_support import resolved_of, validation_errors
from hypothesis import given, settings
from hypothesis import strategies as st

USER = "the operator's own container_overrides"


def _spec(**fields: Any) -> Any:
    """Resolved with @resources ``fields`` (held units); cpu/memory not given come from the seed defaults."""
    return resolve(None, step="train", backend="batch", extra=[(Resources.normalized(**fields), Source("@resources"))])


def _requirements(resolved: Any, user: Any = None, **kwargs: Any) -> list[dict[str, str]]:
    ours = compile_batch(resolved, warn=False).submit_overrides["containerOverrides"]
    return merge_container_overrides(ours, user, resolved, user_source=USER, **kwargs)["resourceRequirements"]


def test_users_other_members_are_kept_and_entries_joined() -> None:
    user = {"command": ["run"], "environment": [{"name": "A", "value": "1"}], "resourceRequirements": [{"type": "GPU", "value": "2"}]}
    resolved = _spec(cpu=4000, memory=16384, gpu=2)
    ours = compile_batch(resolved).submit_overrides["containerOverrides"]
    merged = merge_container_overrides(ours, user, resolved, user_source=USER)
    assert merged == {
        "command": ["run"],
        "environment": [{"name": "A", "value": "1"}],
        "resourceRequirements": [
            {"type": "VCPU", "value": "4"},
            {"type": "MEMORY", "value": "16384"},
            {"type": "GPU", "value": "2"},
        ],
    }
    assert user["resourceRequirements"] == [{"type": "GPU", "value": "2"}]  # not changed in place


def test_the_same_value_written_differently_is_no_conflict() -> None:
    user = {"resourceRequirements": [{"type": "VCPU", "value": "4.0"}]}
    assert _requirements(_spec(cpu=4000), user)[0] == {"type": "VCPU", "value": "4.0"}


def test_defaults_yield_and_explicit_values_conflict() -> None:
    user = {"resourceRequirements": [{"type": "MEMORY", "value": "1024"}], "vcpus": 3}
    assert _requirements(_spec(gpu=1), user) == [{"type": "MEMORY", "value": "1024"}, {"type": "GPU", "value": "1"}]
    with pytest.raises(AllotmentError) as caught:
        _requirements(_spec(memory=2048), user)
    assert str(caught.value) == (
        "step 'train': containerOverrides.resourceRequirements MEMORY '1024' from the operator's own container_overrides "
        "conflicts with MEMORY '2048' from allotment's spec (memory 2Gi from @resources); give this resource in one place only "
        "(allotment's resources, or your own resourceRequirements)"
    )
    with pytest.raises(AllotmentError, match=r"containerOverrides.vcpus 3 from .* conflicts with VCPU '4'"):
        _requirements(_spec(cpu=4000), user)


def test_base_list_completes_and_stands_for_defaults() -> None:
    base = {"resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "2048"}, {"type": "GPU", "value": "1"}]}
    assert _requirements(_spec(memory=8192), None, base=base) == [
        {"type": "VCPU", "value": "2"},  # cpu is only the seed default: the executor's own stands
        {"type": "MEMORY", "value": "8192"},
        {"type": "GPU", "value": "1"},  # no gpu in the spec: the configured one is kept (lists are replaced)
    ]
    assert [e["type"] for e in _requirements(_spec(gpu=0), None, base=base)] == ["VCPU", "MEMORY"]  # gpu=0 said so
    user = {"resourceRequirements": [{"type": "VCPU", "value": "16"}]}
    assert _requirements(_spec(memory=8192), user, base=base)[0] == {"type": "VCPU", "value": "16"}  # the user's beat the base's


@pytest.mark.parametrize(
    ("user", "words"),
    [
        ({"resourceRequirements": "VCPU=4"}, ["is a str, not a list"]),
        ({"resourceRequirements": [{"type": "VCPU"}]}, ["has the entry {'type': 'VCPU'}, which is no"]),
        ("nope", ["containerOverrides from the operator's own container_overrides is a str, not a mapping"]),
    ],
)
def test_malformed_user_overrides(user: Any, words: list[str]) -> None:
    with pytest.raises(AllotmentError) as caught:
        _requirements(_spec(cpu=1000), user)
    for word in words:
        assert word in str(caught.value)


def test_eks_override_merges_into_the_named_or_first_container() -> None:
    resolved = resolved_of(cpu=2000, memory=4096, gpu=1, options={"platform": "eks"})
    plan = compile_batch(resolved, container="main")
    user = {"podProperties": {"metadata": {"labels": {"a": "b"}}, "containers": [{"name": "side"}, {"name": "main", "env": []}]}}
    merged = merge_eks_properties_override(plan.submit_overrides["eksPropertiesOverride"], user, resolved, user_source=USER)
    assert merged["podProperties"]["metadata"] == {"labels": {"a": "b"}}
    side, main = merged["podProperties"]["containers"]
    assert side == {"name": "side"} and main["env"] == []
    assert main["resources"] == {
        "requests": {"cpu": "2", "memory": "4096Mi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "4096Mi", "nvidia.com/gpu": "1"},
    }
    clash = {"podProperties": {"containers": [{"name": "main", "resources": {"limits": {"memory": "1Gi"}}}]}}
    with pytest.raises(AllotmentError, match=r"limits.memory='1Gi' from the operator's own .* conflicts with limits.memory='4096Mi'"):
        merge_eks_properties_override(plan.submit_overrides["eksPropertiesOverride"], clash, resolved, user_source=USER)
    unnamed = compile_batch(resolved)
    (first,) = merge_submit_overrides(unnamed, resolved, eks_properties_override=None, user_source=USER)["eksPropertiesOverride"][
        "podProperties"
    ]["containers"]
    assert "name" not in first


def test_the_other_platforms_member_passes_through() -> None:
    resolved = _spec(cpu=1000)
    plan = compile_batch(resolved)
    eks = {"podProperties": {"containers": [{"name": "x"}]}}
    out = merge_submit_overrides(plan, resolved, eks_properties_override=eks, user_source=USER)
    assert out["eksPropertiesOverride"] == eks and out["containerOverrides"]["resourceRequirements"][0]["value"] == "1"


@pytest.mark.parametrize(
    ("fields", "options", "config", "words"),
    [
        ({"shared_memory": 512}, None, None, ["needs a job-definition revision (containerProperties.linuxParameters.sharedMemorySize)"]),
        ({"disk": 40960}, {"platform": "fargate"}, None, ["(containerProperties.ephemeralStorage.sizeInGiB)", "BatchOperator"]),
        ({"cpu": 1000}, {"platform": "eks"}, None, ["which submits no EKS jobs", "platform='eks' from @batch(platform=...)"]),
        ({"cpu": 1000}, None, {"share_identifier": "x"}, ["has the key 'share_identifier'", "'shareIdentifier'"]),
    ],
)
def test_executor_config_errors(fields: dict[str, Any], options: Any, config: Any, words: list[str]) -> None:
    resolved = resolved_of(options=options, **fields)
    with pytest.raises(AllotmentError) as caught:
        executor_config(compile_batch(resolved, warn=False), resolved, config)
    for word in words:
        assert word in str(caught.value)


def _merge_dicts(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """airflow.utils.helpers.merge_dicts, as the AwsBatchExecutor applies it (lists replaced)."""
    out = copy.deepcopy(left)
    for key, value in right.items():
        out[key] = _merge_dicts(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@settings(max_examples=300, deadline=None)
@given(
    cpu=st.none() | st.integers(1, 64_000),
    memory=st.none() | st.integers(1, 500_000),
    gpu=st.none() | st.integers(0, 8),
    platform=st.sampled_from([None, "fargate"]),
    base_memory=st.none() | st.integers(4, 100_000),
)
def test_executor_config_merged_into_a_base_is_a_valid_submit_job(
    cpu: int | None, memory: int | None, gpu: int | None, platform: str | None, base_memory: int | None
) -> None:
    if platform == "fargate":
        gpu, cpu, memory = None, min(cpu or 1000, 16_000), min(memory or 4096, 120_000)
    fields = {k: v for k, v in {"cpu": cpu, "memory": memory, "gpu": gpu}.items() if v is not None}
    resolved = resolved_of(options={"platform": platform} if platform else None, **fields)
    base: dict[str, Any] = {"jobName": "w", "jobQueue": "q", "jobDefinition": "d", "containerOverrides": {"command": []}}
    if base_memory is not None:
        base["containerOverrides"]["resourceRequirements"] = [{"type": "MEMORY", "value": str(base_memory)}, {"type": "GPU", "value": "1"}]
    config = executor_config(compile_batch(resolved, warn=False), resolved, {"containerOverrides": {"environment": []}}, base=base)
    merged = _merge_dicts(base, config)
    merged["containerOverrides"]["command"] = ["airflow", "tasks", "run"]
    assert validation_errors("SubmitJob", merged) == ""
    types = [e["type"] for e in merged["containerOverrides"]["resourceRequirements"]]
    assert types[:2] == ["VCPU", "MEMORY"] and len(types) == len(set(types))
