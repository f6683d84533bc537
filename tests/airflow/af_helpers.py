"""Helpers of the Airflow face tests (imported by the test modules of this folder)."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
from k8s_rules import pod_problems

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
POLICY = DAGS / "policy.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden"
K8S_VERSION = kubernetes_validate.utils.latest_version()
"""The newest Kubernetes version kubernetes-validate knows."""


def dagbag(folder: Path) -> Any:
    """Airflow's own DagBag over ``folder`` (with allotment's cluster policy, as in production)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def write_dag(folder: Path, name: str, source: str) -> Path:
    """Write a DAG file (the text is dedented) and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def sanitize(obj: Any) -> Any:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def pod_of(task: Any, context: Any = None) -> dict[str, Any]:
    """The pod a pod operator task would send, as plain data (offline)."""
    return sanitize(task.build_pod_request_obj(context, dry_run=True))


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def check_pod(pod: dict[str, Any]) -> None:
    """kubernetes-validate strict at the newest version it knows, and docs/design.md §3's rules."""
    kubernetes_validate.validate(copy.deepcopy(pod), K8S_VERSION, strict=True)
    assert pod_problems(pod) == []


class StateStore:
    """Stands in for ``context["task_state_store"]`` (one task instance's store, shared by its
    tries): values go through JSON both ways, as the execution API keeps them."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        import json

        return json.loads(self.rows[key]) if key in self.rows else default

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        import json

        self.rows[key] = json.dumps(value)


def run_context(task: Any, *, try_number: int = 1, conf: Any = None, store: StateStore | None = None) -> dict[str, Any]:
    """The parts of a task's run context that allotment and the pod labels read (``store``: the
    task instance's task state store, shared by its tries)."""
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id=task.dag_id, task_id=task.task_id, try_number=try_number, map_index=-1)
    context = {"ti": ti, "run_id": "manual__test", "dag_run": SimpleNamespace(conf=conf or {}), "dag": task.dag}
    if store is not None:
        context["task_state_store"] = store
    return context
