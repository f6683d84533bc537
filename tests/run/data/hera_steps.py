"""A Steps template: groups run in order; a step sees the outputs of earlier groups."""

from allotment import resources
from hera.workflows import Steps, Workflow, script


@resources(memory="150Mi")
@script()
def say(word: str) -> None:
    print(word)


@resources(memory="150Mi")
@script()
def join(a: str, b: str) -> None:
    print(f"{a}+{b}")


with Workflow(generate_name="steps-", entrypoint="main") as wf:
    with Steps(name="main") as s:
        with s.parallel():
            say(name="left", arguments={"word": "L"})
            say(name="right", arguments={"word": "R"})
        join(arguments={"a": "{{steps.left.outputs.result}}", "b": "{{steps.right.outputs.result}}"})
