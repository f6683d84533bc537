"""One source of truth: over generated specs, what a rendered Argo template asks for is exactly
what the core's Kubernetes compiler says for the same resolved spec.

For each generated spec (on a Container or an inline Script, with or without a
``@kubernetes`` layer, workflow defaults, runtime ``with`` specs, overrides on or off):

- the template's literal ``resources``, ``volumes``, mounts, node selector and tolerations
  equal :func:`allotment.kubernetes.compile_pod` of :meth:`Settings.resolve`;
- the pod Argo would create (podSpecPatch applied, parameters at their defaults) has those
  same parts, and the parameters carry the compiled values;
- with ``retry_memory_factor``, attempt ``n`` after an OOM kill asks for the memory of
  :meth:`RetryGrowth.memory_after` of Argo's count of OOM kills (``argo_oom_kills(n, True)``),
  policy cap included (the runtime cap when the memory is a submit parameter), also when the
  parameter is given as a plain number of MiB;
- where the core rejects the spec, rendering raises the same error.
"""

from __future__ import annotations

from typing import Any

from allotment import AllotmentError, spec_of
from allotment.argo import attach, defaults, overridable
from allotment.argo.names import parameter_name
from allotment.argo.render import render_workflow
from allotment.kubernetes import compile_pod
from allotment.oom import argo_oom_kills
from allotment.policy import Policy
from allotment.quantity import parse_quantity
from allotment.settings import Settings, load_settings
from allotment.sources import Source
from argo_support import parameter_defaults, pod_for, pod_templates
from hera.workflows import DAG, Container, Script, Workflow
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

GPU_TYPES = ["A10G", "A100", "A100-80GB", "H100", "H200", "L4", "L40S", "T4", "V100", "1g.10gb", "3g.40gb"]
MIB = 1024 * 1024


def _memory(mib: int, style: int) -> Any:
    return [mib, f"{mib}Mi", f"{mib}Mi" if mib % 1024 else f"{mib // 1024}Gi"][style]


@st.composite
def fields(draw: st.DrawFn, *, required: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if required or draw(st.booleans()):
        millicores = draw(st.integers(1, 96_000))
        out["cpu"] = draw(st.sampled_from([f"{millicores}m", millicores / 1000 if millicores % 1000 == 0 else f"{millicores}m"]))
    memory = draw(st.integers(64, 512 * 1024))
    if required or draw(st.booleans()):
        out["memory"] = _memory(memory, draw(st.integers(0, 2)))
    if draw(st.booleans()):
        out["gpu"] = draw(st.integers(0, 8))
        if out["gpu"] and draw(st.booleans()):
            out["gpu_type"] = draw(st.sampled_from(GPU_TYPES))
        elif out["gpu"] and draw(st.booleans()):
            out["gpu_vendor"] = draw(st.sampled_from(["nvidia", "amd", "intel", "habana", "neuron", "example.com/tpu"]))
    if draw(st.booleans()):
        out["disk"] = _memory(draw(st.integers(1, 2 * 1024 * 1024)), draw(st.integers(0, 2)))
    if draw(st.booleans()):
        out["shared_memory"] = draw(st.integers(1, memory * 2))  # sometimes above memory: the core rejects it
    if draw(st.booleans()):
        out["retry_memory_factor"] = draw(st.sampled_from([1, 1.1, 1.25, 1.5, 2, 3.7]))
    return out


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "kind": draw(st.sampled_from(["container", "script"])),
        "resources": draw(fields()),
        "kubernetes": draw(st.none() | fields().map(lambda f: {k: v for k, v in f.items() if k != "gpu_vendor"})),
        "qos": draw(st.none() | st.sampled_from(["burstable", "guaranteed"])),
        "defaults": draw(st.none() | fields()),
        "with": draw(st.none() | st.integers(1, 256 * 1024).map(lambda mib: f"kubernetes:memory={mib}")),
        "overridable": draw(st.none() | st.booleans()),
        "cap": draw(st.none() | st.integers(1024, 1024 * 1024)),
        "runtime_cap": draw(st.none() | st.integers(1024, 1024 * 1024)),
    }


def _build(case: dict[str, Any]) -> Workflow:
    with Workflow(name="prop", entrypoint="main") as workflow:
        if case["kind"] == "container":
            template: Any = Container(name="step", image="alpine:3.20", command=["true"])
        else:
            template = Script(name="step", image="python:3.12-slim", source="print('hi')", command=["python"])
        kubernetes = dict(case["kubernetes"] or {})
        if case["qos"]:
            kubernetes["qos"] = case["qos"]
        attach(template, kubernetes=kubernetes or None, **case["resources"])
        if case["overridable"] is not None:
            overridable(case["overridable"])(template)
        with DAG(name="main"):
            template()
    if case["defaults"]:
        defaults(workflow, **case["defaults"])
    return workflow


