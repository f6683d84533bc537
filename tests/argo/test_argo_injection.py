"""Argo submit parameters are hostile input (issue 9, docs/design.md §7.2): whatever ``argo submit -p``
gives a resource parameter, the node fails before a pod exists, or the pod differs from the
compiled one in resource values only, each a valid Kubernetes quantity of its kind.

Every check runs the rendered manifest through ``argo_templating`` (the port of Argo v4.1.2's
templating: Go's JSON escaping, every substitution pass, ``podSpecPatch`` parsed and
strategically merged) with expressions on the real expr-lang engine (enchanter-golem):

- the breakout of the issue, against the patch as it rendered before the fix (the port must
  reproduce it: a positive control) and against every example now;
- the catalogue (``argo_catalogue``): each hostile value for each resource parameter of every
  example workflow and of fresh ones (with a policy, a user ``podSpecPatch``, growth), with its
  hand-written outcome;
- benign overrides and memory growth per OOM-killed retry through the port, against the core;
- a hypothesis fuzz over parameter values (``ALLOTMENT_FUZZ_LONG=1``: 100,000 inputs).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import allotment.argo as face
import pytest
from allotment import resources, spec_of
from allotment.argo.render import render, render_workflow
from allotment.quantity import parse_quantity
from allotment.settings import Settings, load_settings
from argo_catalogue import BREAKOUT, CATALOGUE, HOSTPATH, MAX_GPU, MAX_MIB, MAX_MILLICORES, Case
from argo_support import WORKFLOWS, parameter_defaults, pod_templates, workflow_spec
from argo_templating import NodeFailure, run_attempt
from hera.workflows import Env, RetryStrategy, Steps, Workflow, WorkflowTemplate, script
from hera.workflows import models as m
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

MIB = Decimal(1024 * 1024)
CLEAN = load_settings(cli={}, env={})
FIELDS = ("cpu", "memory", "gpu", "disk", "shared_memory")
KIND = {"cpu": "cpu", "gpu": "gpu", "memory": "mib", "disk": "mib", "shared_memory": "mib"}
LONG = os.environ.get("ALLOTMENT_FUZZ_LONG") == "1"


# -- workflows -----------------------------------------------------------------------------------


def _fresh() -> Workflow:
    """Every field, growth, a Container with its own security context, env and podSpecPatch."""

    @resources(cpu=2, memory="8Gi", gpu=1, disk="20Gi", shared_memory="1Gi", retry_memory_factor=2)
    @script(image="python:3.12-slim")
    def full() -> None:
        print("x")

    own_patch = json.dumps(
        {"containers": [{"name": "main", "env": [{"name": "MODE", "value": "safe"}]}], "automountServiceAccountToken": False}
    )
    guarded = face.container(
        name="guarded",
        image="alpine",
        command=["sh", "-c", "true"],
        env=[Env(name="TOKEN", value="none")],
        security_context=m.SecurityContext(run_as_non_root=True, allow_privilege_escalation=False),
        pod_spec_patch=own_patch,
        allotment={"cpu": "500m", "memory": "1Gi", "disk": "2Gi"},
    )
    with Workflow(name="fresh", entrypoint="main") as workflow:
        with Steps(name="main"):
            full()
            guarded()
    return workflow


POLICY = """caps: {cpu: 8, memory: 32Gi, gpu: 2, disk: 50Gi, shared_memory: 4Gi}
runtime: {caps: {memory: 16Gi}}
"""
CAPS = {"cpu": 8000, "memory": 16384, "gpu": 2, "disk": 51200, "shared_memory": 4096}
"""The policy's caps for runtime input (the stricter of caps and runtime.caps), held units."""


def _fresh_capped() -> WorkflowTemplate:
    @resources(cpu=1, memory="4Gi", gpu=1, shared_memory="512Mi", retry_memory_factor=1.5)
    @script(image="python:3.12-slim", retry_strategy=RetryStrategy(limit="4", retry_policy="OnFailure"))
    def capped() -> None:
        print("x")

    with WorkflowTemplate(name="fresh-capped", entrypoint="main") as template:
        with Steps(name="main"):
            capped()
    return template


