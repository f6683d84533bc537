"""DAGs the end-to-end test runs with dag.test() (issue 10): mapped tasks, a pod template, and a
container_resources that a run's conf fills through Jinja. Every pod is refused by the test's
stand-in API server after its body was recorded (or, on a real cluster, runs busybox and exits 1).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task
from allotment import resources
from allotment.airflow import KubernetesPodOperator
from kubernetes.client import models as k8s

NAMESPACE = os.environ.get("ALLOTMENT_E2E_NAMESPACE", "default")
COMMON = {
    "image": "busybox:1.36",
    "cmds": ["sh", "-c", "exit 1"],
    "namespace": NAMESPACE,
    "get_logs": False,
    "on_finish_action": "delete_pod",
}
START = pendulum.datetime(2025, 1, 1, tz="UTC")

with DAG(dag_id="allotment_mapped", schedule=None, start_date=START, catchup=False, default_args={"retries": 0}):
    KubernetesPodOperator.partial(task_id="shard", resources={"cpu": "100m", "memory": "64Mi"}, **COMMON).expand(
        arguments=[["1"], ["2"], ["3"]]
    )

    @resources(cpu="100m", memory="80Mi")
    @task.kubernetes(image="python:3.12-slim", namespace=NAMESPACE, do_xcom_push=False, get_logs=False, on_finish_action="delete_pod")
    def score(n: int) -> None:
        raise SystemExit(1)

    score.expand(n=[1, 2])

with DAG(dag_id="allotment_template", schedule=None, start_date=START, catchup=False, default_args={"retries": 0}):
    KubernetesPodOperator(
        task_id="templated",
        pod_template_file=str(Path(__file__).with_name("pod_template.yaml")),
        resources={"cpu": "100m", "memory": "64Mi"},
        **COMMON,
    )
    KubernetesPodOperator(
        task_id="jinja",
        resources={"cpu": "100m"},
        container_resources=k8s.V1ResourceRequirements(limits={"memory": "{{ dag_run.conf.get('mem', '72Mi') }}"}),
        **COMMON,
    )
