"""DAGs the end-to-end test runs with dag.test() (issue 12, issue 9 scope 7): a pod task whose memory
grows only after an OOM kill, as a KubernetesPodOperator and as ``@task.kubernetes``. The test's
stand-in API server (``fake_kube_api.py``) plays each try's end: an OOM kill, a plain error, an
eviction, a success, or a pod creation that fails (a 500, a lost response).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from allotment import resources
from allotment.airflow import KubernetesPodOperator

NAMESPACE = os.environ.get("ALLOTMENT_E2E_NAMESPACE", "default")
START = pendulum.datetime(2025, 1, 1, tz="UTC")
RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=0)}

with DAG(dag_id="allotment_oom", schedule=None, start_date=START, catchup=False, default_args=RETRIES):
    KubernetesPodOperator(
        task_id="grow",
        image="busybox:1.36",
        cmds=["sh", "-c", "exit 0"],
        namespace=NAMESPACE,
        resources={"cpu": "100m", "memory": "64Mi"},
        retry_memory_factor=2,
        get_logs=False,
        on_finish_action="delete_pod",
    )

with DAG(dag_id="allotment_oom_decorated", schedule=None, start_date=START, catchup=False, default_args=RETRIES):

    @resources(cpu="100m", memory="64Mi", retry_memory_factor=2)
    @task.kubernetes(image="python:3.12-slim", namespace=NAMESPACE, do_xcom_push=False, get_logs=False, on_finish_action="delete_pod")
    def grow_decorated() -> None:
        print("grows after an OOM kill only")

    grow_decorated()
