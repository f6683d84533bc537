"""The same training pipeline on Kubernetes or on AWS Batch, chosen by the deployment alone.

Nothing in this file names the backend. ``portable_task`` builds allotment's
KubernetesPodOperator or BatchOperator when the file is parsed, from the deployment's settings:

* a Kubernetes deployment: ``ALLOTMENT_WITH=kubernetes:cpu=1`` (or ``ALLOTMENT_BACKEND=kubernetes``,
  or ``[allotment] backend = kubernetes``), and the default when the deployment names none;
* an AWS Batch deployment: ``ALLOTMENT_WITH=batch:memory=8Gi`` (or ``ALLOTMENT_BACKEND=batch``).

The spec is the same on both. On Kubernetes, ``train`` gets a pod with 8 CPUs, 32Gi, one H100
(node selector from the cluster profile) and an 8Gi memory-backed ``/dev/shm``. On Batch (EC2)
it is submitted with ``containerOverrides.resourceRequirements`` VCPU 8, MEMORY 32768, GPU 1,
with a revision of the ``trainer`` job definition that carries
``linuxParameters.sharedMemorySize=8192``: allotment registers it once, named by a hash of its
content, and reuses it afterwards. (``gpu_type`` is the job queue's business on Batch: its
compute environment's instance types decide the GPU model; the task log says so.)
``retry_memory_factor`` grows memory after each OOM kill on both, and a run's
``{"allotment": {"tasks": {"train": "memory=48Gi"}}}`` applies on both.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG
from allotment.airflow import portable_task

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1.2"

with DAG(
    dag_id="portable_training",
    schedule="@weekly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "allotment": {"memory": "8Gi"}},
    tags=["allotment", "portable"],
):
    prepare = portable_task(
        task_id="prepare",
        resources={"cpu": 2},  # memory from default_args["allotment"]
        kubernetes={"image": IMAGE, "cmds": ["python", "-m", "trainer.prepare"], "namespace": "ml"},
        batch={
            "job_definition": "trainer",
            "job_queue": "cpu-queue",
            "container_overrides": {"command": ["python", "-m", "trainer.prepare"]},
        },
    )
    train = portable_task(
        task_id="train",
        resources={"cpu": 8, "memory": "32Gi", "gpu": 1, "gpu_type": "H100", "shared_memory": "8Gi"},
        retry_memory_factor=1.5,
        kubernetes={"image": IMAGE, "cmds": ["python", "-m", "trainer.train"], "namespace": "ml"},
        batch={
            "job_definition": "trainer",
            "job_queue": "gpu-queue",
            "container_overrides": {"command": ["python", "-m", "trainer.train"]},
        },
    )
    prepare >> train