@pytest.fixture(scope="module")
def policy_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY)
    return load_settings(cli={"policy": str(path)}, env={})


@pytest.fixture(scope="module")
def documents(policy_settings: Settings) -> dict[str, dict[str, Any]]:
    """Every example workflow (as its golden YAML renders) and the fresh ones."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(WORKFLOWS.glob("*.py")):
        for document in render([path], CLEAN, {}):
            out[f"{path.stem}:{document['metadata'].get('name') or document['metadata']['generateName']}"] = document
    out["fresh"] = render_workflow(_fresh(), CLEAN)
    out["fresh-capped"] = render_workflow(_fresh_capped(), policy_settings)
    return out


@dataclass(frozen=True)
class Target:
    """One resource parameter of one pod template."""

    document: str
    template: str
    field: str
    parameter: str


def _targets(document_id: str, document: Mapping[str, Any]) -> Iterator[Target]:
    declared = parameter_defaults(document)
    for template in pod_templates(document):
        for name in FIELDS:
            parameter = f"{template['name']}-{name.replace('_', '-')}"
            if parameter in declared:
                yield Target(document_id, template["name"], name, parameter)


# -- what may differ -------------------------------------------------------------------------------


def _resource_leaves(spec: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """Every resource value allotment may set: container requests and limits, dshm's sizeLimit."""
    leaves: dict[tuple[str, ...], Any] = {}
    for container in spec.get("containers") or []:
        for section in ("requests", "limits"):
            for key, value in ((container.get("resources") or {}).get(section) or {}).items():
                leaves[("containers", container.get("name"), section, key)] = value
    for volume in spec.get("volumes") or []:
        if volume.get("name") == "dshm" and "sizeLimit" in (volume.get("emptyDir") or {}):
            leaves[("volumes", "dshm", "sizeLimit")] = volume["emptyDir"]["sizeLimit"]
    return leaves


def _without_resources(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(spec))
    for container in out.get("containers") or []:
        for section in ("requests", "limits"):
            (container.get("resources") or {}).pop(section, None)
    for volume in out.get("volumes") or []:
        if volume.get("name") == "dshm":
            (volume.get("emptyDir") or {}).pop("sizeLimit", None)
    return out


def _field_of(leaf: tuple[str, ...]) -> str:
    if leaf[0] == "volumes":
        return "shared_memory"
    key = leaf[3]
    return {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "disk"}.get(key, "gpu")


def _amount(field: str, value: Any) -> int:
    """A pod's quantity in held units; asserts it is a valid amount of its kind."""
    assert isinstance(value, str), (field, value)
    quantity = parse_quantity(value)  # the API server's grammar: no sign, a number, a suffix
    if field == "cpu":
        millicores = quantity * 1000
        assert millicores > 0 and millicores == millicores.to_integral_value(), (field, value)
        return int(millicores)
    if field == "gpu":
        assert quantity >= 0 and quantity == quantity.to_integral_value(), (field, value)
        return int(quantity)
    mib = quantity / MIB
    assert mib >= 1 and mib == mib.to_integral_value(), (field, value)  # whole MiB, as allotment writes them
    return int(mib)


