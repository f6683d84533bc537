"""What each field of a resolved step becomes on AWS Batch, in words, for ``allotment explain``."""

from __future__ import annotations

from ..resolve import Resolved
from .compile import compile_batch

__all__ = ["batch_effects", "batch_notes"]


def batch_effects(resolved: Resolved, profile: object = None) -> dict[str, str]:
    """Field -> what it becomes on AWS Batch, in words, for ``allotment explain`` (the step's
    ``@batch(platform=...)``, else ec2). ``profile`` is unused: Batch has no node selectors."""
    del profile
    plan = compile_batch(resolved, warn=False)
    return dict(plan.effects)


def batch_notes(resolved: Resolved, platform: str | None = None) -> tuple[str, ...]:
    """What compiling for AWS Batch adds to the step's own notes (roundings, job-definition
    revisions, warnings), for ``allotment explain``; issues no warning."""
    plan = compile_batch(resolved, platform, warn=False)
    return plan.notes[len(resolved.notes) :]
