"""Airflow runtime input is hostile (issue 9, scopes 3 and 4): the Airflow half of the injection
catalogue.

Every payload below is a run's ``dag_run.conf`` (or, for the params table, a run's value of a
param that the DAG renders into ``container_resources``). Each runs through the real operators:

* allotment's **KubernetesPodOperator**, the way it executes: its template fields rendered
  (``render_template_fields``), then ``resolve_at_execute`` (what ``execute`` does before any pod
  request) and ``build_pod_request_obj`` with the run's context;
* allotment's **BatchOperator**, ``execute`` against a moto server (the SubmitJob request recorded).

Expected outcome per payload: either the task fails for good (``AirflowFailException``: Airflow
does not retry it) with a message naming the field, before any pod request or AWS API call; or
the pod / SubmitJob request differs from the one without the payload only in resource values
(container resources, GPU tolerations and node labels, the ``/dev/shm`` size; Batch's
``resourceRequirements``). Nothing reaches the image, command, arguments, env, volumes, service
account, security context, node name, namespace or labels, and no value is ever rendered by Jinja.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from af_helpers import POLICY, run_context, sanitize
from test_batch_operator import _operator, _register_base, endpoint, moto  # noqa: F401  (fixtures)

T = "@task"
"""Stands for the task's id in a payload (``grp.train`` for the pod operator, in a TaskGroup; ``train`` for Batch)."""

OK = "ok"