def only_resources_changed(baseline: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[tuple[str, ...], int]:
    """Assert that ``spec`` is ``baseline`` but for resource values, each valid for its kind,
    requests equal to limits where allotment sets both; return the amounts."""
    assert _without_resources(spec) == _without_resources(baseline)
    leaves = _resource_leaves(spec)
    assert set(leaves) == set(_resource_leaves(baseline))
    amounts = {leaf: _amount(_field_of(leaf), value) for leaf, value in leaves.items()}
    for leaf, amount in amounts.items():
        if leaf[0] == "containers" and leaf[2] == "requests" and _field_of(leaf) != "cpu":
            limit = ("containers", leaf[1], "limits", leaf[3])
            assert limit not in amounts or amounts[limit] == amount, leaf
    return amounts


def _baseline(document: Mapping[str, Any], template: str, retries: int = 0) -> dict[str, Any]:
    return run_attempt(document, template, {}, retries).pod_spec


def _amounts_of(field: str, amounts: Mapping[tuple[str, ...], int]) -> set[int]:
    return {a for leaf, a in amounts.items() if leaf[:2] in (("containers", "main"), ("volumes", "dshm")) and _field_of(leaf) == field}


# -- the breakout of the issue -----------------------------------------------------------------------


def _as_before(document: Mapping[str, Any], template: str) -> dict[str, Any]:
    """``document`` with ``template``'s cpu as the patch wrote it before the fix: a plain tag."""
    before = copy.deepcopy(dict(document))
    spec = workflow_spec(before)
    target = next(t for t in spec["templates"] if t["name"] == template)
    patch = json.loads(target["podSpecPatch"])
    patch["containers"][0]["resources"]["requests"]["cpu"] = f"{{{{workflow.parameters.{template}-cpu}}}}"
    target["podSpecPatch"] = json.dumps(patch, separators=(",", ":"))
    return before


def test_the_port_reproduces_the_breakout_on_the_patch_as_it_was(documents: dict[str, dict[str, Any]]) -> None:
    """Positive control: a plain ``{{workflow.parameters.x}}`` in the patch lets the value out."""
    before = _as_before(documents["overrides_and_retries:overrides-and-retries-"], "aggregate")
    spec = run_attempt(before, "aggregate", {"aggregate-cpu": BREAKOUT}).pod_spec
    assert spec["hostNetwork"] is True
    assert spec["serviceAccountName"] == "cluster-admin"
    assert spec["containers"][0]["securityContext"] == {"privileged": True}
    with pytest.raises(AssertionError):
        only_resources_changed(_baseline(before, "aggregate"), spec)


def test_the_breakout_fails_the_node_in_every_example(documents: dict[str, dict[str, Any]]) -> None:
    tried = 0
    for document_id, document in documents.items():
        for target in _targets(document_id, document):
            value = BREAKOUT if target.field in ("cpu", "gpu") else HOSTPATH
            with pytest.raises(NodeFailure, match="Error applying PodSpecPatch"):
                run_attempt(document, target.template, {target.parameter: value})
            tried += 1
    assert tried >= 20


def test_no_parameter_reaches_a_patch_as_text(documents: dict[str, dict[str, Any]]) -> None:
    """Every ``{{`` in a patch opens an expression that reads parameters inside it."""
    for document in documents.values():
        for template in pod_templates(document):
            patch = template.get("podSpecPatch") or ""
            assert "{{workflow.parameters" not in patch and "{{inputs" not in patch
            assert patch.count("{{") == patch.count("{{=")


# -- the catalogue -----------------------------------------------------------------------------------


def _bound(document_id: str, field: str, compiled: int) -> int:
    if document_id == "fresh-capped":
        return max(CAPS[field], compiled)
    return {"cpu": MAX_MILLICORES, "gpu": MAX_GPU}.get(field, MAX_MIB)


def _compiled(document: Mapping[str, Any], target: Target) -> int:
    leaves = _resource_leaves(_baseline(document, target.template))
    (amount,) = _amounts_of(target.field, {k: _amount(_field_of(k), v) for k, v in leaves.items()})
    return amount


def test_the_catalogue_is_large_and_each_entry_once() -> None:
    assert len(CATALOGUE) >= 40
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)
    assert len({c.value for c in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.id)
def test_a_hostile_value_fails_the_node_or_changes_only_its_resource(case: Case, documents: dict[str, dict[str, Any]]) -> None:
    """One parameter at a time, in every document: the expected amount of its kind, or a node
    failure, and nothing else in the pod changes."""
    for document_id, document in documents.items():
        for target in _targets(document_id, document):
            expected = case.accepts.get(KIND[target.field])
            if expected is not None and not (1 if target.field != "gpu" else 0) <= expected <= _bound(
                document_id, target.field, _compiled(document, target)
            ):
                expected = None  # beyond the policy's cap: refused too
            try:
                spec = run_attempt(document, target.template, {target.parameter: case.value}).pod_spec
            except NodeFailure as e:
                assert expected is None, f"{target}: {case.value!r} should give {expected}: {e}"
                assert e.stage == "Error applying PodSpecPatch", e
                continue
            assert expected is not None, f"{target}: {case.value!r} should fail the node"
            baseline = _baseline(document, target.template)
            amounts = only_resources_changed(baseline, spec)
            assert _amounts_of(target.field, amounts) == {expected}, (target, case.value)
            compiled = only_resources_changed(baseline, baseline)
            for other in FIELDS:
                if other != target.field:  # the other fields keep their values
                    assert _amounts_of(other, amounts) == _amounts_of(other, compiled), (target, other)


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.id)
def test_a_hostile_value_in_every_parameter_at_once(case: Case, documents: dict[str, dict[str, Any]]) -> None:
    for document_id, document in documents.items():
        targets = list(_targets(document_id, document))
        submitted = {t.parameter: case.value for t in targets}
        for template in {t.template for t in targets}:
            fields = [t for t in targets if t.template == template]
            accepted = all(
                (a := case.accepts.get(KIND[t.field])) is not None
                and (t.field == "gpu" or a >= 1)
                and a <= _bound(document_id, t.field, _compiled(document, t))
                for t in fields
            )
            try:
                spec = run_attempt(document, template, submitted).pod_spec
            except NodeFailure:
                assert not accepted, (document_id, template, case.value)
                continue
            assert accepted, (document_id, template, case.value)
            only_resources_changed(_baseline(document, template), spec)