def _settings(case: dict[str, Any]) -> Settings:
    base = load_settings(cli={"with": [case["with"]]} if case["with"] else {}, env={})
    if case["cap"] is None and case["runtime_cap"] is None:
        return base
    data: dict[str, Any] = {"caps": {"memory": case["cap"]}} if case["cap"] is not None else {}
    if case["runtime_cap"] is not None:
        data["runtime"] = {"caps": {"memory": case["runtime_cap"]}}
    policy = Policy.from_mapping(data, origin="cap.yaml")
    return Settings(base.backend, base.withs, base.sets, policy, base.profile, base.origins)


def _amounts(resources: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    return {section: {k: parse_quantity(v) for k, v in values.items()} for section, values in resources.items()}


def _sized(volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Volumes with each emptyDir sizeLimit as its amount (the patch writes it in Mi)."""
    out = []
    for volume in volumes:
        empty = volume.get("emptyDir")
        if empty and "sizeLimit" in empty:
            volume = {**volume, "emptyDir": {**empty, "sizeLimit": parse_quantity(empty["sizeLimit"])}}
        out.append(volume)
    return out


def _mib(quantity: str) -> int:
    return int(parse_quantity(quantity) / MIB)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_rendered_template_asks_for_what_the_core_compiles(case: dict[str, Any]) -> None:
    try:
        workflow = _build(case)
    except AllotmentError:
        event("rejected by a decorator")
        return  # a bad spec at decoration time (e.g. gpu_type without gpu) never reaches Argo
    settings_ = _settings(case)
    template_obj = next(t for t in workflow.templates if getattr(t, "name", None) == "step")
    extra = (
        [(workflow.__allotment_argo__.defaults, Source("workflow default", "allotment.argo.defaults(prop)"))] if case["defaults"] else []
    )
    try:
        resolved = settings_.resolve(spec_of(template_obj), backend="kubernetes", defaults=extra)
        expected = compile_pod(resolved, settings_.profile).to_dict()
    except AllotmentError as core_error:
        try:
            render_workflow(workflow, settings_)
        except AllotmentError as ours:
            assert str(ours) == str(core_error)
            event("rejected by the core, and by the face with the same error")
            return
        raise AssertionError(f"the core rejects this spec ({core_error}) but it rendered") from core_error

    document = render_workflow(workflow, settings_)
    event("rendered" + (" with memory growth" if resolved.value("retry_memory_factor") not in (None, 1) else ""))
    (template,) = [t for t in pod_templates(document) if t["name"] == "step"]
    body = template.get("container") or template["script"]

    # The literal template fields are the core's output.
    assert body["resources"] == expected["resources"]
    assert template.get("volumes", []) == expected.get("volumes", [])
    assert body.get("volumeMounts", []) == expected.get("volumeMounts", [])
    assert template.get("nodeSelector", {}) == expected.get("nodeSelector", {})
    assert template.get("tolerations", []) == expected.get("tolerations", [])

    # The pod Argo creates with the parameters' defaults asks for the same.
    parameters = parameter_defaults(document)
    pod = pod_for(template, parameters)["spec"]
    main = pod["containers"][0]
    assert _amounts(main["resources"]) == _amounts(expected["resources"])  # the patch writes whole m / Mi
    assert _sized(pod.get("volumes", [])) == _sized(expected.get("volumes", []))

    # Parameters: present exactly when overridable, defaulting to the compiled values.
    requests = expected["resources"]["requests"]
    if case["overridable"] is False:
        assert parameters == {}
    else:
        assert parameters[parameter_name("step", "cpu")] == requests["cpu"]
        assert parameters[parameter_name("step", "memory")] == requests["memory"]
        if expected.get("volumes"):
            assert parameters[parameter_name("step", "shared_memory")] == expected["volumes"][0]["emptyDir"]["sizeLimit"]
        assert set(parameters) <= {parameter_name("step", f) for f in ("cpu", "memory", "gpu", "disk", "shared_memory")}

    # Memory growth per attempt, as the core computes it for that try (runtime caps for an
    # overridable memory), and with a submitted plain number of MiB as for that compiled value.
    factor = resolved.value("retry_memory_factor")
    if factor and factor != 1:
        assert template["retryStrategy"] == {"limit": "3", "retryPolicy": "OnFailure"}
        # The core's one growth rule: a memory a submit parameter can set is runtime input.
        growth = resolved.retry_growth(settings_.policy, runtime_input=case["overridable"] is not False)
        assert growth is not None
        submitted = dict(parameters)
        if case["overridable"] is not False:
            submitted[parameter_name("step", "memory")] = str(resolved.value("memory"))
        for retries in range(4):
            # after an OOM kill of the last attempt (the port's default lastRetry): Argo's count of OOM kills
            want = growth.memory_after(argo_oom_kills(retries, True))
            for given in (parameters, submitted):
                attempt = pod_for(template, given, retries)["spec"]["containers"][0]["resources"]
                assert _mib(attempt["limits"]["memory"]) == want
                assert attempt["requests"]["memory"] == attempt["limits"]["memory"]
    else:
        assert "retryStrategy" not in template
