"""What counts as an OOM kill (issue 12, scope 1; docs/design.md §7.3), judged on the engines' own
records as plain data: Kubernetes' ``OOMKilled`` termination reason (exit code 137 alone is only a
SIGKILL), AWS Batch's ``OutOfMemoryError`` attempt reason, the local backend's memory-cap kill;
and the closest count Argo can make from ``lastRetry.*``."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from allotment.oom import TryEnd, argo_oom_kills, batch_try_end, local_try_end, pod_try_end
from hypothesis import given
from hypothesis import strategies as st


def _pod(
    phase: str, base: dict[str, Any] | None, *, reason: str | None = None, others: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    statuses = [{"name": name, "state": state} for name, state in {"base": base, **(others or {})}.items() if state is not None]
    status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses}
    if reason:
        status.update(reason=reason, message="The node was low on resource: memory.")
    return {"metadata": {"name": "p"}, "status": status}


def _terminated(reason: str, code: int, message: str | None = None) -> dict[str, Any]:
    return {"terminated": {"reason": reason, "exitCode": code, **({"message": message} if message else {})}}


@pytest.mark.parametrize(
    ("pod", "oom", "said"),
    [
        (_pod("Failed", _terminated("OOMKilled", 137)), True, "container base terminated: OOMKilled, exit code 137"),
        (_pod("Failed", _terminated("Error", 1)), False, "container base terminated: Error, exit code 1"),
        (_pod("Failed", _terminated("Error", 137)), False, "container base terminated: Error, exit code 137"),  # a SIGKILL
        (
            _pod("Failed", _terminated("ContainerStatusUnknown", 137), reason="Evicted"),
            False,
            "container base terminated: ContainerStatusUnknown, exit code 137 (pod Evicted: The node was low on resource: memory.)",
        ),
        (_pod("Succeeded", _terminated("Completed", 0)), False, "container base terminated: Completed, exit code 0"),
        # the workload writes its termination message: it never decides
        (_pod("Failed", _terminated("Error", 137, "OOMKilled")), False, "container base terminated: Error, exit code 137"),
        # a sidecar OOM-killed is not the step's container
        (_pod("Failed", _terminated("Error", 1), others={"sidecar": _terminated("OOMKilled", 137)}), False, "Error, exit code 1"),
        (_pod("Failed", None, reason="Evicted"), False, "pod failed: Evicted (The node was low on resource: memory.); container base"),
    ],
    ids=["oom", "error", "sigkill", "evicted", "succeeded", "hostile-message", "sidecar", "no-container-status"],
)
def test_a_pod_ended_by_the_oom_killer_is_told_from_every_other_end(pod: dict[str, Any], oom: bool, said: str) -> None:
    end = pod_try_end(pod, "base")
    assert end is not None and end.oom_killed is oom
    assert said in end.reason


@pytest.mark.parametrize(
    "pod",
    [
        _pod("Pending", None),
        _pod("Running", {"running": {"startedAt": "2025-01-01T00:00:00Z"}}),
        {},
        {"status": "Failed"},
        {"status": {"containerStatuses": "nope"}},
        [],
    ],
)
def test_a_pod_that_has_not_ended_or_is_not_a_pod_is_no_end(pod: Any) -> None:
    assert pod_try_end(pod, "base") is None


def _job(status: str, attempts: list[dict[str, Any]] | None = None, **more: Any) -> dict[str, Any]:
    return {"jobId": "j", "status": status, "attempts": attempts or [], **more}


OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"


@pytest.mark.parametrize(
    ("job", "oom", "said"),
    [
        (_job("FAILED", [{"container": {"exitCode": 137, "reason": OOM_REASON}}]), True, f"last attempt {OOM_REASON}, exit code 137"),
        (_job("FAILED", [{"statusReason": OOM_REASON}]), True, OOM_REASON),
        # only the last attempt counts (a job's own retries stay inside one Airflow try)
        (_job("FAILED", [{"container": {"reason": OOM_REASON}}, {"container": {"exitCode": 1, "reason": "Error"}}]), False, "Error"),
        (_job("FAILED", [{"container": {"exitCode": 137, "reason": "Host EC2 (instance i-1) terminated."}}]), False, "Host EC2"),
        (_job("SUCCEEDED", [{"container": {"exitCode": 0}}]), False, "job SUCCEEDED: last attempt gave no reason"),
        (_job("FAILED", statusReason="Dependent Job failed"), False, "job FAILED without an attempt: Dependent Job failed"),
        (_job("FAILED", [{"container": {"reason": "Essential container exited: OutOfMemoryError"}}]), False, "Essential"),
        (
            _job("FAILED", eksAttempts=[{"containers": [{"name": "main", "exitCode": 137, "reason": "OOMKilled"}]}]),
            True,
            "container main OOMKilled, exit code 137",
        ),
        (
            _job("FAILED", eksAttempts=[{"containers": [{"name": "main", "exitCode": 137, "reason": "Error"}], "statusReason": "x"}]),
            False,
            "job FAILED: x",
        ),
    ],
    ids=["container-reason", "status-reason", "last-attempt", "spot", "succeeded", "no-attempt", "not-a-prefix", "eks-oom", "eks-other"],
)
def test_a_batch_job_whose_last_attempt_ran_out_of_memory_is_an_oom_kill(job: dict[str, Any], oom: bool, said: str) -> None:
    end = batch_try_end(job)
    assert end is not None and end.oom_killed is oom
    assert said in end.reason


def test_a_batch_job_on_eks_is_judged_by_the_container_the_spec_sizes() -> None:
    job = _job("FAILED", eksAttempts=[{"containers": [{"name": "side", "reason": "OOMKilled"}, {"name": "main", "reason": "Error"}]}])
    assert batch_try_end(job, "side") == TryEnd(True, "job FAILED: container side OOMKilled")
    end = batch_try_end(job, "main")
    assert end is not None and not end.oom_killed


@pytest.mark.parametrize("status", ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", None, 3])
def test_a_batch_job_that_has_not_ended_is_no_end(status: Any) -> None:
    assert batch_try_end({"status": status, "attempts": [{"container": {"reason": OOM_REASON}}]}) is None
    assert batch_try_end("not a job") is None  # type: ignore[arg-type]


def test_the_local_backend_kill_is_an_oom_kill() -> None:
    assert local_try_end("oom_killed", "OOMKilled: the step used 300Mi of the 96Mi asked") == TryEnd(
        True, "OOMKilled: the step used 300Mi of the 96Mi asked"
    )
    assert local_try_end("failed", "RuntimeError: boom").oom_killed is False
    assert local_try_end("succeeded").reason == "succeeded"


def test_what_an_engine_says_is_clipped_and_printable() -> None:
    end = pod_try_end(_pod("Failed", _terminated("OOMKilled\x1b[31m" + "x" * 10_000, 137)), "base")
    assert end is not None and not end.oom_killed  # not the reason OOMKilled
    assert len(end.reason) < 400 and "\x1b" not in end.reason and end.reason.isprintable()
    assert TryEnd.from_data({"oom_killed": True, "reason": "y" * 5000}) == TryEnd(True, "y" * 240 + "...")
    for bad in (None, {}, {"oom_killed": "yes"}, {"oom_killed": 1}, [True]):
        assert TryEnd.from_data(bad) is None


# -- Argo: the closest count ---------------------------------------------------------------------


def test_argo_counts_every_retry_after_an_oom_kill_and_one_fewer_after_anything_else() -> None:
    assert [argo_oom_kills(0, last) for last in (False, True)] == [0, 0]
    assert [argo_oom_kills(1, False), argo_oom_kills(1, True)] == [0, 1]  # a first retry is exact
    assert [argo_oom_kills(2, False), argo_oom_kills(2, True)] == [1, 2]
    assert argo_oom_kills(5, True) == 5


@given(st.lists(st.booleans(), max_size=12))
def test_argo_never_counts_fewer_oom_kills_than_there_were(ends: list[bool]) -> None:
    """For any attempts before this one (True: OOM-killed), the count Argo can make is never below
    the true count (so growth is never lost), exact when every attempt before the last was an OOM
    kill, and one too many for each other failure before the last attempt."""
    retries = len(ends)
    counted = argo_oom_kills(retries, bool(ends) and ends[-1])
    true = sum(ends)
    assert counted >= true
    if all(ends[:-1]):
        assert counted == true
    assert counted - true == sum(1 for oom in ends[:-1] if not oom)


def test_the_issue_sequences_on_argo() -> None:
    """OOM then eviction: still grown once (the true count); two evictions: grown once (one too many)."""
    for ends, counted in (([True, False], 1), ([False], 0), ([False, False], 1), ([True, True, False], 2)):
        assert argo_oom_kills(len(ends), ends[-1]) == counted
    assert all(argo_oom_kills(n, last) <= n for n, last in itertools.product(range(6), (False, True)))