# -- benign overrides and growth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "given", "quantity"),
    [
        ("memory", "64Gi", "65536Mi"),
        ("memory", "65536", "65536Mi"),  # a plain number is MiB
        ("memory", "1G", "954Mi"),
        ("disk", "100Gi", "102400Mi"),
        ("shared_memory", "2Gi", "2048Mi"),
        ("cpu", "500m", "500m"),
        ("cpu", "2", "2000m"),
        ("cpu", "0.25", "250m"),
        ("gpu", "2", "2"),
        ("gpu", "0", "0"),
    ],
)
def test_benign_overrides_give_the_expected_quantities(field: str, given: str, quantity: str, documents: dict[str, dict[str, Any]]) -> None:
    document = documents["fresh"]
    spec = run_attempt(document, "full", {f"full-{field.replace('_', '-')}": given}).pod_spec
    amounts = only_resources_changed(_baseline(document, "full"), spec)
    assert _amounts_of(field, amounts) == {_amount(field, quantity)}
    main = spec["containers"][0]["resources"]
    if field == "shared_memory":
        assert spec["volumes"][[v["name"] for v in spec["volumes"]].index("dshm")]["emptyDir"]["sizeLimit"] == quantity
    else:
        key = {"cpu": "cpu", "memory": "memory", "disk": "ephemeral-storage", "gpu": "nvidia.com/gpu"}[field]
        assert main["requests"][key] == quantity


def test_a_submit_without_parameters_asks_for_the_compiled_values(documents: dict[str, dict[str, Any]]) -> None:
    from argo_templating import build_pod_spec

    for document in documents.values():
        for template in pod_templates(document):
            spec = _baseline(document, template["name"])
            literal = build_pod_spec(template)  # the template's literal resources, which the patch replaces
            assert {k: _amount(_field_of(k), v) for k, v in _resource_leaves(spec).items()} == {
                k: _amount(_field_of(k), v) for k, v in _resource_leaves(literal).items()
            }


