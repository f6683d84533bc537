"""allotment's :class:`BatchOperator`: the amazon provider's BatchOperator with ``resources=``.

::

    from allotment.airflow import BatchOperator

    train = BatchOperator(
        task_id="train", job_name="train", job_queue="gpu-queue", job_definition="trainer",
        resources={"cpu": 8, "memory": "32Gi", "gpu": 1, "shared_memory": "8Gi"},
        retry_memory_factor=1.5,
    )

    @resources(cpu=4, memory=8192)
    @batch(cpu=2, memory=16384, queue="gpu-queue", job_definition="trainer")
    def train(): ...                     # the job's code lives in the job definition's image

    BatchOperator(task_id="train", step=train)   # cpu 4, memory 16384; queue and definition from @batch

It is :class:`~allotment.airflow.operators.ResourcesMixin` on the provider's operator, so every
rule of the Kubernetes face holds: ``resources=`` in allotment's or Airflow's form, a spec from
``step=`` (``@resources``/``@batch``), ``default_args["allotment"]``, the deployment's ``with``
(``ALLOTMENT_WITH=batch:memory=64Gi`` or ``[allotment] with``), ``dag_run.conf["allotment"]``,
the policy and ``retry_memory_factor`` (try N asks for memory x factor^(N-1)).

Arguments beyond the provider's: ``platform=`` (``ec2``, the default; ``fargate``; ``eks``,
which a ``@batch(platform=...)`` may give too; they must agree), ``eks_container=`` (on
``eks``, the name of the job definition's container the spec sizes; default the first) and
``step=``. ``job_queue`` and ``job_definition`` may come from ``@batch(queue=...,
job_definition=...)``; ``job_name`` defaults to the task id, made valid for Batch.

What happens where:

* **Parse time** (the operator is built): the spec is resolved and compiled
  (:func:`allotment.awsbatch.compile_batch`) and merged with the operator's own
  ``container_overrides`` / ``eks_properties_override``: a bad spec, a platform that cannot
  run it (a GPU on Fargate...), a policy violation or a clash with the user's own
  ``resourceRequirements`` is the DAG file's import error. Disk on EC2 is an
  :class:`~allotment.awsbatch.AllotmentWarning` (the launch template sizes it).
* **Execute** (each try): the spec is resolved again with the run's ``dag_run.conf`` and the
  try number and compiled; a bad conf fails the task (no retry) before any AWS API call. The
  task log says what the job asks for and why. Then, only when the spec needs a job-definition
  field (``shared_memory`` on EC2, disk on Fargate, ``/dev/shm`` on EKS), the base
  ``job_definition`` is described and a content-hashed revision of it is found or registered
  (:func:`allotment.jobdefs.ensure_job_definition`: idempotent, one revision per content);
  the job is submitted with that revision and the compiled ``containerOverrides`` (or
  ``eksPropertiesOverride``) merged with the user's own (:mod:`allotment.batch_merge`): the
  user's entries are kept, a default yields to them, a conflicting ``resourceRequirements``
  entry is an error naming both. The operator's attributes are put back after the submit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.providers.amazon.aws.operators.batch import BatchOperator as _BatchOperator
from airflow.sdk.exceptions import AirflowFailException
from allotment.airflow.operators import ResourcesMixin, resolve_at_execute, resolve_task, task_spec
from allotment.airflow.tasks import BATCH_WORKER, JOB
from allotment.awsbatch import PLATFORMS, BatchPlan, compile_batch, job_name
from allotment.batch_merge import merge_submit_overrides
from allotment.decorators import spec_of
from allotment.errors import AllotmentError
from allotment.jobdefs import ensure_job_definition
from allotment.resolve import Resolved
from allotment.settings import Settings, using_settings

__all__ = ["BatchOperator", "batch_plan", "check_operator", "render_batch_task", "submit_request"]


def _agree(task_id: str, argument: str, given: Any, option: str, from_spec: Any) -> Any:
    """The operator's own ``argument`` or ``@batch(option=...)``; both, differing, is an error."""
    if given not in (None, "") and from_spec not in (None, "") and given != from_spec:
        raise AllotmentError(
            f"{argument}={given!r} on BatchOperator conflicts with {option}={from_spec!r} from @batch",
            step=task_id,
            accepted=f"give the {argument} in one place",
        )
    return given if given not in (None, "") else from_spec


def _platform_label(task: Any, resolved: Resolved) -> tuple[str | None, str]:
    if resolved.options.get("platform"):
        return str(resolved.options["platform"]), "@batch(platform=...)"
    if getattr(task, "platform", None):
        return str(task.platform), f"platform= on {type(task).__name__}"
    return None, "default"


