"""A classic KubernetesPodOperator DAG: allotment's ``resources=`` next to the user's own pod settings.

allotment's ``KubernetesPodOperator`` is the provider's operator plus ``resources=`` (and
``retry_memory_factor=``). The pod keeps everything the user gives: the data volume and its
mount, the dedicated-node toleration, the node selector and the container's own CPU limit are
merged with what the spec adds (requests and limits, GPU toleration, GPU node selector,
``dshm``), never replaced; a real clash (say, a second ``/dev/shm`` mount) is this file's import
error, naming both sides.

``resources=`` takes a dict of allotment fields, an ``allotment.Resources``, or Airflow's own
BaseOperator form ``{"cpus", "ram", "disk", "gpus"}`` (``ram`` and ``disk`` read as MiB).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG
from allotment import Resources
from allotment.airflow import KubernetesPodOperator
from kubernetes.client import models as k8s

DATA = k8s.V1Volume(name="features", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="features"))
DATA_MOUNT = k8s.V1VolumeMount(name="features", mount_path="/features")
DEDICATED = k8s.V1Toleration(key="dedicated", operator="Equal", value="data", effect="NoSchedule")

with DAG(
    dag_id="feature_pipeline",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["allotment"],
):
    extract = KubernetesPodOperator(
        task_id="extract",
        image="python:3.12-slim",
        cmds=["python", "-m", "features.extract"],
        namespace="data",
        resources={"cpus": 2, "ram": 4096},  # Airflow's form: 2 cores, 4096 MiB
        volumes=[DATA],
        volume_mounts=[DATA_MOUNT],
        tolerations=[DEDICATED],
        node_selector={"pool": "data"},
    )
    featurize = KubernetesPodOperator(
        task_id="featurize",
        image="python:3.12-slim",
        cmds=["python", "-m", "features.build"],
        namespace="data",
        resources=Resources(cpu=4, memory="16Gi", disk="20Gi", shared_memory="2Gi"),
        container_resources=k8s.V1ResourceRequirements(limits={"cpu": "8"}),  # the user's own CPU ceiling, kept
        volumes=[DATA],
        volume_mounts=[DATA_MOUNT],
        tolerations=[DEDICATED],
        node_selector={"pool": "data"},
    )
    embed = KubernetesPodOperator(
        task_id="embed",
        image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        cmds=["python", "-m", "features.embed"],
        namespace="data",
        resources={"cpu": 8, "memory": "32Gi", "gpu": 2, "gpu_type": "A100-80GB"},
        volumes=[DATA],
        volume_mounts=[DATA_MOUNT],
        tolerations=[k8s.V1Toleration(key="spot", operator="Exists", effect="NoSchedule")],
        node_selector={"topology.kubernetes.io/zone": "us-east-1a"},
    )
    extract >> featurize >> embed
