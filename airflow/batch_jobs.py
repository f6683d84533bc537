"""What a task's spec becomes on AWS Batch: the plan, the merged SubmitJob overrides, the request the
BatchOperator sends and its ``render --target airflow`` document. Used by allotment's
:class:`~allotment.airflow.batch.BatchOperator` and by the parse-time check of any task whose
spec sizes a Batch job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from allotment.facade import (
    BatchPlan,
    Resolved,
    Settings,
    agree_option,
    compile_batch,
    job_name,
    merge_submit_overrides,
    using_settings,
)

from .executors import batch_executor_config
from .resolution import resolve_task
from .tasks import BATCH_WORKER, JOB, task_spec

__all__ = ["batch_plan", "check_operator", "describe_plan", "job_name_for", "render_batch_task", "submit_request"]


def batch_plan(task: Any, resolved: Resolved, *, warn: bool = False, merge_templated: bool = True) -> tuple[BatchPlan, dict[str, Any]]:
    """The task's :class:`~allotment.facade.BatchPlan` and the SubmitJob override members to send
    (``containerOverrides`` / ``eksPropertiesOverride``, merged with the operator's own).

    ``merge_templated=False`` skips the merge when the operator's own overrides still hold
    Jinja templates (at parse time); they are merged when the task runs, rendered."""
    where = f"on {type(task).__name__}"
    mine = getattr(task, "platform", None)
    agree_option(resolved.step, "platform", mine, where, "platform", resolved.options.get("platform"), "batch")
    plan = compile_batch(resolved, mine, platform_source=f"platform= {where}", container=getattr(task, "eks_container", None), warn=warn)
    user_container = getattr(task, "container_overrides", None)
    user_eks = getattr(task, "eks_properties_override", None)
    if not merge_templated and "{{" in repr((user_container, user_eks)):
        return plan, dict(plan.submit_overrides)
    overrides = merge_submit_overrides(
        plan,
        resolved,
        container_overrides=user_container,
        eks_properties_override=user_eks,
        user_source=f"the {type(task).__name__}'s own container_overrides/eks_properties_override",
    )
    return plan, overrides


def check_operator(task: Any, resolved: Resolved) -> None:
    """Parse-time check of a BatchOperator (called by :func:`allotment.airflow.operators.setup`)."""
    batch_plan(task, resolved, warn=True, merge_templated=False)


def _requirements_text(plan: BatchPlan, overrides: Mapping[str, Any]) -> str:
    if plan.platform != "eks":
        entries = (overrides.get("containerOverrides") or {}).get("resourceRequirements") or []
        return "containerOverrides.resourceRequirements " + ", ".join(f"{e.get('type')} {e.get('value')}" for e in entries)
    containers = ((overrides.get("eksPropertiesOverride") or {}).get("podProperties") or {}).get("containers") or []
    return "eksPropertiesOverride containers " + json.dumps(
        [{k: c[k] for k in ("name", "resources") if k in c} for c in containers], sort_keys=True, separators=(",", ":")
    )


def describe_plan(task: Any, resolved: Resolved, plan: BatchPlan, overrides: Mapping[str, Any]) -> list[str]:
    """Task-log lines: the platform and where it came from, what the submit asks for, the notes
    the compile added (roundings, revisions) and its warnings."""
    lines = [f"allotment: AWS Batch {plan.platform} (platform from {plan.platform_source}): {_requirements_text(plan, overrides)}"]
    lines += [f"allotment: note: {note}" for note in plan.notes[len(resolved.notes) :] if note not in plan.warnings]
    return lines


def submit_request(task: Any, overrides: Mapping[str, Any], job_definition: str | None = None) -> dict[str, Any]:
    """The SubmitJob request the operator sends (the members the provider's ``submit_job`` builds,
    ``None`` ones left out), with allotment's override members."""
    args: dict[str, Any] = {
        "jobName": task.job_name,
        "jobQueue": task.job_queue,
        "jobDefinition": job_definition or task.job_definition,
        "arrayProperties": task.array_properties,
        "parameters": task.parameters,
        "tags": task.tags,
        "containerOverrides": overrides.get("containerOverrides", task.container_overrides),
        "ecsPropertiesOverride": task.ecs_properties_override,
        "eksPropertiesOverride": overrides.get("eksPropertiesOverride", task.eks_properties_override),
        "nodeOverrides": task.node_overrides,
        "retryStrategy": task.retry_strategy,
        "shareIdentifier": task.share_identifier,
        "schedulingPriorityOverride": task.scheduling_priority_override,
    }
    if task.submit_job_timeout:
        args["timeout"] = {"attemptDurationSeconds": task.submit_job_timeout}
    return {key: value for key, value in args.items() if value is not None}


def job_name_for(task_id: str) -> str:
    """The default ``job_name``: the task id made valid for AWS Batch."""
    return job_name(task_id)


def render_batch_task(task: Any, settings: Settings) -> dict[str, Any] | None:
    """The ``render --target airflow`` document of a task whose spec sizes a Batch job, without
    ``dag_id``/``task_id``/``file`` (the caller adds them); None for other tasks.

    A BatchOperator: ``job_of``, ``platform``, ``submitJob`` (the request it sends; its
    ``jobDefinition`` is the base as given), ``jobDefinitionFields`` when a revision must carry
    part of the spec, ``notes`` and ``warnings``. A task on the AwsBatchExecutor: ``job_of``,
    ``platform`` and the ``executorConfig`` the executor merges into its SubmitJob call.
    """
    spec = task_spec(task)
    if spec is None or spec.target not in (JOB, BATCH_WORKER):
        return None
    with using_settings(settings):
        resolved = resolve_task(task, settings=settings)
        if spec.target == BATCH_WORKER:
            plan = compile_batch(resolved, warn=False)
            config = batch_executor_config(resolved, spec.user_executor_config)
            document: dict[str, Any] = {"job_of": "AwsBatchExecutor worker", "platform": plan.platform, "executorConfig": config}
            notes = [note for note in plan.notes if note not in plan.warnings]
        else:
            plan, overrides = batch_plan(task, resolved)
            document = {
                "job_of": type(task).__name__,
                "platform": plan.platform,
                "submitJob": submit_request(task, overrides),
            }
            notes = [note for note in plan.notes if note not in plan.warnings]
            if plan.needs_job_definition:
                document["jobDefinitionFields"] = json.loads(json.dumps(dict(plan.job_definition_fields)))
                notes.append(
                    f"when the task runs, allotment registers (once) a revision of job definition {task.job_definition!r} carrying "
                    "jobDefinitionFields, named '<base>-allot-<12 hex of its content>', and submits with it instead"
                )
    if notes:
        document["notes"] = notes
    if plan.warnings:
        document["warnings"] = list(plan.warnings)
    return document
