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
the policy and ``retry_memory_factor`` (a try asks for memory x factor^(earlier tries whose job's
last attempt stopped with ``OutOfMemoryError``); any other failure retries with the same memory).

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
  OOM kills of earlier tries (``describe_jobs`` of their jobs, :mod:`allotment.airflow.batch_tries`)
  and compiled; a bad conf fails the task (no retry) before any AWS API call. The task log says
  what the job asks for and why (and how each earlier try ended). Then, only when the spec needs a job-definition
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
from typing import Any

from airflow.providers.amazon.aws.operators.batch import BatchOperator as _BatchOperator
from airflow.sdk.exceptions import AirflowFailException
from allotment.facade import PLATFORMS, AllotmentError, agree_option, ensure_job_definition, spec_of

from .batch_jobs import batch_plan, describe_plan, job_name_for
from .failures import ERROR_ATTR, defer_or_raise, deferred_error, fail
from .operators import ResourcesMixin
from .resolution import resolve_at_execute
from .tasks import ATTR, JOB, task_spec

__all__ = ["BatchOperator"]


def _checked(task_id: str, step: Any, job_definition: str | None, job_queue: str | None, platform: str | None) -> tuple[str, str]:
    """``job_definition`` and ``job_queue``, from the operator's arguments or ``@batch`` on ``step``; the platform checked."""
    spec = spec_of(step) if step is not None else None
    options = spec.options("batch") if spec is not None else {}
    where = "on BatchOperator"
    job_definition = agree_option(
        task_id, "job_definition", job_definition, where, "job_definition", options.get("job_definition"), "batch"
    )
    job_queue = agree_option(task_id, "job_queue", job_queue, where, "queue", options.get("queue"), "batch")
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
    return str(job_definition), str(job_queue)


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
        try:
            job_definition, job_queue = _checked(task_id, step, job_definition, job_queue, platform)
        except AllotmentError as e:
            # Built anyway (with no job definition or queue) during a DAG file import, so that the
            # cluster policy reports the error in one line; raised now otherwise.
            defer_or_raise(self, e)
            platform = None
        # Set before the mixin's set-up (which runs at the end of super().__init__) reads them.
        self.platform = platform
        self.eks_container = eks_container
        error = deferred_error(self)
        super().__init__(
            job_name=job_name or job_name_for(task_id),
            job_definition=str(job_definition or ""),
            job_queue=str(job_queue or ""),
            step=None if error is not None else step,
            **kwargs,
        )
        if error is not None:
            object.__setattr__(self, ERROR_ATTR, error)  # the first error is the one to report
            object.__setattr__(self, ATTR, None)

    def submit_job(self, context: Any) -> Any:
        """The provider's submit, then the job id kept for the tries after this one
        (:mod:`allotment.airflow.batch_tries` asks AWS Batch how the job ended)."""
        submitted = super().submit_job(context)
        spec = task_spec(self)
        if spec is not None and spec.target == JOB and self.job_id:
            from .batch_tries import JOB_KEY
            from .tries import record_launch

            record_launch(context, {JOB_KEY: str(self.job_id)})
        return submitted

    def execute(self, context: Any) -> Any:
        error = deferred_error(self)
        if error is not None:
            fail(self, error, before="any AWS Batch API call")
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
            client: Any = self.hook.client  # boto3's Batch client; the core takes any object with its two calls
            ref = ensure_job_definition(client, str(self.job_definition), plan, container=self.eks_container)
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
