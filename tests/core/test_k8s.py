"""The Kubernetes compiler (docs/design.md §3–4): exact outputs, merging with what the user gave,
determinism, and >= 2,000 generated specs that pass kubernetes-validate in strict mode."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import kubernetes_validate.utils
import pytest
from allotment import AllotmentError, kubernetes, resources, spec_of
from allotment.fields import GPU_VENDORS, MIG_PROFILE
from allotment.kubernetes import PodParts, compile_pod, fit, merge
from allotment.output import dump
from allotment.profiles import BUILTIN_PROFILES, Profile, get_profile
from allotment.quantity import parse_quantity
from allotment.resolve import Resolved, resolve
from allotment.targets import gpu_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from k8s_rules import pod_problems

MIB = 2**20
K8S_VERSION = kubernetes_validate.utils.latest_version()
TOLERATION = {"operator": "Exists", "effect": "NoSchedule"}


def kubernetes_parts(resolved: Resolved, profile: Profile | None = None) -> dict[str, Any]:
    """The compiled parts as plain data (what every face turns into engine objects)."""
    return compile_pod(resolved, profile).to_dict()


def merge_parts(ours: dict[str, Any], user: dict[str, Any], *, step: str, user_source: str) -> dict[str, Any]:
    """The core's merge on plain parts."""
    return merge(PodParts.from_dict(ours), PodParts.from_dict(user), step=step, user_source=user_source).to_dict()


def compile_step(profile: str | Profile | None = None, **decorator: Any) -> dict[str, Any]:
    def step() -> None: ...

    kubernetes(**decorator)(step)
    chosen = profile if isinstance(profile, Profile) else get_profile(profile)
    return kubernetes_parts(resolve(spec_of(step)), chosen)


# -- exact outputs --------------------------------------------------------------------------------


def test_cpu_and_memory_burstable() -> None:
    assert compile_step(cpu=0.5, memory=16384) == {
        "resources": {"requests": {"cpu": "500m", "memory": "16Gi"}, "limits": {"memory": "16Gi"}}
    }


def test_qos_guaranteed_adds_cpu_limit_and_mi_when_not_whole_gib() -> None:
    assert compile_step(cpu=4, memory=1500, qos="guaranteed") == {
        "resources": {"requests": {"cpu": "4", "memory": "1500Mi"}, "limits": {"cpu": "4", "memory": "1500Mi"}}
    }


def test_defaults_compile() -> None:
    assert compile_step() == {"resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}}


def test_issue_example() -> None:
    @resources(cpu=4, memory="16Gi", gpu=1, shared_memory=8192)
    @kubernetes(cpu=2, memory=32768, qos="guaranteed")
    def train() -> None: ...

    assert kubernetes_parts(resolve(spec_of(train))) == {
        "resources": {
            "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
        },
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


@pytest.mark.parametrize(
    ("vendor", "key"),
    [
        (None, "nvidia.com/gpu"),
        ("nvidia", "nvidia.com/gpu"),
        ("amd", "amd.com/gpu"),
        ("intel", "gpu.intel.com/i915"),
        ("habana", "habana.ai/gaudi"),
        ("neuron", "aws.amazon.com/neuron"),
        ("example.com/fpga", "example.com/fpga"),
    ],
)
def test_gpu_vendor_keys(vendor: str | None, key: str) -> None:
    extra = {"gpu_vendor": vendor} if vendor else {}
    assert compile_step(gpu=2, memory=2048, **extra) == {
        "resources": {"requests": {"cpu": "1", "memory": "2Gi", key: "2"}, "limits": {"memory": "2Gi", key: "2"}},
        "tolerations": [{"key": key, **TOLERATION}],
    }
    assert gpu_key(vendor, None) == key


def test_mig_key_without_node_selector() -> None:
    assert compile_step(gpu=1, gpu_type="1g.10gb", memory=1024) == {
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/mig-1g.10gb": "1"},
            "limits": {"memory": "1Gi", "nvidia.com/mig-1g.10gb": "1"},
        },
        "tolerations": [{"key": "nvidia.com/mig-1g.10gb", **TOLERATION}],
    }
    assert gpu_key("nvidia", "3g.40gb") == "nvidia.com/mig-3g.40gb"


def test_gpu_zero_gives_no_key_and_no_toleration() -> None:
    assert compile_step(gpu=0, memory=1024) == {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}


@pytest.mark.parametrize(
    ("profile", "gpu_type", "selector"),
    [
        (None, "H100", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}),
        ("nvidia-gfd", "A100-80GB", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}),
        ("nvidia-gfd", "L4", {"nvidia.com/gpu.product": "NVIDIA-L4"}),
        ("gke", "H100", {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}),
        ("gke", "L4", {"cloud.google.com/gke-accelerator": "nvidia-l4"}),
        ("eks-karpenter", "H100", {"karpenter.k8s.aws/instance-gpu-name": "h100"}),
        (
            "eks-karpenter",
            "A100-80GB",
            {"karpenter.k8s.aws/instance-gpu-name": "a100", "karpenter.k8s.aws/instance-gpu-memory": "81920"},
        ),
    ],
)
def test_gpu_type_node_selectors(profile: str | None, gpu_type: str, selector: dict[str, str]) -> None:
    parts = compile_step(profile, gpu=1, gpu_type=gpu_type, memory=4096)
    assert parts["nodeSelector"] == selector
    assert parts["tolerations"] == [{"key": "nvidia.com/gpu", **TOLERATION}]
    assert parts["resources"]["limits"]["nvidia.com/gpu"] == "1"


