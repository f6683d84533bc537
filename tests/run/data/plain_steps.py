"""Plain decorated functions for `allotment run` tests (each test copies what it needs)."""

import os
import sys

from allotment import kubernetes, resources


@resources(cpu=1, memory="256Mi")
def first() -> int:
    print("first writes to stdout")
    print("first writes to stderr", file=sys.stderr)
    return len(os.sched_getaffinity(0))


@resources(cpu="500m", memory=300)
def second() -> str:
    return "second done"


@kubernetes(memory="320Mi")
def pinned() -> str:
    return "ran here"


def not_a_step() -> None:
    raise AssertionError("allotment run must not call undecorated functions")
