"""Policy (docs/design.md §6): caps, allowed GPU types, runtime rules; YAML and TOML files."""

from __future__ import annotations

from pathlib import Path

import pytest
from allotment import AllotmentError, Resources
from allotment.decorators import Layer, StepSpec
from allotment.policy import Policy, load_policy
from allotment.resolve import resolve
from allotment.withspec import parse_withs

YAML = """\
caps:
  cpu: 32
  memory: 256Gi
  gpu: 8
  disk: 100Gi
  shared_memory: 64Gi
gpu_types: [H100, L4]
runtime:
  with: true
  set: true
  caps:
    memory: 128Gi
    cpu: 16
"""

TOML = """\
gpu_types = ["H100", "L4"]

[caps]
cpu = 32
memory = "256Gi"
gpu = 8
disk = "100Gi"
shared_memory = "64Gi"

[runtime]
with = true
set = true

[runtime.caps]
memory = "128Gi"
cpu = 16
"""


@pytest.fixture(params=["yaml", "toml", "yml"])
def policy_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"team-policy.{request.param}"
    path.write_text(TOML if request.param == "toml" else YAML)
    return path


def spec(**layers: Resources) -> StepSpec:
    out = StepSpec("train")
    for decorator, res in layers.items():
        out = out.add(Layer(decorator, res))
    return out


