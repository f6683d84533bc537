"""The Argo face on Hera objects: stacking, Containers, merging with the user's own fields,
conflicts, overrides on and off, workflow defaults, deployment settings, hooks, policy."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import allotment.argo as face
import pytest
from allotment import AllotmentError, batch, kubernetes, resources
from allotment.argo.hooks import WORKFLOW_CLASSES, plans
from allotment.argo.render import render_workflow
from allotment.argo.retry import mib_parameter, parameter_value
from allotment.cli import main
from allotment.fields import MAX_MIB, MAX_MILLICORES, parse_mib
from allotment.policy import Policy
from allotment.quantity import parse_quantity
from allotment.settings import Settings, load_settings
from argo_support import argo_errors, parameter_defaults, parameter_descriptions, pod_for, pod_templates, workflow_spec
from argo_templating import NodeFailure
from hera.shared import global_config
from hera.workflows import (
    DAG,
    Container,
    CronWorkflow,
    EmptyDirVolume,
    Parameter,
    Resources,
    RetryStrategy,
    Steps,
    Workflow,
    WorkflowTemplate,
    script,
)
from hera.workflows import models as m

CLEAN = load_settings(cli={}, env={})


def _render(workflow: Workflow, settings: Settings = CLEAN) -> dict[str, Any]:
    return render_workflow(workflow, settings)


def _template(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in workflow_spec(document)["templates"] if t["name"] == name)


def _with_settings(policy: Policy | None = None, withs: list[str] | None = None) -> Settings:
    base = load_settings(cli={"with": withs or []}, env={})
    return Settings(base.backend, base.withs, base.sets, policy, base.profile, base.origins)


# -- stacking ----------------------------------------------------------------------------------------


def _stacked(order: str) -> Workflow:
    if order == "above":

        @resources(cpu=2, memory="3Gi", gpu=1, gpu_type="L4", shared_memory=512, retry_memory_factor=1.5)
        @kubernetes(qos="guaranteed", tolerations=[{"key": "team", "operator": "Exists"}])
        @script(image="python:3.12-slim")
        def train() -> None:
            print("train")

    elif order == "below":

        @script(image="python:3.12-slim")
        @resources(cpu=2, memory="3Gi", gpu=1, gpu_type="L4", shared_memory=512, retry_memory_factor=1.5)
        @kubernetes(qos="guaranteed", tolerations=[{"key": "team", "operator": "Exists"}])
        def train() -> None:
            print("train")

    else:

        @kubernetes(qos="guaranteed", tolerations=[{"key": "team", "operator": "Exists"}])
        @script(image="python:3.12-slim")
        @resources(cpu=2, memory="3Gi", gpu=1, gpu_type="L4", shared_memory=512, retry_memory_factor=1.5)
        def train() -> None:
            print("train")

    with Workflow(name="stack", entrypoint="main") as workflow:
        with DAG(name="main"):
            train()
    return workflow


def test_decorators_above_below_or_around_script_give_the_same_template() -> None:
    above, below, around = (_render(_stacked(order)) for order in ("above", "below", "around"))
    assert above == below == around
    train = _template(above, "train")
    assert train["script"]["resources"] == {
        "limits": {"cpu": "2", "memory": "3Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "2", "memory": "3Gi", "nvidia.com/gpu": "1"},
    }
    assert train["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}]
    assert train["script"]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert train["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert train["tolerations"] == [
        {"key": "team", "operator": "Exists"},
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"},
    ]
    assert argo_errors(above) == []


# -- Containers ----------------------------------------------------------------------------------------


def test_container_helper_and_attach_carry_a_spec() -> None:
    with Workflow(name="containers", entrypoint="main") as workflow:
        made = face.container(name="made", image="alpine", command=["true"], allotment={"cpu": "250m", "memory": 256})
        plain = face.attach(Container(name="plain", image="alpine"), memory="1Gi", kubernetes={"qos": "guaranteed", "cpu": 3})
        untouched = Container(name="untouched", image="alpine")
        with Steps(name="main"):
            made()
            plain()
            untouched()
    document = _render(workflow)
    assert _template(document, "made")["container"]["resources"] == {
        "limits": {"memory": "256Mi"},
        "requests": {"cpu": "250m", "memory": "256Mi"},
    }
    assert _template(document, "plain")["container"]["resources"] == {
        "limits": {"cpu": "3", "memory": "1Gi"},
        "requests": {"cpu": "3", "memory": "1Gi"},
    }
    assert "resources" not in _template(document, "untouched")["container"]
    assert sorted(parameter_defaults(document)) == ["made-cpu", "made-memory", "plain-cpu", "plain-memory"]
    assert made.resources is None and plain.resources is None  # the user's objects are not changed


def test_a_container_spec_survives_hera_deep_copies() -> None:
    """A Container defined outside a workflow is deep-copied into it when first called."""
    outside = face.container(name="outside", image="alpine", allotment={"memory": 300}, kubernetes={"qos": "guaranteed"})
    face.overridable(False)(outside)
    with Workflow(name="copies", entrypoint="main") as workflow:
        with DAG(name="main"):
            outside()
    template = _template(_render(workflow), "outside")
    assert template["container"]["resources"]["limits"] == {"cpu": "1", "memory": "300Mi"}
    assert "podSpecPatch" not in template


def test_attach_errors() -> None:
    with pytest.raises(AllotmentError, match=r"attach\(\) got a str"):
        face.attach("not a template", cpu=1)  # type: ignore[type-var]
    c = face.attach(Container(name="twice", image="alpine"), cpu=1)
    with pytest.raises(AllotmentError, match="step 'twice': has an allotment spec already"):
        face.attach(c, cpu=2)
    with pytest.raises(AllotmentError, match="step 'bad': memory='16gb' from @resources is not a quantity"):
        face.attach(Container(name="bad", image="alpine"), memory="16gb")
    with pytest.raises(AllotmentError, match="@kubernetes got an unknown keyword 'queue'"):
        face.attach(Container(name="bad2", image="alpine"), kubernetes={"queue": "q"})


# -- the user's own fields: kept and merged; conflicts are errors -------------------------------------------


def test_user_fields_are_kept_and_merged() -> None:
    with Workflow(name="merge", entrypoint="main") as workflow:
        c = Container(
            name="c",
            image="alpine",
            resources=Resources(
                cpu_request="2",
                memory_request="2Gi",
                memory_limit="2Gi",
                custom_resources={"requests": {"example.com/fpga": "1"}, "limits": {"example.com/fpga": "1"}},
            ),
            volumes=[EmptyDirVolume(name="scratch", mount_path="/scratch")],
            volume_mounts=[m.VolumeMount(name="cache", mount_path="/cache")],
            node_selector={"pool": "gpu"},
            tolerations=[m.Toleration(key="pool", operator="Equal", value="gpu", effect="NoSchedule")],
        )
        face.attach(c, cpu=2, memory=2048, gpu=1, gpu_type="H100", shared_memory="1Gi")
        with Steps(name="main"):
            c()
    document = _render(workflow)
    template = _template(document, "c")
    assert template["container"]["resources"] == {
        "limits": {"example.com/fpga": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "2", "example.com/fpga": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
    }
    assert [v["name"] for v in template["volumes"]] == ["scratch", "dshm"]
    assert template["container"]["volumeMounts"] == [
        {"name": "cache", "mountPath": "/cache"},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    assert template["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "pool": "gpu"}
    assert [t["key"] for t in template["tolerations"]] == ["pool", "nvidia.com/gpu"]
    assert argo_errors(document) == []


@pytest.mark.parametrize(
    ("kwargs", "spec", "message"),
    [
        (
            {"resources": Resources(cpu_request="2")},
            {"cpu": 4},
            "step 'c': requests.cpu='2' from Container 'c''s own fields conflicts with requests.cpu='4' from allotment's spec",
        ),
        (
            {"volumes": [EmptyDirVolume(name="shm", mount_path="/dev/shm", medium="Memory")]},
            {"shared_memory": 512},
            "step 'c': volume mount 'shm' at '/dev/shm' from Container 'c''s own fields clashes with the 'dshm' mount",
        ),
        (
            {"node_selector": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
            {"gpu": 1, "gpu_type": "H100"},
            "step 'c': node selector nvidia.com/gpu.product='NVIDIA-L4' from Container 'c''s own fields conflicts",
        ),
    ],
)
def test_conflicts_with_the_users_fields_are_errors(kwargs: dict[str, Any], spec: dict[str, Any], message: str) -> None:
    with Workflow(name="conflict", entrypoint="main") as workflow:
        c = face.attach(Container(name="c", image="alpine", **kwargs), **spec)
        with Steps(name="main"):
            c()
    with pytest.raises(AllotmentError) as raised:
        _render(workflow)
    assert str(raised.value).startswith(message)


def test_an_equal_user_value_is_no_conflict() -> None:
    with Workflow(name="same", entrypoint="main") as workflow:
        c = face.attach(Container(name="c", image="alpine", resources=Resources(cpu_request=0.5)), cpu="500m")
        with Steps(name="main"):
            c()
    assert _template(_render(workflow), "c")["container"]["resources"]["requests"]["cpu"] == "500m"


def test_the_users_pod_spec_patch_is_merged_or_conflicts() -> None:
    own = {"containers": [{"name": "main", "securityContext": {"runAsNonRoot": True}}], "hostNetwork": False}
    with Workflow(name="patch", entrypoint="main") as workflow:
        c = face.attach(Container(name="c", image="alpine", pod_spec_patch=json.dumps(own)), memory=1000)
        with Steps(name="main"):
            c()
    patch = json.loads(_template(_render(workflow), "c")["podSpecPatch"])
    assert patch["hostNetwork"] is False
    assert patch["containers"][0]["securityContext"] == {"runAsNonRoot": True}
    assert patch["containers"][0]["resources"]["limits"]["memory"] == mib_parameter("c-memory")

    clash = {"containers": [{"name": "main", "resources": {"limits": {"memory": "9Gi"}}}]}
    with Workflow(name="patch2", entrypoint="main") as workflow2:
        c2 = face.attach(Container(name="c2", image="alpine", pod_spec_patch=json.dumps(clash)), memory=1000)
        with Steps(name="main"):
            c2()
    with pytest.raises(AllotmentError, match=r"podSpecPatch sets containers\[main\]\.resources\.limits\.memory='9Gi'"):
        _render(workflow2)


def test_a_step_pinned_to_batch_cannot_run_on_argo() -> None:
    @batch(cpu=1)
    @script(image="python:3.12-slim")
    def elsewhere() -> None:
        print("x")

    with Workflow(name="pinned", entrypoint="main") as workflow:
        with Steps(name="main"):
            elsewhere()
    with pytest.raises(AllotmentError, match="step 'elsewhere': is pinned to batch by @batch"):
        _render(workflow)


def test_kubernetes_image_fills_or_must_agree() -> None:
    @kubernetes(image="python:3.13-slim")
    @script()
    def filled() -> None:
        print("x")

    @kubernetes(image="python:3.13-slim")
    @script(image="alpine")
    def clashing() -> None:
        print("x")

    with Workflow(name="images", entrypoint="main") as workflow:
        with Steps(name="main"):
            filled()
    assert _template(_render(workflow), "filled")["script"]["image"] == "python:3.13-slim"
    with Workflow(name="images2", entrypoint="main") as workflow2:
        with Steps(name="main"):
            clashing()
    clash = r"image='alpine' of Script 'clashing' conflicts with image='python:3.13-slim' from @kubernetes"
    with pytest.raises(AllotmentError, match=clash):
        _render(workflow2)


# -- submit-time overrides ------------------------------------------------------------------------------------


def _two_steps(workflow_flag: bool | None, template_flag: bool | None) -> Workflow:
    @resources(cpu=1, memory=1000, disk=2000, shared_memory=100)
    @script(image="python:3.12-slim")
    def first() -> None:
        print("x")

    second = face.container(name="second", image="alpine", allotment={"gpu": 2, "gpu_vendor": "amd"})
    if template_flag is not None:
        face.overridable(template_flag)(first)
    with Workflow(name="flags", entrypoint="main", arguments=Parameter(name="own", value="1")) as workflow:
        with DAG(name="main"):
            first() >> second()
    if workflow_flag is not None:
        face.overridable(workflow_flag)(workflow)
    return workflow


def test_overrides_are_parameters_referenced_by_the_pod_spec_patch() -> None:
    document = _render(_two_steps(None, None))
    assert parameter_defaults(document) == {
        "own": "1",
        "first-cpu": "1",
        "first-memory": "1000Mi",
        "first-disk": "2000Mi",
        "first-shared-memory": "100Mi",
        "second-cpu": "1",
        "second-memory": "4Gi",
        "second-gpu": "2",
    }
    first = _template(document, "first")
    patch = json.loads(first["podSpecPatch"])
    assert patch == {
        "containers": [
            {
                "name": "main",
                "resources": {
                    "limits": {"memory": mib_parameter("first-memory"), "ephemeral-storage": mib_parameter("first-disk", field="disk")},
                    "requests": {
                        "cpu": parameter_value("cpu", "first-cpu", MAX_MILLICORES),
                        "memory": mib_parameter("first-memory"),
                        "ephemeral-storage": mib_parameter("first-disk", field="disk"),
                    },
                },
            }
        ],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": mib_parameter("first-shared-memory", field="shared_memory")}}
        ],
    }
    # No parameter reaches the patch as text (docs/design.md §7.2): each is read inside one expression.
    assert "{{workflow.parameters." not in first["podSpecPatch"]
    assert parameter_value("cpu", "first-cpu", MAX_MILLICORES).startswith("{{=map([map([workflow.parameters['first-cpu']], {# matches '")
    assert parameter_value("cpu", "first-cpu", MAX_MILLICORES).endswith("})[0]}}m")
    # argo submit -p first-memory=64Gi -p second-gpu=4: the pod asks for that.
    submitted = {**parameter_defaults(document), "first-memory": "64Gi", "second-gpu": "4"}
    assert pod_for(first, submitted)["spec"]["containers"][0]["resources"]["limits"]["memory"] == "65536Mi"
    second = pod_for(_template(document, "second"), submitted)["spec"]["containers"][0]["resources"]
    assert second["requests"]["amd.com/gpu"] == second["limits"]["amd.com/gpu"] == "4"
    assert parameter_descriptions(document)["first-memory"].endswith("from 1Mi to 1Ei; a plain number is MiB")
    assert parameter_descriptions(document)["first-cpu"].endswith("accepts cores (2, 0.5) or millicores (500m) from 1m to 1000000")
    assert "MiB" not in parameter_descriptions(document)["first-cpu"]


@pytest.mark.parametrize(
    ("given", "memory"),
    [
        ("65536", "65536Mi"),  # a plain number is MiB, as everywhere in allotment, not bytes
        ("1.5", "2Mi"),  # rounded up to whole MiB, as the core rounds memory
        ("64Gi", "65536Mi"),  # a quantity reaches Kubernetes as its whole MiB
        ("1G", "954Mi"),
        ("1e9", "954Mi"),  # an exponent form is a Kubernetes quantity: bytes
        ("300000k", "287Mi"),
    ],
)
def test_plain_numbers_in_memory_parameters_are_mib(given: str, memory: str) -> None:
    document = _render(_two_steps(None, None))
    first = _template(document, "first")
    submitted = {**parameter_defaults(document), "first-memory": given, "first-disk": given, "first-shared-memory": given, "first-cpu": "3"}
    pod = pod_for(first, submitted)["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"] == memory
    assert resources["limits"]["ephemeral-storage"] == resources["requests"]["ephemeral-storage"] == memory
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == memory
    assert resources["requests"]["cpu"] == "3000m"  # cpu in millicores
    if given.isdigit():
        assert parse_quantity(memory) == int(given) * 1024 * 1024 == parse_mib(given) * 1024 * 1024


@pytest.mark.parametrize(
    ("workflow_flag", "template_flag", "first", "second"),
    [(None, None, True, True), (False, None, False, False), (False, True, True, False), (True, False, False, True)],
)
def test_overridable_switch_at_workflow_and_template_level(
    workflow_flag: bool | None, template_flag: bool | None, first: bool, second: bool
) -> None:
    document = _render(_two_steps(workflow_flag, template_flag))
    names = set(parameter_defaults(document))
    assert ("first-cpu" in names) is first and ("podSpecPatch" in _template(document, "first")) is first
    assert ("second-cpu" in names) is second and ("podSpecPatch" in _template(document, "second")) is second
    assert "own" in names
    assert argo_errors(document) == []


def test_a_policy_that_allows_no_runtime_input_turns_the_parameters_off() -> None:
    policy = Policy.from_mapping({"runtime": {"with": False}}, origin="strict.yaml")
    assert parameter_defaults(_render(_two_steps(None, True), _with_settings(policy))) == {"own": "1"}


def test_a_parameter_name_clash_is_an_error() -> None:
    with Workflow(name="clash", entrypoint="main", arguments={"c-cpu": "7"}) as workflow:
        c = face.container(name="c", image="alpine", allotment={"cpu": 1})
        with Steps(name="main"):
            c()
    with pytest.raises(AllotmentError, match="workflow parameter 'c-cpu' is defined twice"):
        _render(workflow)


def test_cron_workflow_parameters_live_in_the_workflow_spec() -> None:
    with CronWorkflow(name="cron", schedules=["0 1 * * *"], entrypoint="main") as cron:
        c = face.container(name="c", image="alpine", allotment={"memory": "2Gi"})
        with Steps(name="main"):
            c()
    document = _render(cron)
    assert "arguments" not in document["spec"]
    assert document["spec"]["workflowSpec"]["arguments"]["parameters"][1] == {
        "name": "c-memory",
        "description": "allotment: memory of template c (compiled 2Gi from @resources); "
        "accepts a quantity such as 64Gi or a plain number from 1Mi to 1Ei; a plain number is MiB",
        "value": "2Gi",
    }
    assert argo_errors(document) == []


def test_workflow_template_parameters() -> None:
    with WorkflowTemplate(name="wt", entrypoint="main", arguments={"n": 3}) as template:
        c = face.container(name="c", image="alpine", allotment={"cpu": 2})
        with Steps(name="main"):
            c()
    document = _render(template)
    assert parameter_defaults(document) == {"n": "3", "c-cpu": "2", "c-memory": "4Gi"}
    assert argo_errors(document) == []


# -- workflow defaults and deployment settings -----------------------------------------------------------------


def test_workflow_defaults_fill_gaps_only() -> None:
    with Workflow(name="defaults", entrypoint="main") as workflow:
        a = face.container(name="a", image="alpine", allotment={"cpu": 8})
        b = face.container(name="b", image="alpine", allotment={"memory": 100})
        with Steps(name="main"):
            a()
            b()
    face.defaults(workflow, cpu=2, memory="8Gi", disk="1Gi")
    document = _render(workflow)
    assert _template(document, "a")["container"]["resources"]["requests"] == {"cpu": "8", "ephemeral-storage": "1Gi", "memory": "8Gi"}
    assert _template(document, "b")["container"]["resources"]["requests"] == {"cpu": "2", "ephemeral-storage": "1Gi", "memory": "100Mi"}
    with pytest.raises(AllotmentError, match=r"cpu='lots' from allotment.argo.defaults\(defaults\) is not a CPU quantity"):
        face.defaults(workflow, cpu="lots")


def test_deployment_with_applies_at_render_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "flow_with.py"
    flow.write_text(
        "from hera.workflows import Steps, Workflow\n"
        "from allotment.argo import container\n"
        "with Workflow(name='w', entrypoint='main') as w:\n"
        "    c = container(name='c', image='alpine', allotment={'memory': 1024})\n"
        "    with Steps(name='main'):\n"
        "        c()\n"
    )
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_POLICY", "ALLOTMENT_BACKEND", "ALLOTMENT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["render", str(flow), "--target", "argo", "--with", "kubernetes:memory=64Gi", "--set", "c:cpu=3"]) == 0
    out = capsys.readouterr().out
    assert "value: 64Gi" in out and "value: '3'" in out
    # The environment: read when the hook runs (a user's own w.to_yaml()).
    monkeypatch.setenv("ALLOTMENT_WITH", "c:memory=2Gi")
    from allotment.discover import load_module

    workflow = load_module(flow).w
    face.install()
    assert workflow.to_dict()["spec"]["arguments"]["parameters"][1]["value"] == "2Gi"
    # A with naming no step is an error, as in the core.
    assert main(["render", str(flow), "--target", "argo", "--with", "nosuch:memory=1Gi"]) == 1
    assert "names step 'nosuch', which does not exist" in capsys.readouterr().err


def _grower(memory: int = 4000, factor: float = 2) -> Workflow:
    @resources(memory=memory, retry_memory_factor=factor)
    @script(image="python:3.12-slim")
    def grow() -> None:
        print("x")

    with Workflow(name="capped", entrypoint="main") as workflow:
        with Steps(name="main"):
            grow()
    return workflow


def _attempts(document: dict[str, Any], parameters: dict[str, str] | None = None, name: str = "grow") -> list[str]:
    template = _template(document, name)
    given = {**parameter_defaults(document), **(parameters or {})}
    out = []
    for retries in range(4):
        resources = pod_for(template, given, retries)["spec"]["containers"][0]["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"]
        out.append(resources["limits"]["memory"])
    return out


def test_policy_caps_hold_and_cap_memory_growth() -> None:
    workflow = _grower()
    policy = Policy.from_mapping({"caps": {"memory": 10000, "cpu": 4}}, origin="caps.yaml")
    document = _render(workflow, _with_settings(policy))
    assert ", 10000), #)})[0])}}Mi" in _template(document, "grow")["podSpecPatch"]
    assert _attempts(document) == ["4000Mi", "8000Mi", "10000Mi", "10000Mi"]
    face.overridable(False)(workflow)
    fixed = _render(workflow, _with_settings(policy))
    assert ", 10000))}}Mi" in _template(fixed, "grow")["podSpecPatch"]
    assert _attempts(fixed) == ["4000Mi", "8000Mi", "10000Mi", "10000Mi"]
    with pytest.raises(AllotmentError, match="step 'grow': cpu='8' from with --with 'kubernetes:cpu=8' exceeds the cap cpu <= 4"):
        _render(_grower(), _with_settings(policy, ["kubernetes:cpu=8"]))


RUNTIME_CAPPED = {"caps": {"memory": 10000}, "runtime": {"caps": {"memory": 6000}}}


def test_growth_of_an_overridable_memory_is_held_to_the_runtime_cap() -> None:
    """A submit parameter is runtime input: growth from it stops at memory_cap(runtime=True)."""
    policy = Policy.from_mapping(RUNTIME_CAPPED, origin="runtime.yaml")
    assert policy.memory_cap(runtime=True) == 6000 and policy.memory_cap(runtime=False) == 10000
    document = _render(_grower(), _with_settings(policy))
    assert ", 6000), #)})[0])}}Mi" in _template(document, "grow")["podSpecPatch"]
    assert _attempts(document) == ["4000Mi", "6000Mi", "6000Mi", "6000Mi"]
    assert _attempts(document, {"grow-memory": "5000"}) == ["5000Mi", "6000Mi", "6000Mi", "6000Mi"]
    # A submitted memory above the runtime cap fails the node (docs/design.md §6: runtime input up to runtime.caps).
    with pytest.raises(NodeFailure, match="grow-memory must be from 1Mi to 6000Mi"):
        _attempts(document, {"grow-memory": "8000Mi"})
    # A compiled memory above the cap is never lowered; it just does not grow.
    high = _render(_grower(memory=8000), _with_settings(policy))  # compiled 8000 (caps.memory allows it)
    assert _attempts(high) == ["8000Mi"] * 4
    assert _attempts(high, {"grow-memory": "3000"}) == ["3000Mi", "6000Mi", "6000Mi", "6000Mi"]


def test_growth_of_a_fixed_memory_is_held_to_the_step_cap() -> None:
    """Without parameters the memory is the compiled one: growth stops at memory_cap(runtime=False),
    unless the memory itself came from runtime input (a deployment's with), as in the core."""
    policy = Policy.from_mapping(RUNTIME_CAPPED, origin="runtime.yaml")
    workflow = _grower()
    face.overridable(False)(workflow)
    document = _render(workflow, _with_settings(policy))
    assert parameter_defaults(document) == {}
    assert _attempts(document) == ["4000Mi", "8000Mi", "10000Mi", "10000Mi"]
    resolved = plans(workflow, _with_settings(policy))[0][2].resolved
    assert [f"{resolved.with_memory_after(n, policy).value('memory')}Mi" for n in range(4)] == _attempts(document)  # each after an OOM kill
    from_with = _render(workflow, _with_settings(policy, ["kubernetes:memory=5000"]))
    assert _attempts(from_with) == ["5000Mi", "6000Mi", "6000Mi", "6000Mi"]


@pytest.mark.parametrize(
    ("given", "mib"),
    [
        ("2Gi", 2048),
        ("1536Mi", 1536),
        ("2G", 1908),
        ("1000M", 954),
        ("1Ti", 1048576),
        ("1T", 953675),
        ("1024", 1024),  # a plain number is MiB
        ("1.5", 2),
        ("1048576Ki", 1024),
        ("1000000k", 954),
        ("0.001Pi", 1073742),
        ("1P", 953674317),
        ("0.000001Ei", 1099512),
        ("1E", 953674316407),
        ("1073741824000m", 1024),
        ("1073741824000000u", 1024),
        ("1073741824000000000n", 1024),
        ("1e9", 954),  # an exponent form: bytes
        ("1E9", 954),
        ("2.5e6", 3),
        ("+1Gi", 1024),
        (".5Gi", 512),
    ],
)
def test_memory_growth_reads_an_overridden_memory_in_any_unit(given: str, mib: int) -> None:
    @resources(memory="1Gi", retry_memory_factor=1.5)
    @script(image="python:3.12-slim", retry_strategy=RetryStrategy(limit="2"))
    def grow() -> None:
        print("x")

    with Workflow(name="units", entrypoint="main") as workflow:
        with Steps(name="main"):
            grow()
    document = _render(workflow)
    template = _template(document, "grow")
    assert template["retryStrategy"] == {"limit": "2"}  # the user's own retry strategy is kept
    parameters = {**parameter_defaults(document), "grow-memory": given}
    limits = [pod_for(template, parameters, r)["spec"]["containers"][0]["resources"]["limits"]["memory"] for r in range(3)]
    assert limits == [f"{min(math.ceil(mib * 1.5**r), MAX_MIB)}Mi" for r in range(3)], given  # growth stops at 1 EiB


@pytest.mark.parametrize("given", ["64GB", "1.2.3", "-1Gi", "1Gi ", "lots", "1e", "0x10"])
def test_memory_growth_fails_loudly_on_a_value_that_is_no_quantity(given: str) -> None:
    document = _render(_grower())
    with pytest.raises(NodeFailure, match=r"Error applying PodSpecPatch: .* grow-memory is not a quantity"):
        _attempts(document, {"grow-memory": given})


# -- hooks -----------------------------------------------------------------------------------------------


def test_install_is_idempotent_and_hooks_are_keyed_by_class() -> None:
    face.install()
    face.install()
    hooks = global_config._pre_build_hooks
    for cls in WORKFLOW_CLASSES:
        ours = [h for h in hooks.get(cls, []) if getattr(h, "__allotment_hook__", False)]
        assert len(ours) == 1, cls
    assert not any(isinstance(key, str) for key in hooks)  # no `from __future__ import annotations` trap


def test_to_dict_through_the_hook_equals_render_and_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_POLICY", "ALLOTMENT_BACKEND", "ALLOTMENT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    face.install()
    for workflow in (_stacked("above"), _two_steps(None, None)):
        first, second = workflow.to_dict(), workflow.to_dict()
        assert first == second
        assert parameter_defaults(first)
        assert _render(workflow) == render_workflow(workflow, CLEAN)
        assert json.dumps(first, sort_keys=True) == json.dumps(_render(workflow), sort_keys=True)


def test_install_again_after_hera_config_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_POLICY"):
        monkeypatch.delenv(var, raising=False)
    workflow = _two_steps(None, None)
    global_config.reset()
    assert "arguments" not in workflow.to_dict()["spec"] or len(parameter_defaults(workflow.to_dict())) == 1
    face.install()
    assert len(parameter_defaults(workflow.to_dict())) > 1


def test_explain_finds_hera_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    root = Path(__file__).resolve().parents[2]
    assert (
        main(
            [
                "explain",
                str(root / "workflows" / "nightly_training.py"),
                str(root / "workflows" / "feature_fanout.py"),
                "--backend",
                "kubernetes",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for step in ("prepare", "train", "evaluate", "featurize", "merge", "list-shards", "validate"):
        assert f"step {step!r}" in out
    assert "runs on kubernetes, pinned by @kubernetes" in out


def test_rendered_pods_of_the_unit_workflows_are_valid() -> None:
    import kubernetes_validate
    from argo_support import K8S_VERSION
    from k8s_rules import pod_problems

    for workflow in (_stacked("below"), _two_steps(None, None)):
        document = _render(workflow)
        for template in pod_templates(document):
            pod = pod_for(template, parameter_defaults(document))
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
            assert pod_problems(pod) == []


def test_defaults_yield_to_the_templates_own_resources() -> None:
    with Workflow(name="yield", entrypoint="main") as workflow:
        c = face.attach(Container(name="c", image="alpine", resources=Resources(cpu_request="2")), memory=1000)
        with Steps(name="main"):
            c()
    document = _render(workflow)
    assert _template(document, "c")["container"]["resources"]["requests"] == {"cpu": "2", "memory": "1000Mi"}
    assert "c-cpu" not in parameter_defaults(document)  # the cpu is the template's own, not allotment's
    assert "c-memory" in parameter_defaults(document)
    with Workflow(name="yield2", entrypoint="main") as workflow2:
        own = Resources(memory_request="1Gi", memory_limit="1Gi")
        g = face.attach(Container(name="g", image="alpine", resources=own), retry_memory_factor=2)
        with Steps(name="main"):
            g()
    with pytest.raises(AllotmentError, match=r"step 'g': retry_memory_factor=2\.0 from @resources has retry_memory_factor, but its memory"):
        _render(workflow2)


def test_workflows_without_specs_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_WITH", "not a spec at all")
    face.install()
    with Workflow(name="plain", entrypoint="main") as workflow:
        c = Container(name="c", image="alpine")
        with Steps(name="main"):
            c()
    assert face.apply(workflow) is workflow
    assert workflow.to_dict()["spec"]["templates"][0]["container"] == {"image": "alpine"}


def test_render_namespace_option_fills_a_missing_namespace() -> None:
    with Workflow(name="ns", entrypoint="main") as workflow:
        c = face.container(name="c", image="alpine", allotment={"cpu": 1})
        with Steps(name="main"):
            c()
    with WorkflowTemplate(name="ns2", entrypoint="main", namespace="own") as template:
        with Steps(name="main"):
            pass
    assert render_workflow(workflow, CLEAN, "ml")["metadata"]["namespace"] == "ml"
    assert render_workflow(template, CLEAN, "ml")["metadata"]["namespace"] == "own"
