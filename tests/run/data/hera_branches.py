"""Two branches after one root, for --step: b needs a, c is not needed by b."""

from allotment import resources
from hera.workflows import DAG, Workflow, script


@resources(memory="150Mi")
@script()
def a() -> None:
    print("A")


@resources(memory="150Mi")
@script()
def b(x: str) -> None:
    print(f"B after {x}")


@resources(memory="150Mi")
@script()
def c() -> None:
    print("C")


with Workflow(name="branches", entrypoint="main") as wf:
    with DAG(name="main"):
        ta = a()
        tb = b(arguments={"x": ta.result})
        tc = c()
        ta >> [tb, tc]
