"""Runtime overrides, a policy, and memory that grows on retry.

* **Conf override.** After an out-of-memory failure, trigger a run with more memory for one
  task, without touching this file::

      airflow dags trigger nightly_aggregate -c '{"allotment": {"tasks": {"aggregate": "memory=24Gi"}}}'

  or for every task: ``{"allotment": {"with": "kubernetes:memory=24Gi"}}``. Only resource fields
  are accepted; any other key (``image``, ``cmds``, ``volumes``, ...) fails the task before any
  pod request, with the reason in the task log.
* **Policy.** The deployment points ``[allotment] policy`` (``AIRFLOW__ALLOTMENT__POLICY``) or
  ``ALLOTMENT_POLICY`` at ``policy.yaml`` beside this file (DagBag reads only ``.py`` files, so
  it is never parsed as a DAG). It caps every task and what a run's conf may ask for; a value over
  a cap fails the task, never a silent clamp.
* **Memory that grows after an OOM kill.** ``retry_memory_factor=1.5``: try 1 asks for 8Gi; a
  try after one OOM-killed try for 12Gi, after two for 18Gi, rounded up to whole MiB and held to
  the policy's memory cap; any other failure retries with the memory it had. The task log says
  how each earlier try ended, what this try asks for and why.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from allotment import resources
from allotment.airflow import KubernetesPodOperator

with DAG(
    dag_id="nightly_aggregate",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=2), "allotment": {"cpu": 1}},
    tags=["allotment"],
):
    aggregate = KubernetesPodOperator(
        task_id="aggregate",
        image="python:3.12-slim",
        cmds=["python", "-m", "reports.aggregate"],
        namespace="analytics",
        resources={"cpu": 2, "memory": "8Gi"},
        retry_memory_factor=1.5,
    )

    @resources(memory="4Gi", retry_memory_factor=2)
    @task.kubernetes(image="python:3.12-slim", namespace="analytics", do_xcom_push=False)
    def report() -> None:
        print("render the nightly report")

    aggregate >> report()
