"""Helpers of the ``allotment run`` tests (a module of its own name: every test folder has a conftest)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from allotment.run import LocalRun

DATA = Path(__file__).resolve().parent / "data"


@dataclasses.dataclass
class Ran:
    """What one run gave: exit status (None when it raised: ``error``), the table (stdout), the
    progress (stderr) and the :class:`LocalRun` with every try."""

    status: int | None
    out: str
    err: str
    run: LocalRun
    error: Exception | None = None

    @property
    def steps(self) -> list[tuple[str, int, str]]:
        """(step, try, outcome) of every try, in the order they ran."""
        return [(r.step, r.try_number, r.outcome) for r in self.run.results]

    def result(self, step: str, try_number: int = 1) -> Any:
        return next(r for r in self.run.results if r.step == step and r.try_number == try_number)
