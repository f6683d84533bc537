"""A DAG that passes outputs on: a result, an output parameter, a fan-out over a result and its
aggregated results, a workflow parameter, and a container template allotment run skips."""

from allotment import resources
from allotment.argo import container
from hera.workflows import DAG, Parameter, Workflow, script
from hera.workflows import models as m


@resources(cpu=1, memory="200Mi")
@script(outputs=[Parameter(name="count", value_from=m.ValueFrom(path="/tmp/allotment-test-run-hera-count"))])
def make(n: int = 3) -> None:
    import json

    with open("/tmp/allotment-test-run-hera-count", "w") as f:
        f.write(str(n))
    print(json.dumps(list(range(1, n + 1))))


@resources(memory="150Mi")
@script()
def double(value: int, label: str) -> None:
    print(json.dumps({"label": label, "doubled": value * 2}))  # noqa: F821 (json comes from Hera's preamble)


@resources(memory="150Mi")
@script()
def total(parts: list, count: int, greeting: str) -> None:
    print(f"{greeting}: {sum(p['doubled'] for p in parts)} from {count} parts")


with Workflow(
    name="passing",
    entrypoint="main",
    arguments=[Parameter(name="greeting", value="hello")],
) as wf:
    lister = container(name="lister", image="alpine:3.20", command=["ls"], allotment={"cpu": "250m"})
    with DAG(name="main"):
        made = make()
        doubled = double(
            arguments={"value": "{{item}}", "label": "part-{{item}}"},
            with_param=made.result,
        )
        summed = total(
            arguments={
                "parts": doubled.result,
                "count": made.get_parameter("count"),
                "greeting": "{{workflow.parameters.greeting}}",
            }
        )
        listed = lister()
        made >> doubled >> summed
        made >> listed
