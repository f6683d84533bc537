"""A run's conf overrides and the memory growth after an OOM kill (issue 12) reach the
KubernetesExecutor's worker pod (issue 10, scope 3), through Airflow's own scheduler-side
mechanism: the task instances of a run are created with ``get_or_create_dagrun`` (so the
registered ``task_instance_mutation_hook`` runs with the ``dag_run``), and each try's pod is
built and sent by the executor itself (``KubernetesExecutor.execute_async`` then
``AirflowKubernetesScheduler.run_next``, which calls ``PodGenerator.construct_pod`` and the pod
mutation hooks) to the stand-in API server (``fake_kube_api.py``). Everything runs in a subprocess with an environment of its own
(``run_executor_e2e.py``). A bad conf leaves the DAG file's pod and fails the task for good when
it starts (``dag.test()`` runs the task's code, and its pre-execute check, in-process).
"""

from __future__ import annotations

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

SCENARIOS = [
    {"name": "parsed", "conf": {}},
    {"name": "conf", "conf": {"allotment": {"tasks": {"crunch": "memory=128Mi"}}}},
    {"name": "conf_with", "conf": {"allotment": {"with": "kubernetes:cpu=1,memory=100Mi"}}},
    {"name": "bad_key", "conf": {"allotment": {"tasks": {"crunch": {"image": "evil:latest"}}}}, "dag_test": True},
    {"name": "over_cap", "conf": {"allotment": {"tasks": {"crunch": "memory=100Gi"}}}, "dag_test": True},
    # issue 12: how the stand-in API server ends each of crunch's worker pods
    {"name": "oom", "conf": {}, "plan": ["oom"]},
    {"name": "error", "conf": {}, "plan": ["error"]},
    {"name": "oom_evicted", "conf": {}, "plan": ["oom", "evicted"], "tries": 3},
    {"name": "conf_oom", "conf": {"allotment": {"tasks": {"crunch": "memory=128Mi"}}}, "plan": ["oom", "oom"], "tries": 3},
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("executor")
    home = tmp / "home"
    home.mkdir()
    (tmp / "scenarios.json").write_text(json.dumps({"dag_id": "allotment_worker", "task_ids": ["crunch", "plain"], "scenarios": SCENARIOS}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "AIRFLOW_HOME", "KUBECONFIG", "PYTHONPATH"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "executor_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor",
            "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": "airflow",
            "AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
            "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": "apache/airflow",
            "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": "3.3.2",
            "AIRFLOW__ALLOTMENT__POLICY": str(POLICY),
        }
    )
    out = subprocess.run(
        [sys.executable, str(HERE / "run_executor_e2e.py"), str(tmp / "scenarios.json"), str(tmp / "results.json")],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
    results = {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}
    output = out.stdout + out.stderr
    tested = dict(re.findall(r"=== dag.test (\w+)\n(.*?)(?==== dag.test |\Z)", output, flags=re.S))
    scheduled = dict(re.findall(r"=== executor (\w+)\n(.*?)(?==== executor |=== dag.test |\Z)", output, flags=re.S))
    for name, result in results.items():
        result["output"] = output
        result["scheduler_log"] = scheduled.get(name, "")
        result["test_log"] = tested.get(name, "")
    return results


def _pods(run: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [body for body in run["received"] if body["metadata"]["labels"]["task_id"] == task_id]


def _resources(body: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in body["spec"]["containers"] if c["name"] == "base").get("resources") or {}


@pytest.mark.parametrize(
    ("name", "tries"),
    [
        ("parsed", [("250m", "96Mi"), ("250m", "96Mi")]),  # the DAG file's spec; try 1's pod was refused: no OOM kill
        ("conf", [("250m", "128Mi"), ("250m", "128Mi")]),  # the run's conf
        ("conf_with", [("1", "100Mi"), ("1", "100Mi")]),
    ],
)
def test_the_worker_pod_the_executor_builds_carries_the_run_and_the_try(
    runs: dict[str, dict[str, Any]], name: str, tries: list[tuple[str, str]]
) -> None:
    run = runs[name]
    assert run["statuses"] == ["403"] * 4  # every pod reached the API server (which refuses to run it)
    pods = _pods(run, "crunch")
    assert [body["metadata"]["labels"]["try_number"] for body in pods] == ["1", "2"]
    for body, (cpu, memory) in zip(pods, tries, strict=True):
        assert _resources(body) == {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}
        assert "allotment/run" not in (body["metadata"].get("annotations") or {})  # taken off by the pod mutation hook
        assert body["metadata"]["annotations"]["try_number"] == body["metadata"]["labels"]["try_number"]
        check_pod({"apiVersion": "v1", "kind": "Pod", **body})  # the executor's body names neither; the API server knows
    for body in _pods(run, "plain"):  # a task without a spec: the executor's pod as it is
        assert _resources(body) == {}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad_key", "step 'crunch': dag_run.conf['allotment']['tasks']['crunch'] has key 'image', which is no resource field"),
        (
            "over_cap",
            "step 'crunch': memory='100Gi' from with dag_run.conf['allotment']['tasks']['crunch'] 'memory=100Gi' exceeds the "
            "cap memory <= 64Gi (runtime.caps",
        ),
    ],
)
def test_a_bad_conf_leaves_the_parsed_pod_and_fails_the_task_for_good(runs: dict[str, dict[str, Any]], name: str, message: str) -> None:
    run = runs[name]
    pods = _pods(run, "crunch")
    assert [_resources(body)["limits"]["memory"] for body in pods] == ["96Mi", "96Mi"]  # nothing from the run
    assert all("evil" not in json.dumps(body) for body in pods)
    assert f"allotment: task crunch of run manual__{name} keeps the worker pod of its DAG file: {message}" in run["output"]
    assert run["tis"]["crunch"] == {"state": "failed", "try_number": 1}  # failed for good: no retry
    assert run["tis"]["plain"]["state"] == "upstream_failed"
    log = run["test_log"]
    assert "allotment: the task fails before the task's code runs: " + message in log
    assert "crunching" not in log


@pytest.mark.parametrize(
    ("name", "memory", "ends"),
    [
        ("oom", ["96Mi", "192Mi"], [True]),  # try 1's worker OOMKilled: try 2's worker pod grown
        ("error", ["96Mi", "96Mi"], [False]),  # a plain error: the same memory
        ("oom_evicted", ["96Mi", "192Mi", "192Mi"], [True, False]),  # OOM, eviction (exit code 137): still grown once
        ("conf_oom", ["128Mi", "256Mi", "512Mi"], [True, True]),  # the run's conf grows, once per OOM kill
    ],
)
def test_the_worker_pod_grows_only_after_an_oom_kill_of_an_earlier_worker(
    runs: dict[str, dict[str, Any]], name: str, memory: list[str], ends: list[bool]
) -> None:
    """Issue 12 on the KubernetesExecutor: the scheduler's pod mutation hook reads the earlier tries'
    worker pods (kept by the executor when they fail), keeps their ends in the task state store,
    and sizes the next worker pod once per OOM kill."""
    run = runs[name]
    pods = _pods(run, "crunch")
    assert [body["metadata"]["labels"]["try_number"] for body in pods] == [str(n) for n in range(1, len(memory) + 1)]
    assert [_resources(body)["limits"]["memory"] for body in pods] == memory
    assert [_resources(body)["requests"]["memory"] for body in pods] == memory
    for body in pods:
        check_pod({"apiVersion": "v1", "kind": "Pod", **body})
    tries = run["record"]["tries"]
    assert [tries[str(n)]["end"]["oom_killed"] for n in range(1, len(ends) + 1)] == ends
    assert tries["1"]["by"].startswith("worker pod allotment-worker-crunch-")
    log = run["scheduler_log"]
    assert "allotment: task crunch, worker pod of try 2: earlier try 1: " + ("an OOM kill" if ends[0] else "no OOM kill") in log
    if True in ends:
        assert "container base terminated: OOMKilled, exit code 137" in log
        kills = ends.count(True)
        assert f"allotment: task crunch, worker pod of try {len(memory)}: try {len(memory)}: memory " in log
        assert f"after {kills} OOM kill" in log
    else:
        assert "OOM kill of earlier tries" not in log
