"""Issue 12 on the local backend: memory grows only after an OOM kill. Memory for try n = resolved
memory x retry_memory_factor^(earlier tries that ended in an OOM kill), rounded up to whole MiB,
held to the caller's cap, never below the resolved value; other failures retry with the same memory.
The rule is the core's one (``RetryGrowth``, float64 as Argo computes it), not a copy."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import local_steps as steps
import pytest
from allotment import AllotmentError
from allotment.decorators import Layer, StepSpec
from allotment.local import Host, Limits
from allotment.local.retry import memory_for_try, run_with_retries
from allotment.model import Resources
from allotment.policy import Policy
from allotment.resolve import resolve
from hypothesis import given
from hypothesis import strategies as st

# -- the rule ----------------------------------------------------------------------------------


def test_no_earlier_oom_kill_means_the_resolved_memory() -> None:
    assert memory_for_try(4096, 2.0, 0) == 4096


def test_each_earlier_oom_kill_multiplies_by_the_factor() -> None:
    assert [memory_for_try(1000, 1.5, k) for k in range(4)] == [1000, 1500, 2250, 3375]


def test_growth_is_rounded_up_to_whole_mib_in_float64_as_every_engine_computes_it() -> None:
    # In binary floating point 3000 * 1.1 is 3300.0000000000005: 3301 MiB here, on Argo and in Airflow.
    assert 3000 * 1.1 > 3300
    assert memory_for_try(3000, 1.1, 1) == 3301
    assert memory_for_try(1000, 1.1, 2) == 1211  # 1210.0000000000002
    assert memory_for_try(1001, 1.5, 1) == 1502  # 1501.5 rounds up


def test_the_cap_holds_growth_but_never_goes_below_the_resolved_memory() -> None:
    assert memory_for_try(4096, 2.0, 3, cap_mib=10000) == 10000
    assert memory_for_try(4096, 2.0, 3, cap_mib=2048) == 4096


def test_no_factor_or_factor_one_means_no_growth() -> None:
    assert memory_for_try(4096, None, 5) == 4096
    assert memory_for_try(4096, 1.0, 5) == 4096


def test_a_negative_count_is_an_error() -> None:
    with pytest.raises(AllotmentError, match="earlier_oom_kills=-1 is not a count"):
        memory_for_try(4096, 2.0, -1)


@given(
    resolved=st.integers(min_value=1, max_value=2**20),
    factor=st.floats(min_value=1, max_value=16, allow_nan=False),
    kills=st.integers(min_value=0, max_value=6),
    cap=st.none() | st.integers(min_value=1, max_value=2**30),
)
def test_the_rule_is_the_cores_and_within_a_mib_of_exact_arithmetic(resolved: int, factor: float, kills: int, cap: int | None) -> None:
    asked = memory_for_try(resolved, factor, kills, cap)
    step = resolve(StepSpec("s").add(Layer("resources", Resources(memory=resolved, retry_memory_factor=factor))))
    policy = None if cap is None else Policy.from_mapping({"caps": {"memory": cap}}, origin="p.yaml")
    assert asked == step.with_memory_after(kills, policy).value("memory")  # the one rule every engine uses
    exact = math.ceil(Fraction(resolved) * Fraction(factor) ** kills)  # the binary float's exact product
    expected = max(resolved, exact if cap is None else min(exact, cap))
    assert expected <= asked <= expected + 1  # float64 rounding: at most one MiB above


# -- retried runs ------------------------------------------------------------------------------


def test_a_step_over_its_memory_is_retried_with_grown_memory_and_succeeds(host: Host) -> None:
    limits = Limits("grow", memory_mib=200, retry_memory_factor=2.0, sources={"memory": "@resources"})
    seen = []
    tries = run_with_retries(limits, steps.touch_mib, (300,), retries=2, host=host, on_try=seen.append)
    assert [t.outcome for t in tries.tries] == ["oom_killed", "succeeded"]
    assert seen == list(tries.tries)
    assert [t.placement.memory_limit_mib for t in tries.tries] == [200, 400]
    assert [t.try_number for t in tries.tries] == [1, 2]
    assert tries.ok and tries.oom_kills == 1 and tries.get() == 300 * 1024 * 1024
    second = tries.tries[1]
    assert second.limits.memory_mib == 400
    assert second.limits.source_of("memory") == "retry: try 2, 200Mi x 2^1 (earlier OOM kills)"
    assert "memory 200Mi -> 400Mi after 1 OOM kill (retry_memory_factor 2)" in second.notes


def test_a_plain_failure_retries_with_the_same_memory(host: Host, tmp_path: Path) -> None:
    limits = Limits("flaky", memory_mib=200, retry_memory_factor=2.0)
    tries = run_with_retries(limits, steps.fail_first_time, (str(tmp_path / "marker"), 16), retries=1, host=host)
    assert [t.outcome for t in tries.tries] == ["failed", "succeeded"]
    assert [t.placement.memory_limit_mib for t in tries.tries] == [200, 200]


def test_growth_held_by_the_cap_is_said_and_retries_stop_at_the_limit(host: Host) -> None:
    limits = Limits("capped", memory_mib=200, retry_memory_factor=2.0)
    tries = run_with_retries(limits, steps.touch_mib, (400,), retries=2, memory_cap_mib=300, host=host)
    assert [t.outcome for t in tries.tries] == ["oom_killed", "oom_killed", "oom_killed"]
    assert [t.placement.memory_limit_mib for t in tries.tries] == [200, 300, 300]
    assert "memory growth held at 300Mi by the cap 300Mi (would be 800Mi)" in tries.tries[2].notes
    assert not tries.ok


def test_retries_must_be_a_count() -> None:
    with pytest.raises(AllotmentError, match="retries=-1 is not a retry count"):
        run_with_retries(Limits("x"), steps.add, (1, 2), retries=-1)


def test_an_oom_kill_then_a_plain_failure_keeps_the_growth(host: Host, tmp_path: Path) -> None:
    """OOM, then another failure, then a third try: grown once, not twice, and not lost."""
    limits = Limits("mixed", memory_mib=200, retry_memory_factor=2.0)
    marker = tmp_path / "marker"
    tries = run_with_retries(limits, steps.oom_then_fail_then_succeed, (str(marker), 300), retries=2, host=host)
    assert [t.outcome for t in tries.tries] == ["oom_killed", "failed", "succeeded"]
    assert [t.placement.memory_limit_mib for t in tries.tries] == [200, 400, 400]


def test_earlier_oom_kills_of_an_engine_count_from_the_resolved_memory(host: Host) -> None:
    """An engine's earlier tries (an Airflow retry is a new process) count as if they had run here."""
    limits = Limits("again", memory_mib=200, retry_memory_factor=1.5)
    tries = run_with_retries(limits, steps.touch_mib, (360,), retries=1, earlier_oom_kills=1, host=host)
    assert [t.placement.memory_limit_mib for t in tries.tries] == [300, 450]  # 200 x 1.5, then 200 x 1.5^2
    assert [t.outcome for t in tries.tries] == ["oom_killed", "succeeded"]
    with pytest.raises(AllotmentError, match="earlier_oom_kills=-1 is not a count"):
        run_with_retries(limits, steps.add, (1, 2), retries=0, earlier_oom_kills=-1)
