"""The DAG the end-to-end test runs with dag.test(): one pod task whose memory grows on retry.

On a real cluster (KUBECONFIG set) the pod runs busybox and exits 1, so every try fails and
the retry asks for more memory; with the test's stand-in API server, pod creation is refused
after the body was recorded, with the same effect.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG
from allotment.airflow import KubernetesPodOperator

with DAG(
    dag_id="allotment_e2e",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
):
    KubernetesPodOperator(
        task_id="crunch",
        image="busybox:1.36",
        cmds=["sh", "-c", "exit 1"],
        namespace=os.environ.get("ALLOTMENT_E2E_NAMESPACE", "default"),
        resources={"cpu": "100m", "memory": "64Mi"},
        retry_memory_factor=2,
        get_logs=False,
        on_finish_action="delete_pod",
    )
