"""What counts as an OOM kill, on every engine (docs/design.md §7.3), read from the engine's own
records as plain data (the Kubernetes API's and AWS Batch's JSON, the local backend's result).

Memory grows only after a try that ended in an OOM kill (:meth:`allotment.resolve.Resolved.with_memory_after`):

======================  =====================================================================
Kubernetes              the step's container (Airflow's ``base``, Argo's ``main``) terminated
                        with reason ``OOMKilled`` (the kernel's OOM killer acted in its cgroup;
                        the exit code is 137). Exit code 137 with any other reason is only a
                        SIGKILL: an eviction, a preemption, a node lost, ``kill -9``
AWS Batch               the job's last attempt stopped with a reason that starts with
                        ``OutOfMemoryError`` (ECS: ``OutOfMemoryError: Container killed due to
                        memory usage``), as its ``statusReason`` or its container's ``reason``;
                        on EKS-backed Batch its container's reason ``OOMKilled``
local backend           the step went over its memory cap (``StepResult.oom_killed``: the cgroup's
                        OOM killer, or an allocation refused under the rlimit)
======================  =====================================================================

Anything else (a plain error, an eviction, a spot interruption, a pod that could not be
created, a job that never started) retries with the memory the try had. The texts these
records hold are shown in logs only: clipped, with control characters replaced, and a
container's termination message (written by the workload) is never part of the decision.

Argo shows a retried template only its last attempt (``lastRetry.*``), so it cannot count
earlier OOM kills; :func:`argo_oom_kills` is the closest rule that never loses growth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "BATCH_OOM_REASON",
    "KUBERNETES_OOM_REASON",
    "TryEnd",
    "argo_oom_kills",
    "batch_try_end",
    "local_try_end",
    "pod_try_end",
]

KUBERNETES_OOM_REASON: Final = "OOMKilled"
"""A container's termination reason (``state.terminated.reason``) after the OOM killer ended it."""

BATCH_OOM_REASON: Final = "OutOfMemoryError"
"""How an AWS Batch attempt's reason starts when its container went over its memory."""

_MAX_TEXT: Final = 240
_ENDED_BATCH: Final = ("SUCCEEDED", "FAILED")


def _text(value: object, limit: int = _MAX_TEXT) -> str:
    """Engine-provided text for a log line: a string, printable, at most ``limit`` characters."""
    text = value if isinstance(value, str) else ("" if value is None else repr(value))
    text = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class TryEnd:
    """How one try ended: ``oom_killed`` (it counts for growth) and ``reason``, one short
    sentence for the log (e.g. ``container base terminated: OOMKilled, exit code 137``)."""

    oom_killed: bool
    reason: str

    def as_data(self) -> dict[str, Any]:
        """Plain data (stored between tries)."""
        return {"oom_killed": self.oom_killed, "reason": self.reason}

    @classmethod
    def from_data(cls, data: object) -> TryEnd | None:
        """The end stored by :meth:`as_data`; None for anything else (a record never raises)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("oom_killed"), bool):
            return None
        return cls(bool(data["oom_killed"]), _text(data.get("reason")))


def _code(value: object) -> str:
    """``, exit code N`` (nothing when the record has none)."""
    return "" if value is None else f", exit code {_text(value, 12)}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def pod_try_end(pod: Mapping[str, Any], container: str) -> TryEnd | None:
    """How the try that ran ``pod`` (the Kubernetes API's JSON, camelCase) ended, judged by its
    ``container`` (the one the spec sizes); None while it has not ended (pending, running)."""
    status = _mapping(_mapping(pod).get("status"))
    phase = status.get("phase")
    found = next((c for c in _items(status.get("containerStatuses")) if _mapping(c).get("name") == container), None)
    terminated = _mapping(_mapping(_mapping(found).get("state")).get("terminated"))
    pod_reason = _text(status.get("reason"))
    if terminated:
        reason = terminated.get("reason")
        code = terminated.get("exitCode")
        said = f"container {_text(container, 63)} terminated: {_text(reason) or 'no reason'}{_code(code)}"
        if pod_reason:
            said += f" (pod {pod_reason}: {_text(status.get('message'), 120)})"
        return TryEnd(reason == KUBERNETES_OOM_REASON, said)
    if phase in ("Failed", "Succeeded"):
        what = f"pod {_text(phase, 12).lower()}" + (f": {pod_reason}" if pod_reason else "")
        message = _text(status.get("message"), 160)
        return TryEnd(False, what + (f" ({message})" if message else "") + f"; container {_text(container, 63)} did not terminate")
    return None


def batch_try_end(job: Mapping[str, Any], container: str | None = None) -> TryEnd | None:
    """How the try that submitted ``job`` (one of ``describe_jobs``' ``jobs``) ended, judged by its
    last attempt; None while the job has not ended. ``container``: on EKS, the container the spec
    sizes (default: any)."""
    job = _mapping(job)
    status = job.get("status")
    if status not in _ENDED_BATCH:
        return None
    attempts = _items(job.get("attempts"))
    eks = _items(job.get("eksAttempts"))
    if eks:
        last = _mapping(eks[-1])
        for item in _items(last.get("containers")):
            entry = _mapping(item)
            if container is not None and entry.get("name") != container:
                continue
            if entry.get("reason") == KUBERNETES_OOM_REASON:
                return TryEnd(True, f"job {status}: container {_text(entry.get('name'), 63)} OOMKilled{_code(entry.get('exitCode'))}")
        return TryEnd(False, f"job {status}: {_text(last.get('statusReason') or job.get('statusReason')) or 'no reason given'}")
    if attempts:
        last = _mapping(attempts[-1])
        reasons = [last.get("statusReason"), _mapping(last.get("container")).get("reason")]
        for reason in reasons:
            if isinstance(reason, str) and reason.startswith(BATCH_OOM_REASON):
                return TryEnd(True, f"job {status}: last attempt {_text(reason)}{_code(_mapping(last.get('container')).get('exitCode'))}")
        said = "; ".join(_text(r) for r in reasons if isinstance(r, str) and r)
        return TryEnd(False, f"job {status}: last attempt {said or 'gave no reason'}")
    return TryEnd(False, f"job {status} without an attempt: {_text(job.get('statusReason')) or 'no reason given'}")


def local_try_end(outcome: str, reason: str | None = None) -> TryEnd:
    """How a try on the local backend ended (``StepResult.outcome``: ``succeeded``, ``failed``, ``oom_killed``)."""
    return TryEnd(outcome == "oom_killed", _text(reason) or _text(outcome))


def argo_oom_kills(retries: int, last_oom_killed: bool) -> int:
    """The OOM kills an Argo attempt counts (its ``retries``: 0 first) when all it sees of the
    earlier attempts is whether the last one was an OOM kill (``lastRetry.*``).

    ``retries`` when the last attempt was an OOM kill, else ``retries - 1`` (0 on the first
    attempt and on the first retry): never fewer than the true count, so an OOM kill followed by an
    eviction keeps its growth; exact when every attempt before the last one was an OOM kill, so on
    every first retry (one after an eviction or a plain error keeps its memory). It counts one OOM
    kill too many for each attempt before the last one that failed otherwise (docs/design.md §7.3)."""
    if retries <= 0:
        return 0
    return retries if last_oom_killed else retries - 1