def test_caps_of_the_policy_hold_for_submit_parameters(documents: dict[str, dict[str, Any]]) -> None:
    document = documents["fresh-capped"]
    for parameter, ok, refused in [
        ("capped-cpu", "8", "8001m"),
        ("capped-memory", "16Gi", "16385"),
        ("capped-gpu", "2", "3"),
        ("capped-shared-memory", "4Gi", "4097"),
    ]:
        run_attempt(document, "capped", {parameter: ok})
        with pytest.raises(NodeFailure, match="Error applying PodSpecPatch") as failure:
            run_attempt(document, "capped", {parameter: refused})
        assert f"{parameter} must be from" in str(failure.value)


def _core_growth(mib: int, factor: float, cap: int | None, retries: int) -> int:
    """Memory for attempt ``retries`` after OOM kills only (the port's default ``lastRetry``) as the
    core computes it (``Resolved.with_memory_after`` of the count Argo makes, ``argo_oom_kills``)."""
    from allotment.oom import argo_oom_kills
    from allotment.policy import Policy

    @resources(memory=mib, retry_memory_factor=factor)
    def step() -> None: ...

    policy = Policy.from_mapping({"caps": {"memory": cap}}) if cap is not None else None
    resolved = CLEAN.resolve(spec_of(step), backend="kubernetes")
    grown: int = resolved.with_memory_after(argo_oom_kills(retries, True), policy).value("memory")
    return grown


@pytest.mark.parametrize("given", ["8Gi", "8192", "3000", "1G", "12345Mi", "16Gi"])
def test_memory_grows_per_oom_killed_retry_as_the_core_computes_it(given: str, documents: dict[str, dict[str, Any]]) -> None:
    mib = math.ceil(parse_quantity(given) / MIB) if not given.isdigit() else int(given)
    for document_id, template, factor, cap in (("fresh", "full", 2.0, None), ("fresh-capped", "capped", 1.5, CAPS["memory"])):
        document = documents[document_id]
        for retries in range(4):
            spec = run_attempt(document, template, {f"{template}-memory": given}, retries).pod_spec
            amounts = only_resources_changed(_baseline(document, template, retries), spec)
            assert _amounts_of("memory", amounts) == {_core_growth(mib, factor, cap, retries)}, (document_id, given, retries)


def test_compiled_memory_grows_as_the_core_computes_it(documents: dict[str, dict[str, Any]]) -> None:
    document = documents["overrides_and_retries:overrides-and-retries-"]
    for retries in range(4):
        memory = _amounts_of("memory", only_resources_changed(_baseline(document, "report"), _baseline(document, "report", retries)))
        assert memory == {_core_growth(3000, 1.25, None, retries)}


# -- fuzz ----------------------------------------------------------------------------------------------