PROFILE_YAML = """\
name: on-prem
label: example.com/gpu
gpu_types:
  H100: h100-sxm
  L4: l4
"""
PROFILE_TOML = """\
name = "on-prem"

[gpu_types.H100]
"example.com/gpu" = "h100-sxm"

[gpu_types.L4]
"example.com/gpu" = "l4"
"""


@pytest.mark.parametrize(("suffix", "text"), [("yaml", PROFILE_YAML), ("toml", PROFILE_TOML)])
def test_user_profile_file(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"cluster.{suffix}"
    path.write_text(text)
    profile = get_profile(str(path))
    assert profile.name == "on-prem"
    assert compile_step(profile, gpu=1, gpu_type="H100")["nodeSelector"] == {"example.com/gpu": "h100-sxm"}
    assert compile_step(profile, gpu=1, gpu_type="L4")["nodeSelector"] == {"example.com/gpu": "l4"}
    with pytest.raises(AllotmentError) as info:
        compile_step(profile, gpu=1, gpu_type="A100")
    assert str(info.value) == (
        "step 'step': gpu_type='A100' from @kubernetes is not known to cluster profile 'on-prem'; "
        "known GPU types are H100, L4, or a MIG profile such as '1g.10gb'"
    )


def test_bad_user_profile(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("name: x\ngpu_types: {H100: h100}\n")
    with pytest.raises(AllotmentError, match=r"gpu_types.H100 is 'h100'; give a label value \(with a top-level 'label'\)"):
        get_profile(str(path))
    path.write_text("labels: x\n")
    with pytest.raises(AllotmentError, match="has unknown key 'labels'; keys are name, label, gpu_types"):
        get_profile(str(path))


def test_unknown_gpu_type_lists_the_known_ones() -> None:
    with pytest.raises(AllotmentError) as info:
        compile_step(gpu=1, gpu_type="H1000")
    assert str(info.value) == (
        "step 'step': gpu_type='H1000' from @kubernetes is not known to cluster profile 'nvidia-gfd'; "
        "known GPU types are A100, A100-80GB, A10G, H100, H200, L4, L40S, T4, V100, or a MIG profile such as '1g.10gb'"
    )
    with pytest.raises(AllotmentError, match=r"not known to cluster profile 'gke'; known GPU types are A100, A100-80GB, H100, H100-MEGA"):
        compile_step("gke", gpu=1, gpu_type="A10G")


def test_unknown_profile_name() -> None:
    with pytest.raises(AllotmentError, match=r"^profile='aks' is not a cluster profile; use one of nvidia-gfd, gke, eks-karpenter"):
        get_profile("aks")


def test_ephemeral_storage_and_dshm() -> None:
    assert compile_step(disk="20Gi", shared_memory=1536, memory=2048) == {
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "20Gi"},
            "limits": {"memory": "2Gi", "ephemeral-storage": "20Gi"},
        },
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1536Mi"}}],
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }


