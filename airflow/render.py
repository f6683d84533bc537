"""``allotment render PATH --target airflow``: the final pod of every resourced task in DAG files.

Per task that carries allotment resources, one document::

    dag_id: training
    task_id: train
    file: dags/training.py
    pod_of: KubernetesPodOperator        # or: KubernetesExecutor worker
    pod: {apiVersion: v1, kind: Pod, metadata: ..., spec: ...}

A task whose spec sizes an AWS Batch job instead (allotment's BatchOperator, or a task on the
AwsBatchExecutor) gets a document of its own (:func:`allotment.airflow.batch.render_batch_task`)::

    dag_id: training
    task_id: train
    file: dags/training.py
    job_of: BatchOperator                # or: AwsBatchExecutor worker
    platform: ec2
    submitJob: {jobName: ..., jobQueue: ..., jobDefinition: trainer, containerOverrides: ...}
    jobDefinitionFields: {containerProperties: {linuxParameters: {sharedMemorySize: 8192}}}
    notes: [...]                         # executorConfig: {...} for an AwsBatchExecutor worker

``submitJob`` is the request the operator sends, with the base job definition as given: when
``jobDefinitionFields`` is there, the task submits with the derived revision that carries them
(registered, once, when it runs; rendering calls no AWS API).

The pod is built offline by the real code: a KubernetesPodOperator's (or ``@task.kubernetes``'s)
own ``build_pod_request_obj(dry_run=True)``, or, for a plain task on the KubernetesExecutor,
the executor's ``PodGenerator.construct_pod`` from the task's ``executor_config``; then turned
into plain data with ``ApiClient().sanitize_for_serialization``. The random suffix of pod names
is replaced by ``-XXXXXXXX``, so the same files render the same bytes. A decorated task's
command is Airflow's ``placeholder-command`` until it runs. Tasks under a Local/Celery executor
are skipped with a note on stderr. CLI ``--with``/``--set``/``--policy``/``--profile`` apply,
completed by the Airflow config ``[allotment]``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from allotment.facade import Settings, check_steps, describe_value, iter_steps, using_settings

from .batch_jobs import render_batch_task
from .config import with_airflow_config
from .executors import executor_class, pod_override_config, worker_pod
from .kube import normalise_pod_name, to_dict
from .mapped import probe_of
from .resolution import resolve_task
from .tasks import BATCH_WORKER, JOB, POD, WORKER, task_spec

__all__ = ["render", "render_task"]


@contextlib.contextmanager
def _quiet(task: Any) -> Iterator[None]:
    """The operator's own INFO logs (the provider's ``Building pod ...``) left out while rendering:
    its logger (the task's cached one, ``DAGNode._cached_logger``) is one that passes warnings
    only, for the block."""
    quiet = logging.getLogger("allotment.render.operator")
    quiet.setLevel(logging.WARNING)
    had = "_cached_logger" in vars(task)
    saved = vars(task).get("_cached_logger")
    object.__setattr__(task, "_cached_logger", quiet)
    try:
        yield
    finally:
        if had:
            object.__setattr__(task, "_cached_logger", saved)
        else:
            vars(task).pop("_cached_logger", None)


def render_task(task: Any, settings: Settings) -> tuple[str, dict[str, Any]] | None:
    """``(pod_of, pod)`` for one task under ``settings``, or None when no Kubernetes pod carries its
    spec. A mapped task is rendered through its probe (one map index, :mod:`allotment.airflow.mapped`)."""
    task = probe_of(task) or task
    spec = task_spec(task)
    if spec is None:
        return None
    with using_settings(settings):
        if spec.target == POD:
            # As execute() does before it builds the pod: a valid, lower-case name (Airflow's _set_name).
            name = task.name
            set_name = getattr(task, "_set_name", None)
            try:
                if callable(set_name):
                    task.name = set_name(name)
                with _quiet(task):
                    pod = task.build_pod_request_obj(dry_run=True)
            finally:
                task.name = name
            data = to_dict(pod)
            if getattr(task, "random_name_suffix", False):
                normalise_pod_name(data)
            return getattr(type(task), "custom_operator_name", None) or type(task).__name__, data
        if spec.target == WORKER:
            resolved = resolve_task(task, settings=settings)
            config = pod_override_config(resolved, settings.profile, spec.user_executor_config)
            data = normalise_pod_name(to_dict(worker_pod(task.dag_id, task.task_id, config)))
            # The executor sends no apiVersion/kind (the API server knows them); the document names them.
            return "KubernetesExecutor worker", {"apiVersion": "v1", "kind": "Pod", **data}
    return None


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout (Airflow's console logs) to stderr, so stdout holds only the documents."""
    with contextlib.redirect_stdout(sys.stderr):
        try:
            out, err = sys.__stdout__.fileno(), sys.__stderr__.fileno()  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            yield
            return
        sys.__stdout__.flush()  # type: ignore[union-attr]
        saved = os.dup(out)
        os.dup2(err, out)
        try:
            yield
        finally:
            sys.__stdout__.flush()  # type: ignore[union-attr]
            os.dup2(saved, out)
            os.close(saved)


def render(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One document per resourced task in the DAG files under ``paths`` (see the module docs)."""
    with _stdout_to_stderr():
        return _render(paths, settings)


def _render(paths: Sequence[Path], settings: Settings) -> list[dict[str, Any]]:
    settings = with_airflow_config(settings)
    with using_settings(settings):  # DAG files are parsed under the same settings as they are rendered
        steps = list(iter_steps(paths))
    check_steps([*settings.withs, *settings.sets], [s.name for s in steps])
    documents: list[dict[str, Any]] = []
    for step in steps:
        task = step.obj
        spec = task_spec(task)
        if spec is None:
            print(f"allotment: {step.name!r} in {step.file} is no Airflow task; not rendered for airflow", file=sys.stderr)
            continue
        head: dict[str, Any] = {"dag_id": task.dag_id, "task_id": task.task_id, "file": step.file.as_posix()}
        if spec.mapped:
            head["map_index"] = "every index (how many is known only when the DAG runs)"
        if spec.target in (JOB, BATCH_WORKER):
            batch_document = render_batch_task(probe_of(task) or task, settings)
            if batch_document is not None:
                documents.append({**head, **batch_document})
                continue
        if spec.target == "local":  # the local backend (allotment.airflow.local_task.LOCAL): a child process, no pod
            with using_settings(settings):
                resolved = resolve_task(task, settings=settings)
            local: dict[str, Any] = {
                **head,
                "runs_on": "local",
                "resources": {n: describe_value(n, w.value) for n, w in resolved.winners.items()},
            }
            if resolved.notes:
                local["notes"] = list(resolved.notes)
            documents.append(local)
            continue
        rendered = render_task(task, settings)
        if rendered is None:
            print(
                f"allotment: task {task.task_id!r} of DAG {task.dag_id!r} runs on the {_executor(task)}, "
                "where no pod carries its spec; not rendered",
                file=sys.stderr,
            )
            continue
        pod_of, pod = rendered
        document = {**head, "pod_of": pod_of, "pod": pod}
        with using_settings(settings):
            notes = resolve_task(task, settings=settings).notes
        if notes:
            document["notes"] = list(notes)
        documents.append(document)
    return documents


def _executor(task: Any) -> str:
    return executor_class(getattr(task, "executor", None))
