"""``allotment render --target batch``: the SubmitJob request and job-definition fields of every step on AWS Batch."""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..discover import Step
from ..render import render_steps
from ..resolve import Resolved
from ..settings import Settings
from .compile import JOB_DEFINITION_PLACEHOLDER, JOB_QUEUE_PLACEHOLDER, compile_batch, job_name

__all__ = ["render"]


def render(paths: Sequence[Path], settings: Settings, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``allotment render --target batch``: one document per step that runs on AWS Batch.

    Each has ``step``, ``file``, ``platform``, ``submitJob`` (the SubmitJob request:
    ``jobName`` is the step, ``jobQueue`` and ``jobDefinition`` come from ``@batch(queue=...,
    job_definition=...)`` or are the placeholders ``<job-queue>`` and ``<job-definition>``),
    ``jobDefinitionFields`` when a job-definition revision must carry part of the spec, and
    ``notes`` and ``warnings`` when there are any. ``options["platform"]`` (the CLI's
    ``--platform``) applies to steps whose ``@batch`` names none. Steps pinned to another
    backend are skipped with a note on stderr; warnings also go to stderr.
    """
    platform = (options or {}).get("platform")
    return render_steps(paths, settings, "batch", lambda step, resolved: _document(step, resolved, platform))


def _document(step: Step, resolved: Resolved, platform: str | None) -> dict[str, Any]:
    plan = compile_batch(resolved, platform, warn=False)
    for text in plan.warnings:
        print(f"allotment: warning: {text}", file=sys.stderr)
    queue = resolved.options.get("queue")
    definition = resolved.options.get("job_definition")
    notes = list(plan.notes)
    retry = plan.effects.get("retry_memory_factor")
    if retry:
        notes.append(f"retry_memory_factor {resolved.value('retry_memory_factor')}: {retry}")
    if not queue:
        notes.append(f"jobQueue {JOB_QUEUE_PLACEHOLDER} is a placeholder: name the queue with @batch(queue=...)")
    if not definition:
        notes.append(
            f"jobDefinition {JOB_DEFINITION_PLACEHOLDER} is a placeholder: name the base job definition with @batch(job_definition=...)"
        )
    if plan.needs_job_definition:
        notes.append(
            "at submit, allotment registers (once) a revision of the base job definition carrying jobDefinitionFields, named "
            "'<base>-allot-<12 hex of its content>', and submits with it"
        )
    name = job_name(step.name)
    if name != step.name:
        notes.append(f"jobName {name!r}: the step name made valid for AWS Batch (letters, digits, '-', '_')")
    document: dict[str, Any] = {
        "step": step.name,
        "file": step.file.as_posix(),
        "platform": plan.platform,
        "submitJob": plan.submit_job_request(name, str(queue or JOB_QUEUE_PLACEHOLDER), str(definition or JOB_DEFINITION_PLACEHOLDER)),
    }
    if plan.needs_job_definition:
        document["jobDefinitionFields"] = copy.deepcopy(dict(plan.job_definition_fields))
    if notes:
        document["notes"] = notes
    if plan.warnings:
        document["warnings"] = list(plan.warnings)
    return document