def test_decorator_selectors_and_tolerations_are_kept_and_merged() -> None:
    parts = compile_step(
        gpu=1,
        gpu_type="L4",
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    )
    assert parts["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-L4"}
    assert parts["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", **TOLERATION},
    ]


def test_decorator_selector_conflicting_with_gpu_type_is_an_error() -> None:
    with pytest.raises(AllotmentError) as info:
        compile_step(gpu=1, gpu_type="L4", node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    assert str(info.value) == (
        "step 'step': node selector nvidia.com/gpu.product='NVIDIA-H100-80GB-HBM3' from @kubernetes conflicts with "
        "nvidia.com/gpu.product='NVIDIA-L4' that allotment derives from gpu_type; "
        "drop the label from your node selector, or change gpu_type"
    )


# -- merge_parts ------------------------------------------------------------------------------------

OURS = compile_step(gpu=1, gpu_type="H100", shared_memory=1024, memory=2048)


def test_merge_keeps_user_volumes_mounts_selectors_and_tolerations() -> None:
    user = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "nodeSelector": {"team": "ml"},
        "tolerations": [{"key": "spot", "operator": "Exists"}],
        "resources": {"requests": {"example.com/nic": "1"}, "limits": {"example.com/nic": "1"}},
    }
    merged = merge_parts(OURS, user, step="train", user_source="KubernetesPodOperator")
    assert merged == {
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi", "example.com/nic": "1", "nvidia.com/gpu": "1"},
            "limits": {"memory": "2Gi", "example.com/nic": "1", "nvidia.com/gpu": "1"},
        },
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        ],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "dshm", "mountPath": "/dev/shm"}],
        "nodeSelector": {"team": "ml", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "spot", "operator": "Exists"}, {"key": "nvidia.com/gpu", **TOLERATION}],
    }


def test_merge_is_idempotent_and_keeps_equal_entries_once() -> None:
    merged = merge_parts(OURS, OURS, step="train", user_source="the pod")
    assert merged == OURS
    assert merge_parts(OURS, {}, step="train", user_source="the pod") == OURS


def test_merge_treats_equal_quantities_as_equal() -> None:
    user = {"resources": {"requests": {"memory": "2048Mi", "cpu": "1000m"}, "limits": {"memory": "2Gi"}}}
    merged = merge_parts(OURS, user, step="train", user_source="the pod")
    assert merged["resources"]["requests"]["memory"] == "2Gi"
    assert merged["resources"]["requests"]["cpu"] == "1"


def test_user_dev_shm_mount_with_shared_memory_is_an_error() -> None:
    user = {"volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}], "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}
    with pytest.raises(AllotmentError) as info:
        merge_parts(OURS, user, step="train", user_source="KubernetesPodOperator")
    assert str(info.value) == (
        "step 'train': volume mount 'shm' at '/dev/shm' from KubernetesPodOperator clashes with the 'dshm' mount at '/dev/shm' "
        "that shared_memory adds; drop your /dev/shm mount (shared_memory sizes it), or drop shared_memory"
    )


def test_user_volume_named_dshm_is_an_error() -> None:
    with pytest.raises(
        AllotmentError, match=r"^step 'train': volume 'dshm' from the pod clashes with the volume allotment adds for shared_memory"
    ):
        merge_parts(OURS, {"volumes": [{"name": "dshm", "emptyDir": {}}]}, step="train", user_source="the pod")


def test_user_dev_shm_mount_without_shared_memory_is_kept() -> None:
    ours = compile_step(memory=1024)
    user = {"volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}], "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}
    merged = merge_parts(ours, user, step="train", user_source="the pod")
    assert merged["volumeMounts"] == [{"name": "shm", "mountPath": "/dev/shm"}]


