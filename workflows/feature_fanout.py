"""A WorkflowTemplate that fans out CPU steps over shards, mixing Script and Container
templates. With hundreds of parallel tasks the submit-time parameters would only clutter
the Argo UI, so the workflow turns them off (``overridable(False)``) except for the one
template that is worth tuning at submit time (``merge``)."""

from allotment import resources
from allotment.argo import attach, container, defaults, overridable
from hera.workflows import DAG, Container, Parameter, WorkflowTemplate, script
from hera.workflows import models as m


@resources(cpu="500m", memory="1Gi")
@script(image="python:3.12-slim", inputs=[Parameter(name="shard")])
def featurize(shard: str) -> None:
    print(f"computing features for shard {shard}")


@overridable(True)
@resources(cpu=4, memory="8Gi", disk="20Gi")
@script(image="python:3.12-slim")
def merge() -> None:
    print("merging the shards into one table")


with WorkflowTemplate(name="feature-fanout", entrypoint="fanout", namespace="ml") as fanout:
    list_shards = container(
        name="list-shards",
        image="alpine:3.20",
        command=["sh", "-c", "seq 0 63"],
        allotment={"cpu": "250m", "memory": 256},
    )
    # A Container with its own node selector and toleration: allotment keeps them and adds its own.
    validate = Container(
        name="validate",
        image="ghcr.io/example/validator:1.4",
        args=["--shards", "64"],
        node_selector={"pool": "batch"},
        tolerations=[m.Toleration(key="pool", operator="Equal", value="batch", effect="NoSchedule")],
    )
    attach(validate, cpu=2)  # memory comes from the workflow defaults below
    with DAG(name="fanout"):
        shards = list_shards()
        work = featurize(arguments={"shard": "{{item}}"}, with_items=[f"{i:02d}" for i in range(8)])
        shards >> work >> [validate(), merge()]

defaults(fanout, memory="2Gi")
overridable(False)(fanout)