CATALOGUE: list[tuple[str, Any, str | tuple[str, str], dict[str, str]]] = [
    # (id, conf, outcome: OK or words the failure names, or (pod operator's, BatchOperator's) where they differ,
    #  expected values when OK: field -> shown)
    ("no-conf", {}, OK, {}),
    ("task-memory", {"allotment": {"tasks": {T: "memory=16Gi"}}}, OK, {"memory": "16Gi"}),
    ("task-fields", {"allotment": {"tasks": {T: {"memory": "12Gi", "cpu": 4}}}}, OK, {"memory": "12Gi", "cpu": "4"}),
    ("with-all", {"allotment": {"with": "memory=12Gi"}}, OK, {"memory": "12Gi"}),
    ("with-list", {"allotment": {"with": ["cpu=3", "memory=10Gi"]}}, OK, {"memory": "10Gi", "cpu": "3"}),
    (
        "duplicate-json-keys",
        json.loads('{"allotment": {"tasks": {"@task": "memory=2Gi", "@task": "memory=16Gi"}}}'),
        OK,
        {"memory": "16Gi"},
    ),
    ("other-keys-of-conf", {"image": "evil:latest", "allotment": {"tasks": {T: "memory=9Gi"}}}, OK, {"memory": "9Gi"}),
    (
        "gpu-vendor-key",
        {"allotment": {"tasks": {T: {"gpu": 1, "gpu_vendor": "example.com/gpu"}}}},
        (
            OK,
            "gpu_vendor='example.com/gpu' from with dag_run.conf['allotment']['tasks']['train'] 'gpu=1,gpu_vendor=example.com/gpu' "
            "is not available on AWS Batch (ec2)",
        ),
        {"gpu": "1"},
    ),
    (
        "json-breakout",
        {"allotment": {"tasks": {T: 'memory=16Gi"}, "image": "evil'}}},
        '\'memory=16Gi"}, "image"\' is neither a backend nor a step name',
        {},
    ),
    (
        "yaml-breakout",
        {"allotment": {"tasks": {T: "memory=16Gi\nimage: evil"}}},
        "'memory=16Gi\\nimage' is neither a backend nor a step name",
        {},
    ),
    ("yaml-breakout-field", {"allotment": {"tasks": {T: {"memory": "16Gi\nimage: evil"}}}}, "memory='16Gi\\nimage: evil'", {}),
    ("newline-key", {"allotment": {"tasks": {T: {"memory\nimage": "evil"}}}}, "has key 'memory\\nimage', which is no resource field", {}),
    ("jinja-expression", {"allotment": {"tasks": {T: "memory={{ 7 * 7 }}Gi"}}}, "memory='{{ 7 * 7 }}Gi'", {}),
    (
        "jinja-statement",
        {"allotment": {"tasks": {T: {"memory": "{% if true %}64Gi{% endif %}"}}}},
        "memory='{% if true %}64Gi{% endif %}'",
        {},
    ),
    ("argo-marker", {"allotment": {"with": "memory={{inputs.parameters.m}}"}}, "memory='{{inputs.parameters.m}}'", {}),
    ("huge-text", {"allotment": {"tasks": {T: "memory=1e309"}}}, "memory='1e309'", {}),
    ("huge-number", {"allotment": {"tasks": {T: {"memory": 1e309}}}}, "memory=inf", {}),
    ("negative", {"allotment": {"tasks": {T: "memory=-1Gi"}}}, "memory='-1Gi'", {}),
    ("nan", {"allotment": {"tasks": {T: {"cpu": math.nan}}}}, "cpu=nan", {}),
    ("infinity", {"allotment": {"tasks": {T: {"cpu": math.inf}}}}, "cpu=inf", {}),
    ("arabic-indic-digit", {"allotment": {"tasks": {T: "cpu=٤"}}}, "cpu='٤'", {}),
    ("fullwidth-digits", {"allotment": {"with": "memory=１６Gi"}}, "memory='１６Gi'", {}),
    ("zero-width-space", {"allotment": {"tasks": {T: "memory=16Gi\u200b"}}}, "memory='16Gi\\u200b'", {}),
    ("hex", {"allotment": {"tasks": {T: "cpu=0x10"}}}, "cpu='0x10'", {}),
    ("bool", {"allotment": {"tasks": {T: {"gpu": True}}}}, "gpu=True", {}),
    ("nested-dict", {"allotment": {"tasks": {T: {"memory": {"$gt": 1}}}}}, "memory={'$gt': 1}", {}),
    ("nested-list", {"allotment": {"tasks": {T: {"memory": ["16Gi"]}}}}, "memory=['16Gi']", {}),
    ("with-a-dict", {"allotment": {"with": {"memory": "16Gi"}}}, "dag_run.conf['allotment']['with']={'memory': '16Gi'} is a dict", {}),
    ("block-a-list", {"allotment": ["memory=16Gi"]}, "dag_run.conf['allotment']=['memory=16Gi'] is a list", {}),
    ("long-string", {"allotment": {"tasks": {T: "memory=" + "9" * 5000}}}, "memory='99999", {}),
    ("image-key", {"allotment": {"image": "evil:latest"}}, "dag_run.conf['allotment'] has key 'image'", {}),
    ("task-image", {"allotment": {"tasks": {T: {"image": "evil:latest"}}}}, "has key 'image', which is no resource field", {}),
    ("task-env", {"allotment": {"tasks": {T: {"env": {"A": "1"}}}}}, "has key 'env', which is no resource field", {}),
    (
        "spec-service-account",
        {"allotment": {"tasks": {T: "memory=1Gi,service_account_name=root"}}},
        "unknown key 'service_account_name'",
        {},
    ),
    ("task-volumes", {"allotment": {"tasks": {T: {"volumes": []}}}}, "has key 'volumes', which is no resource field", {}),
    ("task-namespace", {"allotment": {"tasks": {T: {"namespace": "kube-system"}}}}, "has key 'namespace', which is no resource field", {}),
    ("retry-factor", {"allotment": {"with": "retry_memory_factor=16"}}, "unknown key 'retry_memory_factor'", {}),
    ("repeated-key", {"allotment": {"tasks": {T: "memory=2Gi,memory=16Gi"}}}, "key 'memory' is repeated", {}),
    ("set-not-allowed", {"allotment": {"set": "memory=1Gi"}}, "is a runtime 'set', which policy", {}),
    ("over-runtime-cap", {"allotment": {"tasks": {T: "memory=100Gi"}}}, "memory='100Gi' from with dag_run.conf", {}),
    ("gpu-over-runtime-cap", {"allotment": {"tasks": {T: {"gpu": 5}}}}, "gpu='5' from with dag_run.conf", {}),
    ("gpu-type-breakout", {"allotment": {"tasks": {T: {"gpu": 1, "gpu_type": "H100\nimage: evil"}}}}, "gpu_type='H100\\nimage: evil'", {}),
    ("gpu-type-not-allowed", {"allotment": {"tasks": {T: {"gpu": 1, "gpu_type": "V100"}}}}, "gpu_type='V100'", {}),
    ("shm-above-memory", {"allotment": {"tasks": {T: "shared_memory=32Gi"}}}, "shared_memory='32Gi'", {}),
    (
        "unknown-task",
        {"allotment": {"tasks": {"other\nimage": "memory=1Gi"}}},
        "names task 'other\\nimage', which this DAG does not have",
        {},
    ),
]


def _conf(conf: Any, task_id: str) -> Any:
    return json.loads(json.dumps(conf, allow_nan=True).replace(json.dumps(T), json.dumps(task_id)), parse_constant=float)