def test_conflicting_selector_label_is_an_error() -> None:
    with pytest.raises(
        AllotmentError, match=r"node selector nvidia.com/gpu.product='NVIDIA-L4' from the pod conflicts with nvidia.com/gpu.product="
    ):
        merge_parts(OURS, {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"}}, step="train", user_source="the pod")


def test_conflicting_resource_value_is_an_error() -> None:
    user = {"resources": {"limits": {"memory": "3Gi"}}}
    with pytest.raises(AllotmentError) as info:
        merge_parts(OURS, user, step="train", user_source="container_resources")
    assert str(info.value) == (
        "step 'train': limits.memory='3Gi' from container_resources conflicts with limits.memory='2Gi' from allotment's spec; "
        "give this resource in one place only (allotment's spec, or the container's own resources)"
    )


# -- determinism --------------------------------------------------------------------------------------


def test_same_input_gives_byte_identical_yaml() -> None:
    def build(selector: dict[str, str]) -> str:
        def train() -> None: ...

        resources(cpu=4, memory="16Gi", gpu=2, gpu_type="H100", disk=1000, shared_memory=8192)(train)
        kubernetes(qos="guaranteed", node_selector=selector, tolerations=[{"key": "a", "operator": "Exists"}])(train)
        return dump([kubernetes_parts(resolve(spec_of(train)))])

    first = build({"b": "2", "a": "1"})
    assert first == build({"a": "1", "b": "2"})
    assert first == build({"b": "2", "a": "1"})
    assert first.startswith("resources:\n  requests:\n    cpu: '4'\n    memory: 16Gi\n")


def test_byte_identical_across_processes_and_hash_seeds() -> None:
    flow = Path(__file__).resolve().parents[1] / "data" / "flows" / "train.py"
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-m", "allotment", "render", str(flow), "--target", "kubernetes", "--with", "memory=9000"],
            capture_output=True,
            check=True,
            env=env,
        )
        outputs.add(out.stdout)
    assert len(outputs) == 1
    assert b"nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3" in outputs.pop()


# -- every generated spec passes kubernetes-validate (strict) and the rules it cannot check --------


@functools.cache
def _cached_schema(filename: str, version: str) -> Any:
    return _ORIGINAL_SCHEMA_CONTENTS(filename, version)


_ORIGINAL_SCHEMA_CONTENTS = kubernetes_validate.utils.schema_contents


def validate_pod(manifest: dict[str, Any]) -> str:
    # kubernetes-validate reads and parses the schema files on every call; reading them once keeps
    # 2,000 validations fast. The validation itself is untouched.
    with mock.patch.object(kubernetes_validate.utils, "schema_contents", _cached_schema):
        return kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def pod(parts: Mapping[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "python:3.12",
        "command": ["python", "-c", "pass"],
        "resources": parts["resources"],
    }
    if "volumeMounts" in parts:
        container["volumeMounts"] = parts["volumeMounts"]
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    for key in ("volumes", "nodeSelector", "tolerations"):
        if key in parts:
            spec[key] = parts[key]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "step", "namespace": "default"}, "spec": spec}


def test_validator_is_strict_and_current() -> None:
    assert K8S_VERSION.startswith("1.3")
    assert validate_pod(pod(compile_step())) == kubernetes_validate.utils.major_minor(K8S_VERSION)
    broken = pod(compile_step())
    broken["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="Additional properties are not allowed"):
        validate_pod(broken)
    wrong_type = pod(compile_step())
    wrong_type["spec"]["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": ["1Gi"]}}]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_pod(wrong_type)


