"""The real task execution path: ``dag.test()`` on SQLite runs allotment's KubernetesPodOperator up
to the Kubernetes API, and the pod body it sends carries the run's conf override and the
memory growth of the retry; a bad conf fails the task before any pod request, with the reason
in the task log.

Offline (always), the Kubernetes API server is the one thing replaced: a stand-in
(``fake_kube_api.py``) that records the pod body and refuses to run it. With ``KUBECONFIG``
naming a real cluster, the same scenarios run against that cluster (busybox pods that exit 1).
Each variant runs every scenario in one subprocess with an environment of its own (a fresh
AIRFLOW_HOME and SQLite database, the e2e DAG folder, the example policy), so nothing leaks
into this test process.
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


def _run(tmp_path: Path, *, fake: bool, kubeconfig: str | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    scenarios = [{"name": "override_and_retry", "conf": GOOD}] + [{"name": name, "conf": conf} for name, (conf, _) in BAD.items()]
    scenarios += [{"name": name, "dag_id": dag_id, "conf": conf} for name, (dag_id, conf) in PATHS.items()]
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


def test_pod_body_carries_the_conf_override_and_the_retry_growth(offline: tuple[dict[str, dict[str, Any]], dict[str, str]]) -> None:
    results, logs = offline
    run = results["override_and_retry"]
    assert run["tis"]["crunch"] == {"state": "failed", "try_number": 2}  # both tries reached the API
    assert run["sent"] == run["received"]  # what the kubernetes client sent is what the API server got
    assert [_memory(body) for body in run["received"]] == [("96Mi", "96Mi"), ("192Mi", "192Mi")]  # conf 96Mi, then x2
    assert [body["metadata"]["labels"]["try_number"] for body in run["received"]] == ["1", "2"]
    for body in run["received"]:
        assert body["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
        check_pod(body)
    log = logs["override_and_retry"]
    assert "allotment:   memory 96Mi from with dag_run.conf['allotment']['tasks']['crunch'] 'memory=96Mi'" in log
    assert "try 2: memory 96Mi -> 192Mi (retry_memory_factor 2.0)" in log
    assert REFUSAL in log


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
    assert [_memory(body) for body in by_name["override_and_retry"]["sent"]] == [("96Mi", "96Mi"), ("192Mi", "192Mi")]
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
