"""Shared set-up of the Airflow face tests (real Apache Airflow 3.x, no cluster).

Environment, kept from leaking into other test directories:

* ``AIRFLOW_HOME`` is read once, when Airflow is first imported. If the caller set none (the
  Makefile sets ``.airflow/`` in the repository), the session fixture points it at the
  repository's ``.airflow/`` (git-ignored) for the first import, so Airflow never writes to
  ``~/airflow``, and removes the variable again after each module of this folder (Airflow keeps
  what it read). No test module imports Airflow at collection time.
* Each test runs with allotment's settings variables (``ALLOTMENT_WITH``, ``_SET``, ``_BACKEND``,
  ``_POLICY``, ``_PROFILE``) and ``AIRFLOW__ALLOTMENT__*`` removed and
  ``[core] executor`` set to LocalExecutor (Airflow reads ``AIRFLOW__*`` variables on every
  lookup), through ``monkeypatch``, which undoes it after the test.
* The ``dag.test()`` runs need a migrated SQLite database, a DAG folder and a policy: they run in
  a subprocess with an environment of their own (``test_dag_run.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _airflow_home() -> Iterator[None]:
    previous = os.environ.get("AIRFLOW_HOME")
    if previous is None:
        home = ROOT / ".airflow"
        home.mkdir(exist_ok=True)
        os.environ["AIRFLOW_HOME"] = str(home)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_HOME", None)


@pytest.fixture(autouse=True)
def _clean_allotment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.settings import ENV

    for name in list(os.environ):
        if name in ENV.values() or name.startswith("AIRFLOW__ALLOTMENT__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
