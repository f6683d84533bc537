"""A nightly CronWorkflow training pipeline: CPU data preparation, GPU training with shared
memory and memory-growing retries, GPU evaluation.

Render it with ``allotment render workflows/nightly_training.py --target argo``; submit a
run that asks for more memory without editing this file::

    argo cron create nightly_training.yaml
    argo submit --from cronwf/nightly-train -p train-memory=64Gi
"""

from allotment import kubernetes, resources
from allotment.argo import defaults
from hera.workflows import DAG, CronWorkflow, script


@resources(cpu=4, memory="16Gi", disk="50Gi")
@script(image="python:3.12-slim")
def prepare() -> None:
    print("downloading and sharding yesterday's events")


# @resources above @script and @kubernetes below it: the order does not matter.
@resources(cpu=8, memory="64Gi", gpu=1, gpu_type="A100-80GB", shared_memory="16Gi", retry_memory_factor=1.5)
@script(image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime")
@kubernetes(qos="guaranteed")
def train() -> None:
    print("training with a DataLoader whose workers share /dev/shm")


@script(image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime")
@resources(gpu=1, gpu_type="L4", shared_memory=4096)
def evaluate() -> None:
    print("evaluating the new checkpoint")


with CronWorkflow(
    name="nightly-train",
    schedules=["0 2 * * *"],
    timezone="Europe/Berlin",
    concurrency_policy="Forbid",
    entrypoint="main",
) as nightly:
    with DAG(name="main"):
        prepare() >> train() >> evaluate()

# Fill what the steps do not say (here: evaluate's cpu and memory, and disk for all).
defaults(nightly, cpu=2, memory="24Gi", disk="20Gi")
