"""The local backend (DESIGN §8): run a step's callable in a child process on this machine,
under its limits, and measure what it used.

    from allotment.local import Limits, run_step

    result = run_step(Limits.from_resolved(resolved), train, args=(path,))
    result.get()             # the return value, or raises the step's failure
    result.oom_killed        # True when the step went over its memory cap

Standard library only: importing this package loads neither pydantic nor psutil, and
``import allotment`` does not import it. See docs/local.md for the mechanism and its limits.
"""

from __future__ import annotations

from .host import Gpu, Host
from .limits import Limits
from .placement import MEMORY_CAPS, MemoryCap, Placement, place
from .run import ChildError, Measurement, OOMKilled, StepFailed, StepResult, default_host, run_step

__all__ = [
    "MEMORY_CAPS",
    "ChildError",
    "Gpu",
    "Host",
    "Limits",
    "Measurement",
    "MemoryCap",
    "OOMKilled",
    "Placement",
    "StepFailed",
    "StepResult",
    "default_host",
    "place",
    "run_step",
]