def test_pod_problems_finds_what_the_schema_cannot() -> None:
    bad = pod(compile_step(gpu=1, shared_memory=1024, memory=2048))
    resources_ = bad["spec"]["containers"][0]["resources"]
    resources_["limits"]["nvidia.com/gpu"] = "2"
    resources_["limits"]["memory"] = "3Gi"
    bad["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] = "4Gi"
    validate_pod(bad)  # the schema is content
    assert pod_problems(bad) == [
        "container main: memory requests (2Gi) != limits (3Gi)",
        "container main: nvidia.com/gpu requests (1) != limits (2)",
        "container main: dshm sizeLimit 4Gi > memory limit 3Gi",
    ]


MIG = ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"]
label_names = st.sampled_from(["pool", "team", "example.com/zone", "node.kubernetes.io/instance-type"])
label_values = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
tolerations_st = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"key": label_names, "operator": st.just("Exists")}, optional={"effect": st.sampled_from(["NoSchedule", "PreferNoSchedule"])}
        ),
        st.fixed_dictionaries(
            {"key": label_names, "operator": st.just("Equal"), "value": label_values, "effect": st.just("NoExecute")},
            optional={"tolerationSeconds": st.integers(0, 3600)},
        ),
    ),
    max_size=2,
)


@st.composite
def kubernetes_specs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(@resources kwargs, @kubernetes kwargs, profile) in the forms users write."""
    profile = draw(st.sampled_from(sorted(BUILTIN_PROFILES)))
    fields: dict[str, Any] = {}
    millicores = draw(st.integers(1, 128_000))
    fields["cpu"] = draw(st.sampled_from([f"{millicores}m", millicores / 1000, str(millicores / 1000)]))
    memory = draw(st.integers(4, 2**21))
    forms = [memory, f"{memory}Mi", str(memory)] + ([f"{memory // 1024}Gi"] if memory % 1024 == 0 else [])
    fields["memory"] = draw(st.sampled_from(forms))
    gpu = draw(st.none() | st.integers(0, 8))
    if gpu is not None:
        fields["gpu"] = gpu
    if gpu:
        vendor = draw(st.none() | st.sampled_from([*GPU_VENDORS, "example.com/fpga"]))
        if vendor:
            fields["gpu_vendor"] = vendor
        # The built-in profiles select NVIDIA nodes: a GPU type goes with NVIDIA's key only.
        choices = sorted(BUILTIN_PROFILES[profile].gpu_types) + MIG if vendor in (None, "nvidia") else []
        gpu_type = draw(st.none() | st.sampled_from(choices)) if choices else None
        if gpu_type:
            fields["gpu_type"] = gpu_type
    disk = draw(st.none() | st.integers(1, 2**20))
    if disk is not None:
        fields["disk"] = disk
    shm = draw(st.none() | st.integers(1, memory))
    if shm is not None:
        fields["shared_memory"] = shm
    # Split the fields between @resources and @kubernetes; maxima must still come out right.
    on_kubernetes = draw(st.sets(st.sampled_from(sorted(fields))))
    res = {k: v for k, v in fields.items() if k not in on_kubernetes}
    k8s = {k: v for k, v in fields.items() if k in on_kubernetes}
    if draw(st.booleans()):
        k8s["qos"] = draw(st.sampled_from(["burstable", "guaranteed"]))
    selector = draw(st.dictionaries(label_names, label_values, max_size=2))
    if selector:
        k8s["node_selector"] = selector
    tolerations = draw(tolerations_st)
    if tolerations:
        k8s["tolerations"] = tolerations
    return res, k8s, profile


def q(value: str) -> Decimal:
    return parse_quantity(value)


def check_against_spec(parts: dict[str, Any], resolved: Resolved, profile: str) -> None:
    requests, limits = parts["resources"]["requests"], parts["resources"]["limits"]
    assert q(requests["cpu"]) * 1000 == resolved.value("cpu")
    assert ("cpu" in limits) == (resolved.options.get("qos") == "guaranteed")
    if "cpu" in limits:
        assert limits["cpu"] == requests["cpu"]
    assert q(requests["memory"]) == q(limits["memory"]) == resolved.value("memory") * MIB
    extended = {k: v for k, v in requests.items() if k not in ("cpu", "memory", "ephemeral-storage")}
    assert extended == {k: v for k, v in limits.items() if k not in ("cpu", "memory", "ephemeral-storage")}
    gpu = resolved.value("gpu")
    expected_tolerations = [dict(t) for t in resolved.options.get("tolerations", ())]
    expected_selector = dict(resolved.options.get("node_selector", {}))
    if gpu:
        key = gpu_key(resolved.value("gpu_vendor"), resolved.value("gpu_type"))
        assert extended == {key: str(gpu)}
        if {"key": key, **TOLERATION} not in expected_tolerations:
            expected_tolerations.append({"key": key, **TOLERATION})
        if resolved.value("gpu_type") and not MIG_PROFILE.fullmatch(resolved.value("gpu_type")):
            expected_selector.update(BUILTIN_PROFILES[profile].gpu_types[resolved.value("gpu_type")])
    else:
        assert extended == {}
    assert parts.get("tolerations", []) == expected_tolerations
    assert parts.get("nodeSelector", {}) == expected_selector
    disk = resolved.value("disk")
    assert ("ephemeral-storage" in requests) == (disk is not None)
    if disk is not None:
        assert q(requests["ephemeral-storage"]) == q(limits["ephemeral-storage"]) == disk * MIB
    shm = resolved.value("shared_memory")
    dshm = [v for v in parts.get("volumes", []) if v["name"] == "dshm"]
    if shm is None:
        assert dshm == []
    else:
        assert dshm == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": dshm[0]["emptyDir"]["sizeLimit"]}}]
        size = q(dshm[0]["emptyDir"]["sizeLimit"])
        assert size == shm * MIB
        assert size <= q(limits["memory"])
        assert {"name": "dshm", "mountPath": "/dev/shm"} in parts["volumeMounts"]


@given(kubernetes_specs())
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_specs_compile_to_valid_pods(case: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    res, k8s, profile = case

    def step() -> None: ...

    resources(**res)(step)
    kubernetes(**k8s)(step)
    resolved = resolve(spec_of(step))
    parts = kubernetes_parts(resolved, get_profile(profile))
    manifest = pod(parts)

    validate_pod(manifest)
    assert pod_problems(manifest) == []
    check_against_spec(parts, resolved, profile)


def test_a_builtin_profile_does_not_select_nvidia_nodes_for_another_vendors_gpu() -> None:
    with pytest.raises(AllotmentError) as info:
        compile_step(gpu=1, gpu_type="H100", gpu_vendor="amd")
    assert str(info.value) == (
        "step 'step': gpu_type='H100' from @kubernetes selects nodes by NVIDIA's labels (cluster profile 'nvidia-gfd'), "
        "but the GPU resource is 'amd.com/gpu'; drop gpu_type, or use a cluster profile file that maps this vendor's "
        "GPU types (--profile)"
    )


def test_a_user_request_above_a_user_or_allotment_limit_is_an_error() -> None:
    ours = compile_step(cpu=4, memory=2048)
    with pytest.raises(AllotmentError) as info:
        merge_parts(ours, {"resources": {"limits": {"cpu": "1"}}}, step="step", user_source="container_resources")
    assert str(info.value) == (
        "step 'step': requests.cpu='4' from allotment's spec is above limits.cpu='1' from container_resources; "
        "raise the cpu limit, lower the request, or give cpu in one place only"
    )
    assert merge_parts(ours, {"resources": {"limits": {"cpu": "8"}}}, step="step", user_source="x")["resources"]["limits"]["cpu"] == "8"


def test_memory_that_must_grow_on_retries_cannot_yield_to_the_users_own() -> None:
    def step() -> None: ...

    resources(cpu=2, retry_memory_factor=1.5)(step)
    resolved = resolve(spec_of(step))
    user = {"resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}}
    with pytest.raises(AllotmentError) as info:
        fit(resolved, None, user, user_source="container_resources")
    assert str(info.value) == (
        "step 'step': retry_memory_factor=1.5 from @resources has retry_memory_factor, but its memory comes from the "
        "container's own resources, which allotment cannot grow on a retry; give memory in the spec "
        "(e.g. @resources(memory=...)) so that allotment can grow it"
    )
    plain = resolve(spec_of(resources(cpu=2)(lambda: None)))
    fitted = fit(plain, None, user, user_source="container_resources")
    assert fitted.value("memory") is None  # a default yields ...
    assert fitted.merged.to_dict()["resources"]["requests"]["memory"] == "8Gi"  # ... to the user's own
