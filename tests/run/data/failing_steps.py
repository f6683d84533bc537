"""A run that fails in its second step: the third must not run."""

from allotment import resources


@resources(memory="128Mi")
def ok_step() -> str:
    return "fine"


@resources(memory="128Mi")
def broken() -> None:
    raise ValueError("the data is bad")


@resources(memory="128Mi")
def never() -> None:
    raise AssertionError("a step after a failure ran")
