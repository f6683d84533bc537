"""Submit-time overrides and memory-growing retries.

Every resourced template's fields become workflow parameters (``<template>-cpu``,
``<template>-memory``, ...) defaulting to the compiled values, so a run can ask for more
without editing code::

    argo submit overrides_and_retries.yaml -p aggregate-memory=12Gi -p aggregate-cpu=6

``aggregate`` also grows its memory after an OOM kill: an attempt after an OOM-killed one asks
for memory x 2^retries (x 2^(retries-1) after any other failure: Argo sees only the last attempt;
docs/design.md §7.3), whole MiB, read from the ``aggregate-memory`` parameter, so an override is
grown too. ``report`` keeps its compiled values (``overridable(False)``) and still grows after
OOM kills, under its own retry strategy.
"""

from allotment import resources
from allotment.argo import overridable
from hera.workflows import RetryStrategy, Steps, Workflow, script


@resources(cpu=2, memory="6Gi", retry_memory_factor=2)
@script(image="python:3.12-slim")
def aggregate() -> None:
    print("aggregating; an OOM kill retries with twice the memory")


@overridable(False)
@resources(memory=3000, retry_memory_factor=1.25)
@script(image="python:3.12-slim", retry_strategy=RetryStrategy(limit="5", retry_policy="OnFailure"))
def report() -> None:
    print("rendering the report")


with Workflow(generate_name="overrides-and-retries-", entrypoint="steps") as overrides:
    with Steps(name="steps"):
        aggregate()
        report()
