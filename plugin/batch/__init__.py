"""``allotment.batch`` (the package; ``allotment.batch`` the *attribute* stays the ``@batch``
decorator, so import from here with ``from allotment.batch import ...``): a resolved spec as
AWS Batch requests, for every face that submits Batch jobs.

- :func:`compile_batch`: SubmitJob overrides and job-definition fields for EC2, Fargate or EKS
  (:class:`BatchPlan`), every rounding noted;
- :func:`merge_submit_overrides` / :func:`merge_container_overrides`: the plan merged with the
  user's own overrides (defaults yield, conflicts are errors);
- :func:`ensure_job_definition`: the content-hashed job-definition revision a plan needs,
  registered once (takes any boto3-like client);
- :func:`batch_effects` / :func:`batch_notes`: what each field becomes, in words (``explain``).

No boto3 is imported.
"""

from __future__ import annotations

from .compile import (
    DEFAULT_PLATFORM,
    EPHEMERAL_STORAGE_GIB,
    FARGATE_PAIRS,
    JOB_DEFINITION_PLACEHOLDER,
    JOB_QUEUE_PLACEHOLDER,
    PLATFORMS,
    BatchPlan,
    batch_platform,
    compile_batch,
    fargate_size,
    format_vcpu,
    job_name,
)
from .explain import batch_effects, batch_notes
from .jobdefs import JobDefinitionRef, derive_job_definition, ensure_job_definition
from .merge import merge_container_overrides, merge_eks_properties_override, merge_requirements, merge_submit_overrides

__all__ = [
    "DEFAULT_PLATFORM",
    "EPHEMERAL_STORAGE_GIB",
    "FARGATE_PAIRS",
    "JOB_DEFINITION_PLACEHOLDER",
    "JOB_QUEUE_PLACEHOLDER",
    "PLATFORMS",
    "BatchPlan",
    "JobDefinitionRef",
    "batch_effects",
    "batch_notes",
    "batch_platform",
    "compile_batch",
    "derive_job_definition",
    "ensure_job_definition",
    "fargate_size",
    "format_vcpu",
    "job_name",
    "merge_container_overrides",
    "merge_eks_properties_override",
    "merge_requirements",
    "merge_submit_overrides",
]
