"""A conditional task: allotment run refuses it before anything runs."""

from allotment import resources
from hera.workflows import DAG, Workflow, script


@resources(memory="150Mi")
@script()
def flip() -> None:
    print("heads")


@resources(memory="150Mi")
@script()
def heads() -> None:
    print("it was heads")


with Workflow(name="conditional", entrypoint="main") as wf:
    with DAG(name="main"):
        f = flip()
        h = heads(when=f"{f.result} == heads")
        f >> h
