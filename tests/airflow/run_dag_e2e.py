"""Run the end-to-end DAG with ``dag.test()`` for several run confs, in a process of its own.

Usage: ``python run_dag_e2e.py SCENARIOS.json RESULTS.json`` (each scenario names its ``dag_id``,
else the file's) with the environment already set
(AIRFLOW_HOME on a migrated SQLite database, AIRFLOW__CORE__DAGS_FOLDER holding the DAG,
AIRFLOW__ALLOTMENT__POLICY). With ``"fake": true`` the Kubernetes API server is replaced by
:class:`fake_kube_api.FakeKubeAPI` (KUBECONFIG points at it); otherwise KUBECONFIG names a real
cluster. Every pod body the kubernetes client sends is recorded by wrapping
``CoreV1Api.create_namespaced_pod`` (the call itself still happens). Results: per scenario the
run state, each task instance's state and try number (``task[i]`` for map index i), the pod
bodies, and the task logs. A scenario's ``plan`` says how the stand-in API server ends each pod it
is asked to create (:class:`fake_kube_api.FakeKubeAPI`); then ``left`` holds the pods that still
exist, ``deleted`` those deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def main(scenarios_file: str, results_file: str) -> None:
    config = json.loads(Path(scenarios_file).read_text())
    stack = contextlib.ExitStack()
    fake = None
    if config["fake"]:
        from fake_kube_api import FakeKubeAPI

        fake = stack.enter_context(FakeKubeAPI())
        os.environ["KUBECONFIG"] = str(fake.write_kubeconfig(Path(os.environ["AIRFLOW_HOME"]) / "kubeconfig.json"))

    if config.get("migrate"):
        from airflow.utils import db

        db.upgradedb()  # a fresh SQLite database (``airflow db migrate``)

    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import CoreV1Api

    sent: list[dict[str, Any]] = []
    original = CoreV1Api.create_namespaced_pod

    def recording(self: Any, namespace: str, body: Any, **kwargs: Any) -> Any:
        sent.append(self.api_client.sanitize_for_serialization(body))
        return original(self, namespace, body, **kwargs)

    CoreV1Api.create_namespaced_pod = recording  # type: ignore[method-assign]
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    results = []
    with stack:
        for scenario in config["scenarios"]:
            sent.clear()
            if fake is not None:
                fake.created.clear()
                fake.pods.clear()
                fake.deleted.clear()
                fake.plan = list(scenario.get("plan") or [])
            print(f"=== scenario {scenario['name']}", flush=True)
            run = bag.dags[scenario.get("dag_id", config["dag_id"])].test(run_conf=scenario["conf"])
            tis = {
                ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": {"state": str(ti.state), "try_number": ti.try_number}
                for ti in run.get_task_instances()
            }
            logs = sorted(str(p) for p in Path(os.environ["AIRFLOW_HOME"], "logs").rglob(f"run_id={run.run_id}/**/*.log"))
            results.append({
                "name": scenario["name"],
                "state": str(run.state),
                "tis": tis,
                "sent": list(sent),
                "received": list(fake.created) if fake is not None else None,
                "left": {name: pod["status"]["phase"] for (_, name), pod in fake.pods.items()} if fake is not None else None,
                "deleted": list(fake.deleted) if fake is not None else None,
                "plan_left": list(fake.plan) if fake is not None else None,
                "logs": {p: Path(p).read_text(errors="replace") for p in logs},
            })
    Path(results_file).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