def test_yaml_and_toml_load_the_same_policy(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    assert policy.origin == str(policy_file)
    assert policy.caps == Resources(cpu=32, memory=256 * 1024, gpu=8, disk=100 * 1024, shared_memory=64 * 1024)
    assert policy.gpu_types == ("H100", "L4")
    assert (policy.allow_with, policy.allow_set) == (True, True)
    assert policy.runtime_caps == Resources(cpu=16, memory=128 * 1024)


def test_cap_error_names_the_cap_the_policy_file_and_the_source(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    with pytest.raises(AllotmentError) as info:
        resolve(spec(resources=Resources(memory="300Gi")), policy=policy)
    assert str(info.value) == (
        f"step 'train': memory='300Gi' from @resources exceeds the cap memory <= 256Gi (caps in policy {policy_file}); "
        "ask for at most 256Gi, or have the policy changed"
    )
    assert info.value.source == "@resources"


@pytest.mark.parametrize(
    ("field", "value", "cap"),
    [("cpu", 33, "32"), ("gpu", 9, "8"), ("disk", "101Gi", "100Gi"), ("shared_memory", "65Gi", "64Gi")],
)
def test_every_cap(policy_file: Path, field: str, value: object, cap: str) -> None:
    policy = load_policy(policy_file)
    layer = Resources(**{field: value}, memory="200Gi")
    with pytest.raises(
        AllotmentError, match=rf"^step 'train': {field}=.* from @kubernetes exceeds the cap {field} <= {cap} \(caps in policy "
    ):
        resolve(spec(kubernetes=layer), policy=policy)


def test_values_at_the_cap_pass(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    resolved = resolve(spec(resources=Resources(cpu=32, memory="256Gi", gpu=8, gpu_type="H100")), policy=policy)
    assert (resolved.value("cpu"), resolved.value("memory"), resolved.value("gpu")) == (32000, 262144, 8)


def test_runtime_caps_apply_to_with_values(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    with pytest.raises(AllotmentError) as info:
        resolve(spec(resources=Resources(memory="8Gi")), withs=parse_withs("memory=200Gi"), policy=policy)
    assert str(info.value) == (
        f"step 'train': memory='200Gi' from with --with 'memory=200Gi' exceeds the cap memory <= 128Gi "
        f"(runtime.caps in policy {policy_file}); ask for at most 128Gi, or have the policy changed"
    )


def test_runtime_caps_apply_to_set_values(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    with pytest.raises(AllotmentError, match=r"cpu='20' from set --set 'cpu=20' exceeds the cap cpu <= 16 \(runtime.caps in policy"):
        resolve(spec(), sets=parse_withs("cpu=20", "--set", kind="set"), policy=policy)


def test_runtime_caps_do_not_apply_to_decorator_values(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    resolved = resolve(spec(resources=Resources(memory="200Gi", cpu=20)), withs=parse_withs("memory=100Gi,cpu=2"), policy=policy)
    assert resolved.value("memory") == 200 * 1024
    assert resolved.value("cpu") == 20000
    assert str(resolved.winners["memory"].source) == "@resources"


def test_runtime_with_under_its_cap_passes(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    assert resolve(spec(), withs=parse_withs("memory=128Gi"), policy=policy).value("memory") == 128 * 1024


def test_runtime_with_disallowed(tmp_path: Path) -> None:
    path = tmp_path / "strict.toml"
    path.write_text("[runtime]\nwith = false\n")
    policy = load_policy(path)
    with pytest.raises(AllotmentError) as info:
        resolve(spec(), withs=parse_withs("kubernetes:memory=65536", "env ALLOTMENT_WITH"), backend="kubernetes", policy=policy)
    assert str(info.value) == (
        f"step 'train': from with env ALLOTMENT_WITH 'kubernetes:memory=65536' is a runtime 'with', which policy {path} does not allow; "
        "set runtime.with: true in the policy to allow it"
    )
    # choosing only the backend, or a spec for another backend, is not a runtime value
    assert resolve(spec(), withs=parse_withs("kubernetes;batch:cpu=4"), backend="kubernetes", policy=policy).value("cpu") == 1000


def test_runtime_set_disallowed_by_default_in_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text("caps: {memory: 64Gi}\n")
    policy = load_policy(path)
    assert (policy.allow_with, policy.allow_set) == (True, False)
    with pytest.raises(AllotmentError, match=rf"is a runtime 'set', which policy {path} does not allow; set runtime.set: true"):
        resolve(spec(), sets=parse_withs("memory=1Gi", "--set", kind="set"), policy=policy)


def test_without_a_policy_with_and_set_are_allowed() -> None:
    resolved = resolve(spec(), withs=parse_withs("cpu=100"), sets=parse_withs("memory=10Ti", "--set", kind="set"))
    assert (resolved.value("cpu"), resolved.value("memory")) == (100000, 10 * 1024 * 1024)


def test_gpu_types_allow_list(policy_file: Path) -> None:
    policy = load_policy(policy_file)
    assert resolve(spec(resources=Resources(gpu=1, gpu_type="L4")), policy=policy).value("gpu_type") == "L4"
    with pytest.raises(AllotmentError) as info:
        resolve(spec(kubernetes=Resources(gpu=1, gpu_type="A100")), policy=policy)
    assert (
        str(info.value)
        == f"step 'train': gpu_type='A100' from @kubernetes is not allowed by policy {policy_file}; allowed GPU types are H100, L4"
    )


def test_empty_gpu_types_allows_none(tmp_path: Path) -> None:
    policy = Policy.from_mapping({"gpu_types": []}, origin="no-gpus.yaml")
    with pytest.raises(AllotmentError, match=r"allowed GPU types are \(none\)"):
        resolve(spec(resources=Resources(gpu=1, gpu_type="L4")), policy=policy)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cap": {}}, "from policy p.yaml has unknown key 'cap'; keys are caps, gpu_types, runtime"),
        ({"caps": {"ram": 1}}, "from policy p.yaml caps has unknown field 'ram'; caps take cpu, memory, gpu, disk, shared_memory"),
        (
            {"caps": {"gpu_type": "H100"}},
            "from policy p.yaml caps has unknown field 'gpu_type'; caps take cpu, memory, gpu, disk, shared_memory",
        ),
        (
            {"caps": [1]},
            "from policy p.yaml caps is not a mapping; use e.g. {memory: 128Gi} with fields cpu, memory, gpu, disk, shared_memory",
        ),
        (
            {"caps": {"memory": "16gb"}},
            "memory='16gb' from policy p.yaml caps is not a quantity; use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'",
        ),
        ({"runtime": {"with": "yes"}}, "from policy p.yaml runtime.with is 'yes'; use true or false"),
        ({"runtime": {"allow": True}}, "from policy p.yaml has a bad 'runtime' section; runtime takes 'with', 'set' and 'caps'"),
        ({"runtime": {"caps": {"image": "x"}}}, "from policy p.yaml runtime.caps has unknown field 'image'; caps take cpu, memory"),
        ({"gpu_types": "H100"}, "from policy p.yaml gpu_types is not a list of names; use e.g. [H100, L4]"),
    ],
)
def test_bad_policies(data: dict[str, object], message: str) -> None:
    with pytest.raises(AllotmentError) as info:
        Policy.from_mapping(data, origin="p.yaml")
    assert str(info.value).startswith(message)


def test_unknown_key_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[caps]\nmemory = "1Gi"\n[limits]\ncpu = 1\n')
    with pytest.raises(AllotmentError, match=rf"^from policy {path} has unknown key 'limits'; keys are caps, gpu_types, runtime$"):
        load_policy(path)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.yaml", "caps: [\n", "is not valid YAML"),
        ("bad.toml", "caps = [\n", "is not valid TOML"),
        ("list.yaml", "- 1\n", "does not hold a mapping at the top level"),
        ("policy.ini", "[caps]\n", "has an unknown format; use a .yaml, .yml, .toml or .json file"),
    ],
)
def test_unreadable_policy_files(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(AllotmentError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"from policy file {str(path)!r} {problem}")


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(AllotmentError, match=r"from policy file '.*missing.yaml' cannot be read: No such file or directory"):
        load_policy(tmp_path / "missing.yaml")


def test_empty_policy_file_is_no_policy_rules(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    policy = load_policy(path)
    assert policy.caps == Resources() and policy.gpu_types is None and policy.allow_with and not policy.allow_set
