"""How a BatchOperator's try ended, from AWS Batch itself (docs/design.md §7.3, :mod:`allotment.airflow.tries`).

Each try submits its own job (Airflow's retries; a job's own ``retryStrategy`` attempts stay
inside one try). The job id is kept in the task state store when the job is submitted; when a
later try starts, ``describe_jobs`` of the earlier tries' jobs whose end is not recorded says how
each ended, judged by the core on the job's last attempt (:func:`allotment.facade.batch_try_end`:
a reason starting ``OutOfMemoryError`` is an OOM kill, any other is not). A job that has not
ended, or that AWS Batch no longer knows, counts as no OOM kill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from allotment.facade import TryEnd, batch_try_end

from .tries import Learner, TryEntry

__all__ = ["JOB_KEY", "learn_from_jobs"]

JOB_KEY: Final = "job"
"""``launched[JOB_KEY]``: the id of the job a try submitted."""

_MAX_JOBS: Final = 100  # describe_jobs takes at most 100 ids


def learn_from_jobs(task: Any) -> Learner:
    """Ask AWS Batch (``describe_jobs``) how earlier tries' jobs ended."""

    def learn(missing: Mapping[int, TryEntry]) -> dict[int, tuple[TryEnd, str]]:
        ids = {n: e.launched[JOB_KEY] for n, e in missing.items() if e.launched is not None and e.launched.get(JOB_KEY)}
        if not ids:
            return {}
        wanted = sorted(set(ids.values()))[-_MAX_JOBS:]
        client: Any = task.hook.client
        jobs = {job.get("jobId"): job for job in client.describe_jobs(jobs=wanted).get("jobs") or [] if isinstance(job, Mapping)}
        container = getattr(task, "eks_container", None)
        out: dict[int, tuple[TryEnd, str]] = {}
        for number, job_id in ids.items():
            if job_id not in wanted:
                continue
            job = jobs.get(job_id)
            end = batch_try_end(job, container) if job is not None else TryEnd(False, "AWS Batch no longer knows the job")
            if end is not None:
                out[number] = (end, f"job {job_id}")
        return out

    return learn
