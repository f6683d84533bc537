"""The DAG of the KubernetesExecutor end-to-end test (test_executor_runtime.py): a plain @task whose
worker pod carries the spec, a run's conf override and the memory growth of its retry."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from allotment import resources

with DAG(
    dag_id="allotment_worker",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
):

    @resources(cpu="250m", memory="96Mi", retry_memory_factor=2)
    @task
    def crunch() -> None:
        print("crunching")

    @task
    def plain() -> None:
        print("no spec: its worker pod is the executor's as it is")

    crunch() >> plain()