_QUANTITY_PIECES = st.sampled_from(
    ["", "+", "-", ".", "0", "1", "9", "e", "E", "e-", "Ki", "Mi", "Gi", "Ei", "m", "n", "k", "G", "i", " ", "_", "x"]
)
values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789.eE+-KMGTPEikmnu", max_size=24),
    st.lists(_QUANTITY_PIECES, max_size=8).map("".join),
    st.tuples(st.sampled_from([c.value for c in CATALOGUE if len(c.value) < 200]), st.text(max_size=8)).map("".join),
    st.integers(-(2**70), 2**70).map(str),
    # quantities (mostly valid), so that acceptance is exercised too
    st.from_regex(r"\A\+?([0-9]{1,8}(\.[0-9]{0,4})?|\.[0-9]{1,4})([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]{1,3})?\Z"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@dataclass(frozen=True)
class Fuzzed:
    document: dict[str, Any]
    baseline: dict[str, Any]


@pytest.fixture(scope="module")
def fuzzed() -> Fuzzed:
    """A small template with every field (a small JSON text keeps the fuzz fast)."""

    @resources(cpu=1, memory="1Gi", gpu=1, disk="1Gi", shared_memory="64Mi", retry_memory_factor=2)
    @script(image="alpine")
    def fuzz() -> None:
        pass

    with Workflow(name="fuzz", entrypoint="main") as workflow:
        with Steps(name="main"):
            fuzz()
    document = render_workflow(workflow, CLEAN)
    assert set(parameter_defaults(document)) == {f"fuzz-{f.replace('_', '-')}" for f in FIELDS}
    return Fuzzed(document, _baseline(document, "fuzz"))


@settings(
    max_examples=100_000 if LONG else 2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(value=values, field=st.sampled_from(FIELDS), everywhere=st.booleans(), retries=st.integers(0, 3))
@example(value=BREAKOUT, field="cpu", everywhere=False, retries=0)
@example(value=HOSTPATH, field="memory", everywhere=True, retries=1)
def test_fuzz_any_parameter_value_fails_the_node_or_changes_only_resources(
    value: str, field: str, everywhere: bool, retries: int, fuzzed: Fuzzed
) -> None:
    """The invariant for any value; for one parameter at attempt 0 also the documented reading
    (:func:`_reading`): the same amount, or a node failure where it refuses the value."""
    submitted = {f"fuzz-{f.replace('_', '-')}": value for f in FIELDS} if everywhere else {f"fuzz-{field.replace('_', '-')}": value}
    single = not everywhere and retries == 0
    reading = _reading(field, value) if single else None
    try:
        spec = run_attempt(fuzzed.document, "fuzz", submitted, retries).pod_spec
    except NodeFailure as e:
        assert e.stage == "Error applying PodSpecPatch", e
        assert reading is None or reading.may_fail, (field, value, reading)
        event("node fails")
        return
    amounts = only_resources_changed(fuzzed.baseline, spec)
    if reading is not None:
        (got,) = _amounts_of(field, amounts)
        assert reading.amount is not None and abs(got - reading.amount) <= reading.slack, (field, value, got, reading)
    event("accepted")


@dataclass(frozen=True)
class Reading:
    """The documented reading of a value: ``amount`` in exact arithmetic (None: refused);
    ``slack``: how far float64 may move it (argo/README.md: a decimal fraction that is a whole
    MiB can read one above; digits beyond float64's 15-17 are lost); ``may_fail``: whether a
    node failure is right too (refused, or within ``slack`` of the range's ends, or an exponent
    form that float64 reads as 0)."""

    amount: int | None
    slack: int
    may_fail: bool


def _reading(field: str, value: str) -> Reading:
    import re

    from allotment.argo.retry import CPU, GPU_COUNT, MAX_LENGTH, PLAIN_MIB, QUANTITY
    from allotment.quantity import QuantityError

    refused = Reading(None, 0, True)
    if field == "cpu":
        if not re.fullmatch(CPU.strip("^$"), value):
            return refused
        millicores = int(value[:-1]) if value.endswith("m") else int(Decimal(value) * 1000)
        return Reading(millicores, 0, False) if 1 <= millicores <= MAX_MILLICORES else refused
    if field == "gpu":
        return Reading(int(value), 0, False) if re.fullmatch(GPU_COUNT.strip("^$"), value) and int(value) <= MAX_GPU else refused
    if len(value) > MAX_LENGTH:
        return refused
    try:
        if re.fullmatch(PLAIN_MIB.strip("^$"), value):
            mib = Decimal(value)
        elif re.fullmatch(QUANTITY.strip("^$"), value):
            mib = parse_quantity(value.lstrip("+")) / MIB
        else:
            return refused
    except QuantityError:  # an exponent beyond ±1000: float64 reads 0 or overflows, refused either way
        return refused
    whole = math.ceil(mib)
    slack = 1 if any(c in value for c in ".eE") or sum(c.isdigit() for c in value) > 15 else 0
    underflow = mib > 0 and value[-1:].isdigit() and float(value) == 0  # an exponent form below float64's least: 0
    in_range = 1 <= whole <= MAX_MIB
    near_edge = whole - slack < 1 or whole + slack > MAX_MIB
    return Reading(whole if in_range or near_edge else None, slack, not in_range or near_edge or underflow)
