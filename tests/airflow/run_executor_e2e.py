"""Build KubernetesExecutor worker pods the way the scheduler does, in a process of its own.

Usage: ``python run_executor_e2e.py SCENARIOS.json RESULTS.json`` with the environment set
(AIRFLOW_HOME on a fresh SQLite database, AIRFLOW__CORE__DAGS_FOLDER holding the DAG,
AIRFLOW__CORE__EXECUTOR=KubernetesExecutor, AIRFLOW__ALLOTMENT__POLICY).

Per scenario (a run conf), with Airflow's own code throughout and the Kubernetes API server
replaced by :class:`fake_kube_api.FakeKubeAPI` (KUBECONFIG points at it):

1. the DAG files are parsed and written to the database as the DAG processor does
   (``BundleDagBag`` + ``sync_bag_to_db``), once;
2. a run is created with the conf (``get_or_create_dagrun``, which creates the task instances
   and calls the ``task_instance_mutation_hook`` of every registered cluster policy);
3. for try 1 and try 2 (``"tries"``: more) the task instance is queued, its workload made
   (``ExecuteTask.make``), handed to ``KubernetesExecutor.execute_async`` and the job it queues is
   run by the executor's ``AirflowKubernetesScheduler.run_next``: it builds the pod
   (``PodGenerator.construct_pod``, pod mutation hooks included) and sends it to the API server.
   A scenario's ``"plan"`` says how the stand-in API server ends each pod it is sent
   (:class:`fake_kube_api.FakeKubeAPI`: ``oom``, ``evicted``, ...); the record the pod mutation hook
   kept in Airflow's task state store is returned as ``"record"``.

With ``"dag_test": true`` the scenario also runs ``dag.test(run_conf=...)``, which runs the
task's own code in-process (so its pre-execute check), and records the task states and logs.
"""

from __future__ import annotations

import json
import os
import queue
import sys
from pathlib import Path
from typing import Any


def main(scenarios_file: str, results_file: str) -> None:
    config = json.loads(Path(scenarios_file).read_text())
    from fake_kube_api import FakeKubeAPI

    with FakeKubeAPI() as fake:
        os.environ["KUBECONFIG"] = str(fake.write_kubeconfig(Path(os.environ["AIRFLOW_HOME"]) / "kubeconfig.json"))
        from airflow.utils import db

        db.upgradedb()
        results = _scenarios(config, fake)
    Path(results_file).write_text(json.dumps(results, indent=1))


def _scenarios(config: dict[str, Any], fake: Any) -> list[dict[str, Any]]:
    import pendulum
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import get_or_create_dagrun
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import AirflowKubernetesScheduler
    from airflow.providers.cncf.kubernetes.kube_client import get_kube_client
    from airflow.utils.state import TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from kubernetes.client.exceptions import ApiException

    from airflow import settings

    session = settings.Session()
    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if bag.import_errors:
            raise SystemExit(f"import errors: {bag.import_errors}")
        sync_bag_to_db(bag, bundle.name, bundle.version)
    scheduler_dag = DBDagBag().get_latest_version_of_dag(config["dag_id"], session=session)

    results = []
    for number, scenario in enumerate(config["scenarios"]):
        fake.created.clear()
        fake.pods.clear()
        fake.plan = list(scenario.get("plan") or [])
        print(f"=== executor {scenario['name']}", flush=True)
        when = pendulum.datetime(2025, 1, 1, tz="UTC").add(days=number)
        run = get_or_create_dagrun(
            dag=scheduler_dag,
            run_id=f"manual__{scenario['name']}",
            logical_date=when,
            data_interval=(when, when),
            run_after=when,
            conf=scenario["conf"],
            triggered_by=DagRunTriggeredByType.TEST,
            triggering_user_name="e2e",
            start_date=when,
            session=session,
        )
        session.commit()
        statuses = []
        for task_id in config["task_ids"]:
            for try_number in range(1, int(scenario.get("tries", 2)) + 1):
                ti = run.get_task_instance(task_id, session=session)
                ti.try_number = try_number
                ti.state = TaskInstanceState.QUEUED
                session.commit()
                ti = run.get_task_instance(task_id, session=session)
                workload = ExecuteTask.make(
                    ti, dag_rel_path=Path("allotment_worker.py"), bundle_info=BundleInfo(name="dags-folder", version=None)
                )
                executor = KubernetesExecutor()
                executor.task_queue = queue.Queue()
                executor.execute_async(key=workload.ti.key, command=[workload], queue=None, executor_config=workload.ti.executor_config)
                job = executor.task_queue.get_nowait()
                scheduler = AirflowKubernetesScheduler.__new__(AirflowKubernetesScheduler)
                scheduler.kube_config = executor.kube_config
                scheduler.namespace = executor.kube_config.kube_namespace
                scheduler.scheduler_job_id = "e2e"
                scheduler.supports_task_instance_uuid = False
                scheduler.team_name = None
                scheduler.kube_client = get_kube_client()
                try:
                    scheduler.run_next(job)
                    statuses.append("created")
                except ApiException as e:
                    statuses.append(str(e.status))
        result: dict[str, Any] = {"name": scenario["name"], "received": list(fake.created), "statuses": statuses}
        if scenario.get("plan"):
            from airflow.state import TaskScope, get_state_backend

            scope = TaskScope(dag_id=config["dag_id"], run_id=run.run_id, task_id=config["task_ids"][0], map_index=-1)
            stored = get_state_backend().get(scope, "allotment.tries")
            result["record"] = json.loads(stored) if stored is not None else None
        if scenario.get("dag_test"):
            from airflow.dag_processing.dagbag import DagBag

            dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[config["dag_id"]]
            print(f"=== dag.test {scenario['name']}", flush=True)
            tested = dag.test(run_conf=scenario["conf"], logical_date=when.add(hours=12))
            result["tis"] = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in tested.get_task_instances()}
            logs = sorted(Path(os.environ["AIRFLOW_HOME"], "logs").rglob(f"run_id={tested.run_id}/**/*.log"))
            result["logs"] = {str(p): p.read_text(errors="replace") for p in logs}
        results.append(result)
    return results


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