def batch_plan(task: Any, resolved: Resolved, *, warn: bool = False, merge_templated: bool = True) -> tuple[BatchPlan, dict[str, Any]]:
    """The task's :class:`~allotment.awsbatch.BatchPlan` and the SubmitJob override members to send
    (``containerOverrides`` / ``eksPropertiesOverride``, merged with the operator's own).

    ``merge_templated=False`` skips the merge when the operator's own overrides still hold
    Jinja templates (at parse time); they are merged when the task runs, rendered."""
    chosen, _ = _platform_label(task, resolved)
    mine = getattr(task, "platform", None)
    if chosen and mine and chosen != mine:
        raise AllotmentError(
            f"platform={mine!r} on {type(task).__name__} conflicts with platform={chosen!r} from @batch",
            step=resolved.step,
            accepted="give the platform in one place",
        )
    plan = compile_batch(resolved, chosen, container=getattr(task, "eks_container", None), warn=warn)
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
    _, source = _platform_label(task, resolved)
    lines = [f"allotment: AWS Batch {plan.platform} (platform from {source}): {_requirements_text(plan, overrides)}"]
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


class BatchOperator(ResourcesMixin, _BatchOperator):
    """The amazon provider's BatchOperator with ``resources=``, ``retry_memory_factor=``, ``step=``,
    ``platform=`` and ``eks_container=`` (module docs); every other argument is the provider's.
    ``job_queue`` and ``job_definition`` may come from ``@batch`` on ``step``, ``job_name``
    defaults to the task id."""

    def __init__(
        self,
        *,
        job_name: str | None = None,
        job_definition: str | None = None,
        job_queue: str | None = None,
        platform: str | None = None,
        eks_container: str | None = None,
        step: Any = None,
        **kwargs: Any,
    ) -> None:
        task_id = str(kwargs.get("task_id"))
        spec = spec_of(step) if step is not None else None
        options = spec.options("batch") if spec is not None else {}
        job_definition = _agree(task_id, "job_definition", job_definition, "job_definition", options.get("job_definition"))
        job_queue = _agree(task_id, "job_queue", job_queue, "queue", options.get("queue"))
        missing = [name for name, value in (("job_definition", job_definition), ("job_queue", job_queue)) if not value]
        if missing:
            raise AllotmentError(
                f"BatchOperator has no {' and no '.join(missing)}",
                step=task_id,
                accepted="pass job_definition= and job_queue=, or give them with @batch(job_definition=..., queue=...) on step=",
            )
        if platform is not None and platform not in PLATFORMS:
            raise AllotmentError(
                "is not an AWS Batch platform",
                step=task_id,
                field="platform",
                value=platform,
                source="platform= on BatchOperator",
                accepted=f"use one of {', '.join(PLATFORMS)}",
            )
        # Set before the mixin's set-up (which runs at the end of super().__init__) reads them.
        self.platform = platform
        self.eks_container = eks_container
        super().__init__(
            job_name=job_name or job_name_for(task_id),
            job_definition=str(job_definition),
            job_queue=str(job_queue),
            step=step,
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        spec = task_spec(self)
        if spec is None or spec.target != JOB:
            return super().execute(context)
        resolved, (plan, overrides) = resolve_at_execute(
            self, context, lambda resolved: batch_plan(self, resolved), before="any AWS Batch API call"
        )
        for line in describe_plan(self, resolved, plan, overrides):
            self.log.info("%s", line)
        for text in plan.warnings:
            self.log.warning("allotment: warning: %s", text)
        try:
            ref = ensure_job_definition(self.hook.client, str(self.job_definition), plan, container=self.eks_container)
        except AllotmentError as e:
            self.log.error("allotment: the task fails before the submit: %s", e)
            raise AirflowFailException(f"allotment: {e}") from e
        if ref.derived:
            fields = json.dumps(dict(plan.job_definition_fields), sort_keys=True, separators=(",", ":"))
            self.log.info(
                "allotment: job definition %s (revision %s of %s, %s): it carries %s, derived from %r",
                ref.job_definition,
                ref.revision,
                ref.name,
                "registered now" if ref.registered else "an identical one reused",
                fields,
                self.job_definition,
            )
            for note in ref.notes:
                self.log.info("allotment: note: %s", note)
        saved = {
            "job_definition": self.job_definition,
            "container_overrides": self.container_overrides,
            "eks_properties_override": self.eks_properties_override,
        }
        try:
            self.job_definition = ref.job_definition
            self.container_overrides = overrides.get("containerOverrides", self.container_overrides)
            self.eks_properties_override = overrides.get("eksPropertiesOverride", self.eks_properties_override)
            return super().execute(context)
        finally:
            for name, value in saved.items():
                setattr(self, name, value)


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
    from allotment.airflow.executors import batch_executor_config

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
