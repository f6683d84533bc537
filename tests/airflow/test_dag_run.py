"""The real task execution path: ``dag.test()`` on SQLite runs allotment's KubernetesPodOperator up
to the Kubernetes API, and the pod body it sends carries the run's conf override; memory grows
only after a try that ended ``OOMKilled`` (issue 12), learned from the pod and kept across tries
in Airflow's task state store; a pod creation that fails (a 500, a lost response) retries with
the same spec and leaves no pod running (issue 9, scope 7); a bad conf fails the task before any
pod request, with the reason in the task log.

Offline (always), the Kubernetes API server is the one thing replaced: a stand-in
(``fake_kube_api.py``) that records the pod body and refuses to run it. With ``KUBECONFIG``
naming a real cluster, the same scenarios run against that cluster (busybox pods that exit 1).
Each variant runs every scenario in one subprocess with an environment of its own (a fresh
AIRFLOW_HOME and SQLite database, the e2e DAG folder, the example policy), so nothing leaks
into this test process.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from af_helpers import POLICY, check_pod

HERE = Path(__file__).resolve().parent
REFUSAL = "allotment test API: pod body recorded; this server runs no pods"

GOOD = {"allotment": {"tasks": {"crunch": "memory=96Mi"}}}
BAD = {
    "image_key": ({"allotment": {"image": "evil:latest"}}, "dag_run.conf['allotment'] has key 'image'"),
    "task_image_key": ({"allotment": {"tasks": {"crunch": {"image": "evil:latest"}}}}, "has key 'image', which is no resource field"),
    "over_cap": (
        {"allotment": {"tasks": {"crunch": "memory=100Gi"}}},
        "memory='100Gi' from with dag_run.conf['allotment']['tasks']['crunch'] 'memory=100Gi' exceeds the cap memory <= 64Gi",
    ),
    "malformed_with": ({"allotment": {"with": "kubernetes:memory"}}, "'memory' is not key=value"),
    "not_a_mapping": ({"allotment": "memory=1Gi"}, "dag_run.conf['allotment']='memory=1Gi' is a str, not a mapping"),
}


PATHS = {
    "mapped": ("allotment_mapped", {}),
    "mapped_conf": ("allotment_mapped", {"allotment": {"tasks": {"shard": "memory=128Mi"}}}),
    "template": ("allotment_template", {"mem": "88Mi"}),
    "template_over_cap": ("allotment_template", {"mem": "100Gi"}),
}
"""Issue 10's paths (``e2e_dags/allotment_paths.py``): name -> (dag_id, run conf)."""

ENDS = {
    "oom_then_ok": ("allotment_oom", ["oom", "succeed"], ["64Mi", "128Mi"]),
    "error_then_ok": ("allotment_oom", ["error", "succeed"], ["64Mi", "64Mi"]),
    "evicted_then_ok": ("allotment_oom", ["evicted", "succeed"], ["64Mi", "64Mi"]),
    "oom_evicted_then_third": ("allotment_oom", ["oom", "evicted", "succeed"], ["64Mi", "128Mi", "128Mi"]),
    "oom_twice": ("allotment_oom", ["oom", "oom", "succeed"], ["64Mi", "128Mi", "256Mi"]),
    "decorated_oom": ("allotment_oom_decorated", ["oom", "succeed"], ["64Mi", "128Mi"]),
}
"""Issue 12 (``e2e_dags/allotment_oom.py``): name -> (dag_id, how the stand-in API server ends each
try's pod, the memory each try's pod asks for)."""

FAULTS = {
    "lost_create": ["lost", "succeed"],  # the pod is created, the answer is lost (500); the retried create gets 409
    "api_500": ["500", "500", "succeed"],  # nothing created; the client retries once ([workers] api_retries=2)
}
"""Issue 9, scope 7: pod creation fails, then Airflow's retry (``allotment_oom``, the KubernetesPodOperator)."""


