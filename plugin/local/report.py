"""The local backend's report: a table printed per step, and a JSON document for tools.

The table (one row per try; the hint rules are in :mod:`allotment.local.hints`)::

    step        asked            used (peak)        cpu time  wall    hint
    prep        2 cpu, 6Gi       0.4 cpu, 310Mi     3.1 s     7.9 s   memory: 6Gi asked, 310Mi used — try 512Mi

The JSON document follows ``report.schema.json`` next to this module (JSON Schema 2020-12, id
:data:`SCHEMA_ID`): the host, the hint rule, and per try the spec, where it ran, how it ended, the
measurements and the hint. Keys keep the order they are built in and floats are rounded, so the
same results give the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from .hints import GRANULE_MIB, HEADROOM, OOM_GROWTH, UNDER_USE_BELOW, Hint, hint_for
from .host import Host
from .run import ChildError, StepResult, default_host
from .units import seconds_text, used_cores_text, used_mib_text

__all__ = ["SCHEMA_ID", "SCHEMA_PATH", "format_table", "hint_of", "load_schema", "report_document", "write_report"]

SCHEMA_ID: Final = "urn:allotment:local-report:1"
"""The ``$id`` of the report's JSON Schema, and the document's ``schema`` value."""
SCHEMA_PATH: Final = Path(__file__).with_name("report.schema.json")
"""The JSON Schema of :func:`report_document`."""

_HEADERS: Final = ("step", "asked", "used (peak)", "cpu time", "wall", "hint")
_MIN_WIDTHS: Final = (12, 17, 19, 10, 8, 0)


def load_schema() -> dict[str, Any]:
    """The report's JSON Schema."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _failure_name(result: StepResult) -> str | None:
    if result.signal:
        return result.signal
    error = result.error
    if isinstance(error, ChildError):
        return error.type_name.rsplit(".", 1)[-1]
    if error is not None and result.traceback is not None:
        return type(error).__name__
    return None


def hint_of(result: StepResult) -> Hint:
    """The hint for one try (see :mod:`allotment.local.hints` for the rules)."""
    asked = result.placement.memory_limit_mib if result.placement.memory_limit_mib is not None else result.limits.memory_mib
    return hint_for(result.outcome, asked, result.measurement.peak_memory_bytes, _failure_name(result))


def _row(result: StepResult) -> tuple[str, ...]:
    m = result.measurement
    name = result.step if result.try_number == 1 else f"{result.step} (try {result.try_number})"
    peak = "?" if m.peak_memory_bytes is None else used_mib_text(m.peak_memory_bytes)
    return (
        name,
        result.limits.asked_text(),
        f"{used_cores_text(m.cpu_used)}, {peak}",
        seconds_text(m.cpu_time_s),
        seconds_text(m.wall_time_s),
        hint_of(result).text,
    )


def format_table(results: Sequence[StepResult]) -> str:
    """The table of ``results``, one row per try, each line ending in a newline."""
    rows = [_HEADERS, *(_row(r) for r in results)]
    widths = [max(minimum, *(len(row[i]) + 2 for row in rows)) for i, minimum in enumerate(_MIN_WIDTHS)]
    lines = ["".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _error_document(result: StepResult) -> dict[str, Any] | None:
    error = result.error
    if error is None:
        return None
    kind = error.type_name if isinstance(error, ChildError) else f"{type(error).__module__}.{type(error).__qualname__}"
    message = str(error)
    return {"type": kind.removeprefix("builtins."), "message": message, "traceback": result.traceback}


def _step_document(result: StepResult) -> dict[str, Any]:
    return {
        "step": result.step,
        "try": result.try_number,
        "outcome": result.outcome,
        "oom_killed": result.oom_killed,
        "reason": result.reason,
        "spec": result.limits.spec_document(),
        "sources": dict(sorted(result.limits.sources.items())),
        "placement": result.placement.document(),
        "exit": {"code": result.exit_code, "signal": result.signal},
        "measurements": result.measurement.document(),
        "error": _error_document(result),
        "hint": hint_of(result).document(),
        "notes": list(result.notes),
    }


def report_document(results: Sequence[StepResult], host: Host | None = None) -> dict[str, Any]:
    """The JSON report of ``results`` (one entry per try) on ``host`` (default: this machine)."""
    return {
        "schema": SCHEMA_ID,
        "host": (host or default_host()).document(),
        "hint_rule": {
            "memory_under_use_below": UNDER_USE_BELOW,
            "headroom": HEADROOM,
            "oom_growth": OOM_GROWTH,
            "granule_mib": GRANULE_MIB,
            "text": (
                f"memory hint when the peak is below {UNDER_USE_BELOW:.0%} of the ask: peak x {HEADROOM} rounded up to "
                f"{GRANULE_MIB}Mi; after an OOM kill: the cap x {OOM_GROWTH} rounded up to {GRANULE_MIB}Mi; no CPU hint"
            ),
        },
        "steps": [_step_document(r) for r in results],
    }


def write_report(path: str | os.PathLike[str], results: Sequence[StepResult], host: Host | None = None) -> None:
    """Write the JSON report of ``results`` to ``path`` (UTF-8, indented, ending in a newline)."""
    text = json.dumps(report_document(results, host), indent=2, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")
