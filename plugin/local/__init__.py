"""The local backend (docs/design.md §9): run a step's callable in a child process on this machine,
under its limits, and measure what it used.

    from allotment.local import Limits, format_table, run_step, run_with_retries, write_report

    result = run_step(Limits.from_resolved(resolved), train, args=(path,))
    result.get()             # the return value, or raises the step's failure
    result.oom_killed        # True when the step went over its memory cap

    tries = run_with_retries(Limits.from_resolved(resolved), train, (path,), retries=2)
    print(format_table(tries.tries), end="")
    write_report("report.json", tries.tries)

Standard library only: importing this package loads neither pydantic nor psutil, and
``import allotment`` does not import it. See docs/local.md for the mechanism and its limits.
"""

from __future__ import annotations

from .hints import Hint, hint_for
from .host import Gpu, Host
from .limits import Limits
from .placement import MEMORY_CAPS, MemoryCap, Placement, place
from .report import SCHEMA_ID, SCHEMA_PATH, format_table, hint_of, load_schema, report_document, write_report
from .retry import Tries, memory_for_try, run_with_retries
from .run import ChildError, Measurement, OOMKilled, StepFailed, StepResult, default_host, run_step

__all__ = [
    "MEMORY_CAPS",
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "ChildError",
    "Gpu",
    "Hint",
    "Host",
    "Limits",
    "Measurement",
    "MemoryCap",
    "OOMKilled",
    "Placement",
    "StepFailed",
    "StepResult",
    "Tries",
    "default_host",
    "format_table",
    "hint_for",
    "hint_of",
    "load_schema",
    "memory_for_try",
    "place",
    "report_document",
    "run_step",
    "run_with_retries",
    "write_report",
]
