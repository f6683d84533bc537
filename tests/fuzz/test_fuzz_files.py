"""Fuzz: policy and cluster-profile files, as bytes written to a temporary file and loaded the
way ``--policy``/``--profile`` load them. Whatever the bytes, loading gives a Policy (that then
checks resolutions with AllotmentErrors only) or a Profile, or one AllotmentError naming the file."""

from __future__ import annotations

from typing import Any

from allotment import AllotmentError
from allotment.decorators import Layer, StepSpec
from allotment.fields import FIELDS
from allotment.model import Resources
from allotment.policy import Policy, load_policy
from allotment.profiles import Profile, get_profile
from allotment.resolve import resolve
from fuzz_support import as_yaml, examples, file_bytes, hostile_values, outcome, policies, profiles, trees, write_file
from hypothesis import given
from hypothesis import strategies as st


def _spec() -> StepSpec:
    return StepSpec("train").add(Layer("resources", Resources(cpu=4, memory="16Gi", gpu=1, gpu_type="H100", disk="10Gi")))


@given(file_bytes(policies))
@examples(200)
def test_policy_files(file: tuple[str, bytes]) -> None:
    path = write_file(*file)
    try:
        policy = outcome(lambda: load_policy(path), [str(path)])
        if isinstance(policy, Policy):
            outcome(lambda: resolve(_spec(), policy=policy), FIELDS)
            policy.memory_cap(runtime=True)
    finally:
        path.unlink()


@given(file_bytes(profiles))
@examples(200)
def test_profile_files(file: tuple[str, bytes]) -> None:
    path = write_file(*file)
    try:
        profile = outcome(lambda: get_profile(str(path)), [str(path), "profile"])
        if isinstance(profile, Profile):
            for gpu_type in [*profile.gpu_types, "H100", "1g.10gb"]:
                outcome(lambda gpu_type=gpu_type: profile.node_selector(gpu_type, step="train"), ["gpu_type"])
    finally:
        path.unlink()


@given(st.one_of(policies, trees, hostile_values))
@examples(200)
def test_policy_from_mapping_with_python_values(data: Any) -> None:
    """What a caller (a face, a test) may hand over directly: any Python values, huge ints included."""
    outcome(lambda: Policy.from_mapping(data, origin="p.yaml"), ["p.yaml"])
    outcome(lambda: Profile.from_mapping(data, origin="c.yaml"), ["c.yaml"])


def test_the_fuzzer_reaches_real_policies() -> None:
    """The structured strategy is no noise generator: a written policy loads, and binds."""
    path = write_file(".yaml", as_yaml({"caps": {"memory": "8Gi"}, "gpu_types": ["H100"]}))
    policy = load_policy(path)
    assert policy.caps.memory == 8192
    try:
        resolve(_spec(), policy=policy)
    except AllotmentError as e:
        assert "exceeds the cap memory <= 8Gi" in str(e)
    else:  # pragma: no cover - the spec asks for 16Gi
        raise AssertionError("a cap did not bind")
