"""A script that reads the result of a container template, which allotment run does not run."""

from allotment import resources
from hera.workflows import DAG, Container, Workflow, script


@resources(memory="150Mi")
@script()
def show(text: str) -> None:
    print(text)


with Workflow(name="needs-container", entrypoint="main") as wf:
    produce = Container(name="produce", image="alpine:3.20", command=["echo", "hi"])
    with DAG(name="main"):
        p = produce()
        s = show(arguments={"text": p.result})
        p >> s
