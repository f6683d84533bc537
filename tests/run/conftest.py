"""Fixtures of the ``allotment run`` tests: this machine with a claim directory of the test's own,
and no allotment settings from the caller's environment."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from allotment.local import Host
from allotment.run import LocalRun, run_paths
from allotment.settings import ENV, load_settings
from run_support import Ran


@pytest.fixture(scope="session")
def probed() -> Host:
    return Host.probe()


@pytest.fixture
def host(probed: Host, tmp_path: Path) -> Host:
    """This machine, claiming cores in a directory of this test only (other runs on the machine
    must not make this test's steps share cores)."""
    return dataclasses.replace(probed, lock_dir=tmp_path / "claims")


@pytest.fixture(autouse=True)
def _no_allotment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in ENV.values():
            monkeypatch.delenv(name)


@pytest.fixture
def run(host: Host) -> Callable[..., Ran]:
    """``run(*paths, steps=(), cli={...}, retries=None, report=None)``: :func:`allotment.run.run_paths`
    with captured output; an AllotmentError it raises is kept in ``error``."""

    def call(
        *paths: Path, steps: tuple[str, ...] = (), cli: dict[str, Any] | None = None, retries: int | None = None, report: str | None = None
    ) -> Ran:
        err = io.StringIO()
        local = LocalRun(load_settings(cli=cli or {}, env={}), err=err, host=host, retries=retries)
        out = io.StringIO()
        status: int | None = None
        error: Exception | None = None
        try:
            status = run_paths(list(paths), local, steps=steps, report=report, out=out)
        except ValueError as e:
            error = e
        return Ran(status, out.getvalue(), err.getvalue(), local, error)

    return call