def _pod_operator() -> Any:
    import pendulum
    from airflow.sdk import DAG, TaskGroup
    from allotment.airflow import KubernetesPodOperator
    from kubernetes.client import models as k8s

    with DAG("hostile", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")), TaskGroup("grp"):
        op = KubernetesPodOperator(
            task_id="train",
            image="trainer:1.2",
            cmds=["python", "-m", "train"],
            arguments=["--epochs", "3"],
            env_vars={"MODE": "prod"},
            namespace="ml",
            labels={"team": "ml"},
            service_account_name="trainer",
            security_context={"runAsNonRoot": True},
            volumes=[k8s.V1Volume(name="data", empty_dir=k8s.V1EmptyDirVolumeSource())],
            volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data")],
            full_pod_spec=k8s.V1Pod(spec=k8s.V1PodSpec(node_name="node-1", containers=[k8s.V1Container(name="base")])),
            resources={"cpu": 2, "memory": "8Gi", "shared_memory": "1Gi"},
        )
        KubernetesPodOperator(task_id="other", image="busybox", namespace="ml")
    return op


def _without_resource_values(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod with what a spec decides taken out: container resources, GPU tolerations and node
    labels, the size of ``/dev/shm``; the random suffix of its name."""
    out = copy.deepcopy(pod)
    out["metadata"]["name"] = out["metadata"]["name"].rsplit("-", 1)[0]
    spec = out["spec"]
    for container in spec["containers"]:
        container.pop("resources", None)
    spec["tolerations"] = [t for t in spec.get("tolerations") or [] if "gpu" not in t["key"]]
    spec["nodeSelector"] = {k: v for k, v in (spec.get("nodeSelector") or {}).items() if "gpu" not in k}
    for volume in spec.get("volumes") or []:
        volume.get("emptyDir", {}).pop("sizeLimit", None)
    return out


def _shown(resources: dict[str, Any]) -> dict[str, str]:
    requests = resources.get("requests") or {}
    shown = {"memory": requests.get("memory"), "cpu": requests.get("cpu")}
    gpus = [v for k, v in requests.items() if k.endswith("/gpu")]
    if gpus:
        shown["gpu"] = gpus[0]
    return shown


def _attempt_pod(op: Any, conf: Any) -> dict[str, Any]:
    from allotment.airflow.config import active_settings
    from allotment.airflow.resolution import resolve_at_execute
    from allotment.airflow.wiring import pod_arguments

    task = op.prepare_for_execution()
    context = run_context(task, conf=conf)
    task.render_template_fields(context)
    resolve_at_execute(task, context, lambda r: pod_arguments(task, r, active_settings(), running=True), before="any pod request")
    return sanitize(task.build_pod_request_obj(context, dry_run=True))


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_POLICY", str(POLICY))


@pytest.mark.parametrize(("name", "conf", "outcome", "values"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_hostile_conf_through_the_pod_operator(policy: None, name: str, conf: Any, outcome: Any, values: dict[str, str]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    outcome = outcome[0] if isinstance(outcome, tuple) else outcome
    op = _pod_operator()
    baseline = _attempt_pod(op, {})
    conf = _conf(conf, op.task_id)
    if outcome != OK:
        with pytest.raises(AirflowFailException) as failed:  # Airflow never retries it
            _attempt_pod(op, conf)
        message = str(failed.value)
        assert message.startswith("allotment: step 'grp.train': "), message  # names the step, even for another task's entry
        assert outcome in message, message
        assert failed.value.__cause__ is None and failed.value.__suppress_context__
        return
    pod = _attempt_pod(op, conf)
    assert _without_resource_values(pod) == _without_resource_values(baseline)
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    expected = {**_shown(next(c for c in baseline["spec"]["containers"] if c["name"] == "base")["resources"]), **values}
    assert _shown(base["resources"]) == expected
    for field in ("image", "command", "args", "env", "volumeMounts"):
        assert base.get(field) == next(c for c in baseline["spec"]["containers"] if c["name"] == "base").get(field)


PARAMS: list[tuple[str, Any, str]] = [
    ("param-default", None, OK),
    ("param-value", "16Gi", OK),
    ("param-at-runtime-cap", "64Gi", OK),
    ("param-jinja", "{{ 7 * 7 }}Gi", "holds a Jinja template marker after templating"),
    ("param-jinja-statement", "{% raw %}64Gi{% endraw %}", "holds a Jinja template marker after templating"),
    ("param-yaml-breakout", "16Gi\nimage: evil", "limits.memory) is not a quantity"),
    ("param-huge", "1e309", "is more than any machine has"),
    ("param-negative", "-1", "is not a quantity"),
    ("param-unicode-digits", "١٦Gi", "is not a quantity"),
    ("param-list", ["16Gi"], "is not a quantity"),
    ("param-dict", {"a": 1}, "is not a quantity"),
    ("param-over-runtime-cap", "100Gi", "exceeds the cap memory <= 64Gi (runtime.caps"),
]


@pytest.mark.parametrize(("name", "value", "outcome"), PARAMS, ids=[p[0] for p in PARAMS])
def test_hostile_params_rendered_into_container_resources(policy: None, name: str, value: Any, outcome: str) -> None:
    """A DAG that renders a param into its own container_resources: the rendered value is read as
    runtime input (validated, policy-checked with runtime.caps) and never rendered again."""
    import pendulum
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import AirflowFailException
    from allotment.airflow import KubernetesPodOperator
    from allotment.airflow.config import active_settings
    from allotment.airflow.resolution import resolve_at_execute
    from allotment.airflow.wiring import pod_arguments
    from kubernetes.client import models as k8s

    with DAG("params", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), params={"memory": "8Gi"}):
        op = KubernetesPodOperator(
            task_id="train",
            image="trainer:1.2",
            namespace="ml",
            resources={"cpu": 1},
            container_resources=k8s.V1ResourceRequirements(limits={"memory": "{{ params.memory }}"}),
        )
    task = op.prepare_for_execution()
    context = run_context(task)
    context["params"] = {"memory": "8Gi" if value is None else value}  # a run's conf overrides a param (dag_run_conf_overrides_params)
    task.render_template_fields(context)
    if outcome != OK:
        with pytest.raises(AirflowFailException) as failed:
            resolve_at_execute(task, context, lambda r: pod_arguments(task, r, active_settings(), running=True), before="any pod request")
        assert str(failed.value).startswith("allotment: step 'train': ") and outcome in str(failed.value), str(failed.value)
        return
    resolve_at_execute(task, context, lambda r: pod_arguments(task, r, active_settings(), running=True), before="any pod request")
    pod = sanitize(task.build_pod_request_obj(context, dry_run=True))
    base = pod["spec"]["containers"][0]
    assert base["resources"]["limits"] == {"memory": context["params"]["memory"]}
    assert base["image"] == "trainer:1.2" and pod["metadata"]["namespace"] == "ml"


def _without_requirements(request: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    out.get("containerOverrides", {}).pop("resourceRequirements", None)
    return out


@pytest.mark.parametrize(("name", "conf", "outcome", "values"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_hostile_conf_through_the_batch_operator(
    policy: None, moto: Any, name: str, conf: Any, outcome: Any, values: dict[str, str]  # noqa: F811 (the fixture)
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    outcome = outcome[1] if isinstance(outcome, tuple) else outcome
    run = _operator(
        moto,
        job_definition=_register_base(moto),
        resources={"cpu": 2, "memory": "8Gi"},
        container_overrides={"command": ["python", "-m", "train"], "environment": [{"name": "MODE", "value": "prod"}]},
        tags={"team": "ml"},
    )
    run.execute()
    baseline = run.submitted[-1]
    conf = _conf(conf, run.op.task_id)
    if outcome != OK:
        before = len(run.calls)
        with pytest.raises(AirflowFailException) as failed:
            run.execute(conf=conf)
        message = str(failed.value)
        assert message.startswith("allotment: step 'train': ") and outcome in message, message
        assert run.calls[before:] == []  # no AWS Batch API call at all
        return
    run.execute(conf=conf)
    request = run.submitted[-1]
    assert _without_requirements(request) == _without_requirements(baseline)
    got = {e["type"]: e["value"] for e in request["containerOverrides"]["resourceRequirements"]}
    shown = {"cpu": got["VCPU"], "memory": f"{int(got['MEMORY']) // 1024}Gi"}
    if "GPU" in got:
        shown["gpu"] = got["GPU"]
    assert shown == {"cpu": "2", "memory": "8Gi", **values}


def test_an_error_in_one_tasks_entry_names_that_task_whichever_task_reads_it(policy: None) -> None:
    """The red-team case: ``tasks.grp.train="cpu=٤"`` names step 'grp.train', also when the task
    that fails on it (every task checks the whole conf) is another one."""
    from airflow.sdk.exceptions import AirflowFailException

    other = _pod_operator().dag.get_task("grp.other")
    with pytest.raises(AirflowFailException) as failed:
        _attempt_pod(other, {"allotment": {"tasks": {"grp.train": "cpu=٤"}}})
    assert str(failed.value) == (
        "allotment: step 'grp.train': cpu='٤' from dag_run.conf['allotment']['tasks']['grp.train'] 'cpu=٤' is not a CPU quantity; "
        "use a number of cores (4, 0.5, '2') or millicores ('500m')\n    cpu=٤\n        ^"
    )