def _run(tmp_path: Path, *, fake: bool, kubeconfig: str | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    scenarios = [{"name": "override_and_retry", "conf": GOOD}] + [{"name": name, "conf": conf} for name, (conf, _) in BAD.items()]
    scenarios += [{"name": name, "dag_id": dag_id, "conf": conf} for name, (dag_id, conf) in PATHS.items()]
    if fake:
        scenarios += [{"name": name, "dag_id": dag_id, "conf": {}, "plan": plan} for name, (dag_id, plan, _) in ENDS.items()]
        scenarios += [{"name": name, "dag_id": "allotment_oom", "conf": {}, "plan": plan} for name, plan in FAULTS.items()]
    config = {"fake": fake, "migrate": True, "dag_id": "allotment_e2e", "scenarios": scenarios}
    (tmp_path / "scenarios.json").write_text(json.dumps(config))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "AIRFLOW_HOME", "KUBECONFIG", "PYTHONPATH"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "e2e_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__ALLOTMENT__POLICY": str(POLICY),
        # The provider retries a failed Kubernetes API call ([workers] api_retries, default 5, with
        # up to 15 s between): once, at once, here.
        "AIRFLOW__WORKERS__API_RETRIES": "2",
        "AIRFLOW__WORKERS__API_RETRY_WAIT_MIN": "0",
        "AIRFLOW__WORKERS__API_RETRY_WAIT_MAX": "0",
    })
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
        if os.environ.get("ALLOTMENT_E2E_NAMESPACE"):  # where the real cluster lets the test create pods
            env["ALLOTMENT_E2E_NAMESPACE"] = os.environ["ALLOTMENT_E2E_NAMESPACE"]
    out = subprocess.run(
        [sys.executable, str(HERE / "run_dag_e2e.py"), str(tmp_path / "scenarios.json"), str(tmp_path / "results.json")],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=540, check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    logs = dict(re.findall(r"=== scenario (\w+)\n(.*?)(?==== scenario |\Z)", out.stdout + out.stderr, flags=re.S))
    return json.loads((tmp_path / "results.json").read_text()), logs


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    results, logs = _run(tmp_path_factory.mktemp("dagrun"), fake=True)
    return {r["name"]: r for r in results}, logs


def _memory(body: dict[str, Any]) -> tuple[str, str]:
    resources = body["spec"]["containers"][0]["resources"]
    return resources["requests"]["memory"], resources["limits"]["memory"]


def test_pod_body_carries_the_conf_override_and_a_refused_pod_is_no_oom_kill(
    offline: tuple[dict[str, dict[str, Any]], dict[str, str]],
) -> None:
    results, logs = offline
    run = results["override_and_retry"]
    assert run["tis"]["crunch"] == {"state": "failed", "try_number": 2}  # both tries reached the API
    assert run["sent"] == run["received"]  # what the kubernetes client sent is what the API server got
    # conf 96Mi; the API server refused try 1's pod (403): no OOM kill, so try 2 asks for the same (was: 192Mi)
    assert [_memory(body) for body in run["received"]] == [("96Mi", "96Mi"), ("96Mi", "96Mi")]
    assert [body["metadata"]["labels"]["try_number"] for body in run["received"]] == ["1", "2"]
    for body in run["received"]:
        assert body["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
        check_pod(body)
    log = logs["override_and_retry"]
    assert "allotment:   memory 96Mi from with dag_run.conf['allotment']['tasks']['crunch'] 'memory=96Mi'" in log
    assert "allotment: note: earlier try 1: no OOM kill (pod crunch-" in log and "no pod ran: creating it failed" in log
    assert "after 1 OOM kill" not in log
    assert REFUSAL in log


def _tries(run: dict[str, Any]) -> list[str]:
    """The memory each try's pod asked for (one per try: the pods of a try's retried creates are the same)."""
    by_try: dict[str, str] = {}
    for body in run["received"]:
        requests, limits = _memory(body)
        assert requests == limits
        by_try.setdefault(body["metadata"]["labels"]["try_number"], requests)
    return [by_try[n] for n in sorted(by_try, key=int)]


@pytest.mark.parametrize("name", sorted(ENDS))
def test_memory_grows_only_after_an_oom_kill(offline: tuple[dict[str, dict[str, Any]], dict[str, str]], name: str) -> None:
    """Issue 12: try 1 OOMKilled -> try 2 grown; a plain error or an eviction (exit code 137, not
    OOMKilled) -> the same memory; OOM, eviction, third try -> still grown once."""
    results, logs = offline
    _, plan, memory = ENDS[name]
    run = results[name]
    assert run["state"] == "success" and run["plan_left"] == []
    (ti,) = run["tis"].values()
    assert ti == {"state": "success", "try_number": len(plan)}
    assert _tries(run) == memory
    assert run["left"] == {}  # every pod deleted (on_finish_action="delete_pod")
    for body in run["received"]:
        check_pod(body)
    log = logs[name]
    for number, end in enumerate(plan[:-1], 1):
        said = f"allotment: note: earlier try {number}: " + ("an OOM kill" if end == "oom" else "no OOM kill")
        assert said in log, said
    grown = [n for n, (a, b) in enumerate(itertools.pairwise(memory), 2) if a != b]
    for number in grown:
        kills = plan[: number - 1].count("oom")
        assert f"try {number}: memory 64Mi -> {memory[number - 1]} after {kills} OOM kill" in log
    if "oom" in plan:
        assert "container base terminated: OOMKilled, exit code 137" in log
    if "evicted" in plan:
        assert "container base terminated: ContainerStatusUnknown, exit code 137 (pod Evicted" in log


def test_a_lost_pod_creation_retries_with_the_same_spec_and_leaves_no_pod_running(
    offline: tuple[dict[str, dict[str, Any]], dict[str, str]],
) -> None:
    """Issue 9, scope 7: the API server admits try 1's pod but its answer is lost (a 500; the
    client's retried create gets 409). Try 1 fails; the pod it cannot see is deleted, not left
    running beside try 2; the failure is no OOM kill, so try 2 sends the same spec."""
    results, logs = offline
    run = results["lost_create"]
    assert run["state"] == "success" and run["plan_left"] == []
    assert run["tis"]["grow"] == {"state": "success", "try_number": 2}
    first, retried, second = run["received"]
    assert first == retried and first["metadata"]["labels"]["try_number"] == "1"  # the client's own retry of the create
    assert second["metadata"]["labels"]["try_number"] == "2" and second["metadata"]["name"] != first["metadata"]["name"]
    assert second["spec"]["containers"][0]["resources"] == first["spec"]["containers"][0]["resources"]  # the same spec
    assert _memory(second) == ("64Mi", "64Mi")
    assert first["metadata"]["name"] in run["deleted"]
    assert run["left"] == {}  # nothing left running
    log = logs["lost_create"]
    assert f"allotment: pod {first['metadata']['name']} exists although this try did not see it start" in log
    assert "earlier try 1: no OOM kill" in log and "its pod was admitted although creating it failed, and was deleted" in log


def test_an_api_server_error_on_pod_creation_retries_with_the_same_spec(
    offline: tuple[dict[str, dict[str, Any]], dict[str, str]],
) -> None:
    """Issue 9, scope 7: 500s on pod creation (nothing created) fail try 1; try 2 sends the same spec."""
    results, logs = offline
    run = results["api_500"]
    assert run["state"] == "success" and run["tis"]["grow"] == {"state": "success", "try_number": 2}
    assert [b["metadata"]["labels"]["try_number"] for b in run["received"]] == ["1", "1", "2"]
    assert {json.dumps(b["spec"], sort_keys=True) for b in run["received"]} == {json.dumps(run["received"][0]["spec"], sort_keys=True)}
    assert _tries(run) == ["64Mi", "64Mi"]
    assert run["left"] == {}
    assert "earlier try 1: no OOM kill" in logs["api_500"] and "no pod ran: creating it failed" in logs["api_500"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_conf_fails_before_any_pod_request(offline: tuple[dict[str, dict[str, Any]], dict[str, str]], name: str) -> None:
    results, logs = offline
    run = results[name]
    assert run["state"] == "failed"
    assert run["tis"]["crunch"] == {"state": "failed", "try_number": 1}  # failed for good: no retry
    assert run["sent"] == [] and run["received"] == []
    log = logs[name]
    assert "allotment: the task fails before any pod request: step 'crunch':" in log
    assert BAD[name][1] in log
    assert "Building pod" not in log


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="KUBECONFIG is not set: no real cluster to run the DAG against")
def test_dag_run_against_a_real_cluster(tmp_path: Path) -> None:
    results, logs = _run(tmp_path, fake=False, kubeconfig=os.environ["KUBECONFIG"])
    by_name = {r["name"]: r for r in results}
    # busybox exits 1: no OOM kill, so the retry asks for the same memory
    assert [_memory(body) for body in by_name["override_and_retry"]["sent"]] == [("96Mi", "96Mi"), ("96Mi", "96Mi")]
    for name in BAD:
        assert by_name[name]["sent"] == []
        assert BAD[name][1] in logs[name]


def _by_task(run: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The pod bodies the API server received, by (task_id, map_index label)."""
    return {(b["metadata"]["labels"]["task_id"], b["metadata"]["labels"].get("map_index", "-1")): b for b in run["received"]}


def test_every_map_index_pod_carries_the_spec(offline: tuple[dict[str, dict[str, Any]], dict[str, str]]) -> None:
    results, logs = offline
    for name, memory in (("mapped", "64Mi"), ("mapped_conf", "128Mi")):  # a conf entry for the task id: every index
        run = results[name]
        assert run["sent"] == run["received"]
        pods = _by_task(run)
        assert sorted(pods) == [("score", "0"), ("score", "1"), ("shard", "0"), ("shard", "1"), ("shard", "2")]
        for (task_id, index), body in pods.items():
            resources = body["spec"]["containers"][0]["resources"]
            expected = memory if task_id == "shard" else "80Mi"
            assert resources == {"requests": {"cpu": "100m", "memory": expected}, "limits": {"memory": expected}}, (name, task_id, index)
            check_pod(body)
        assert [body["spec"]["containers"][0]["args"] for (t, _), body in sorted(pods.items()) if t == "shard"] == [["1"], ["2"], ["3"]]
        assert set(run["tis"]) == {"shard[0]", "shard[1]", "shard[2]", "score[0]", "score[1]"}
    assert "allotment:   memory 128Mi from with dag_run.conf['allotment']['tasks']['shard'] 'memory=128Mi'" in logs["mapped_conf"]


def test_a_pod_template_and_a_templated_container_resources_on_the_real_path(
    offline: tuple[dict[str, dict[str, Any]], dict[str, str]],
) -> None:
    results, logs = offline
    pods = _by_task(results["template"])
    templated = pods[("templated", "-1")]
    assert templated["spec"]["containers"][0]["resources"]["limits"] == {"memory": "96Mi"}  # the template's 96Mi over 64Mi
    assert templated["spec"]["tolerations"] == [{"effect": "NoSchedule", "key": "dedicated", "operator": "Exists"}]
    assert templated["metadata"]["labels"]["from-template"] == "yes"
    assert pods[("jinja", "-1")]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "88Mi"}  # rendered from the conf
    for body in pods.values():
        check_pod(body)
    log = logs["template"]
    assert "allotment:   memory 96Mi from pod template pod_template_file" in log
    assert "allotment:   memory 88Mi from container_resources= on KubernetesPodOperator (templated)" in log
    # through Jinja from the conf, over the runtime cap: that task fails for good before any pod request
    over = results["template_over_cap"]
    assert over["tis"]["jinja"] == {"state": "failed", "try_number": 1}
    assert sorted(_by_task(over)) == [("templated", "-1")]
    assert (
        "allotment: the task fails before any pod request: step 'jinja': memory='100Gi' from container_resources= on "
        "KubernetesPodOperator (templated) exceeds the cap memory <= 64Gi (runtime.caps in policy" in logs["template_over_cap"]
    )
