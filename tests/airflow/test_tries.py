"""The record of earlier tries that Airflow's tries share (``allotment.airflow.tries``, issue 12): what
a try counts, what it does with a record it cannot read or a store that fails, and that the engine
is asked only about tries whose end is not known yet (the real task state store is exercised by
``test_dag_run.py``, ``test_executor_runtime.py`` and ``tests/run/test_run_airflow.py``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from af_helpers import StateStore
from allotment.airflow.tries import KEY, MAX_TRIES, TryRecord, count_earlier, earlier_tries, load, record_end, record_launch, save
from allotment.facade import TryEnd

OOM = TryEnd(True, "container base terminated: OOMKilled, exit code 137")
OTHER = TryEnd(False, "container base terminated: Error, exit code 1")


def _context(store: Any, try_number: int) -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=try_number, map_index=-1), "run_id": "r", "task_state_store": store}


def test_a_try_counts_the_oom_kills_of_the_tries_before_it_only() -> None:
    store = StateStore()
    record_end(_context(store, 1), OOM, by="pod a")
    record_end(_context(store, 2), OTHER, by="pod b")
    record_end(_context(store, 3), OOM, by="pod c")
    record = load(store)
    assert [record.oom_kills_before(n) for n in (1, 2, 3, 4)] == [0, 1, 1, 2]
    assert record.lines_before(3) == [f"try 1: an OOM kill (pod a): {OOM.reason}", f"try 2: no OOM kill (pod b): {OTHER.reason}"]
    assert store.get(KEY)["tries"]["1"] == {"end": OOM.as_data(), "by": "pod a"}


def test_a_launch_and_an_end_of_the_same_try_are_kept_together() -> None:
    store = StateStore()
    record_launch(_context(store, 2), {"job": "j-2"})
    record_end(_context(store, 2), OOM, by="job j-2")
    assert store.get(KEY) == {"tries": {"2": {"launched": {"job": "j-2"}, "end": OOM.as_data(), "by": "job j-2"}}}


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "not json",
        5,
        [1],
        {"tries": "x"},
        {"tries": {"a": {}, "-1": {}, "1" * 12: {}, "2": "x"}},
        {"tries": {"1": {"end": {"oom_killed": "yes"}}}},
    ],
)
def test_an_unreadable_record_counts_no_oom_kill(stored: Any) -> None:
    store = StateStore()
    if stored is not None:
        store.set(KEY, stored)
    assert load(store).oom_kills_before(10) == 0


class Broken:
    def get(self, key: str, default: Any = None) -> Any:
        raise ConnectionError("the API server is away")

    def set(self, key: str, value: Any) -> None:
        raise ConnectionError("the API server is away")


def test_a_store_that_fails_counts_no_oom_kill_and_never_fails_the_try(caplog: pytest.LogCaptureFixture) -> None:
    assert load(Broken()) == TryRecord()
    assert save(Broken(), TryRecord()) is False
    record_end(_context(Broken(), 2), OOM)  # no raise
    assert count_earlier(Broken(), 3).oom_kills == 0
    assert "could not read the record of earlier tries (ConnectionError: the API server is away)" in caplog.text


def test_the_engine_is_asked_only_about_tries_whose_end_is_unknown_and_what_it_says_is_kept() -> None:
    store = StateStore()
    record_end(_context(store, 1), OOM, by="pod a")
    asked: list[list[int]] = []

    def learn(missing: Any) -> dict[int, tuple[TryEnd, str]]:
        asked.append(sorted(missing))
        return {2: (OOM, "pod b, found by the task instance's labels")}

    assert count_earlier(store, 4, learn).oom_kills == 2
    assert asked == [[2, 3]]
    assert load(store).tries[2].by == "pod b, found by the task instance's labels"
    count_earlier(store, 3, learn)  # try 2's end is known now: nothing to ask
    assert asked == [[2, 3]]


def test_an_engine_that_cannot_say_counts_no_oom_kill(caplog: pytest.LogCaptureFixture) -> None:
    def learn(missing: Any) -> dict[int, tuple[TryEnd, str]]:
        raise TimeoutError("no answer")

    earlier = count_earlier(StateStore(), 2, learn)
    assert earlier.oom_kills == 0 and earlier.lines == ("try 1: its end is not known; counted as no OOM kill",)
    assert "could not learn how earlier tries ended (TimeoutError: no answer)" in caplog.text


def test_a_try_learns_once_and_every_resolve_of_it_agrees() -> None:
    store = StateStore()
    calls: list[int] = []

    def learn(missing: Any) -> dict[int, tuple[TryEnd, str]]:
        calls.append(1)
        return {}

    task = SimpleNamespace()
    first = earlier_tries(task, _context(store, 3), learn)
    record_end(_context(store, 1), OOM)  # written after this try counted: this try keeps its count
    assert earlier_tries(task, _context(store, 3), learn) is first and calls == [1]
    assert earlier_tries(task, _context(store, 4), learn).oom_kills == 1  # another try counts anew


def test_without_a_task_state_store_nothing_counts_and_a_retry_says_so() -> None:
    assert count_earlier(None, 1).notes() == ()
    (note,) = count_earlier(None, 2).notes()
    assert note.startswith("earlier tries are not counted: this Airflow has no task state store")


def test_the_record_keeps_the_newest_tries() -> None:
    record = TryRecord()
    for n in range(1, MAX_TRIES + 11):
        record = record.with_end(n, OOM)
    kept = TryRecord.from_data(record.to_data())
    assert sorted(kept.tries) == list(range(11, MAX_TRIES + 11))
