"""A scheduled daily GPU training pipeline on Kubernetes, sized with allotment.

``@resources`` stacks with the stock ``@task.kubernetes`` in either order (allotment's cluster
policy turns those tasks into allotment's decorated operator). ``train`` asks for one H100 with
16 GiB of shared memory (``/dev/shm`` for PyTorch DataLoader workers): allotment adds the
``dshm`` memory-backed volume and mount, the GPU request, limit and toleration, and the node
selector of the cluster profile. ``default_args["allotment"]`` fills what a task leaves open
(here ``evaluate``'s memory); plain tasks such as ``notify`` ignore it.

Data moves through object storage, not XCom, so the pods carry no XCom sidecar.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from allotment import resources

IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "allotment": {"memory": "2Gi"}},
    tags=["allotment", "gpu"],
)
def gpu_training() -> None:
    @resources(cpu=4, memory="16Gi", disk="50Gi")
    @task.kubernetes(image="python:3.12-slim", namespace="ml", do_xcom_push=False)
    def prepare_data() -> None:
        print("shard the day's data into s3://ml-data/daily/")

    @resources(cpu=8, memory="64Gi", gpu=1, gpu_type="H100", shared_memory="16Gi")
    @task.kubernetes(image=IMAGE, namespace="ml", do_xcom_push=False)
    def train() -> None:
        print("torchrun train.py --data s3://ml-data/daily/")

    @task.kubernetes(image=IMAGE, namespace="ml", do_xcom_push=False)
    @resources(cpu=2, gpu=1, gpu_type="L4")
    def evaluate() -> None:
        print("python evaluate.py")

    @task
    def notify() -> None:
        print("model published")

    prepare_data() >> train() >> evaluate() >> notify()


gpu_training()
