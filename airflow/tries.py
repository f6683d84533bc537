"""How the earlier tries of a task instance ended, kept across Airflow's tries (docs/design.md §7.3).

Memory grows only after a try that ended in an OOM kill: a try asks for the resolved memory x
``retry_memory_factor`` ^ (earlier tries of the task instance that ended in an OOM kill), the
core's rule (:meth:`Resolved.with_memory_after <allotment.facade.Resolved.with_memory_after>`);
what counts as an OOM kill is the core's too (:func:`allotment.facade.pod_try_end`,
:func:`~allotment.facade.batch_try_end`, :func:`~allotment.facade.local_try_end`). This module
learns each try's end from what the engine records and keeps it for the tries after it.

**Where the record lives.** Every Airflow try is a new process, and a new try clears all the
task instance's XComs (the execution API's ``ti_run``), so XCom cannot carry it. It lives in
Airflow's **task state store** (AIP-103, Airflow 3.3; ``context["task_state_store"]``, the
``task_state_store`` table through the execution API), under the key :data:`KEY`. Its rows are
scoped to (dag run, task id, map index): every try of the task instance reads and writes the same
row, and nothing that starts a try touches it. It goes only with its retention
(``[state_store] default_retention_days``, 30 days by default), the dag run, or success when
``[state_store] clear_on_success`` is set (when nothing is left to grow). So an OOM kill, then an
eviction, then a third try: the third try still sees the OOM kill of the first, and asks for the
memory grown once. A cleared task instance keeps its record too: a rerun after an OOM kill starts
grown. The record (at most :data:`MAX_TRIES` tries, each reason clipped)::

    {"tries": {"1": {"end": {"oom_killed": true, "reason": "container base terminated: OOMKilled, exit code 137"},
                     "by": "pod crunch-a1b2c3d4"},
               "2": {"launched": {"job": "4d2f..."}}}}

**Who writes it, from which record of the engine.**

======================================  =================================================================
KubernetesPodOperator,                  the pod's status when the try ends (the operator's ``cleanup``
``@task.kubernetes``                    reads the pod again, before it is deleted); a try whose pod
                                        was never seen ended with no OOM kill. A later try finds an
                                        earlier try's pod left behind (its worker died before the
                                        cleanup) by the task instance's pod labels
BatchOperator                           the job id at submit; its end from ``describe_jobs`` of that
                                        job, read when a later try starts
``@task.allotment`` / ``@task`` on the  the local runner's result, when the try ends
local backend
KubernetesExecutor                      the scheduler's pod mutation hook, building the next try's
                                        worker pod, reads the earlier tries' worker pods (the executor
                                        keeps failed ones: ``delete_worker_pods_on_failure`` is False by
                                        default) and writes their ends through the state backend
======================================  =================================================================

A try whose end could not be learned (its pod or job is gone) counts as no OOM kill: memory never
grows on a guess. Without a task state store (Airflow before 3.3) no try counts, and the task log
says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from allotment.facade import TryEnd

__all__ = [
    "KEY",
    "MAX_TRIES",
    "Earlier",
    "Store",
    "TryRecord",
    "count_earlier",
    "earlier_tries",
    "load",
    "record_end",
    "record_launch",
    "save",
    "store_of",
    "try_number_of",
]

KEY: Final = "allotment.tries"
"""The task state store key of the record."""

MAX_TRIES: Final = 200
"""The most tries a record keeps (the newest); more retries than that are not counted."""

_CACHE: Final = "_allotment_earlier"

log = logging.getLogger(__name__)


class Store(Protocol):
    """What the record needs of a task state store (``context["task_state_store"]``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class TryEntry:
    """One try: what it launched (``{"pod": ..., "namespace": ...}``, ``{"job": ...}``) and how it ended."""

    launched: Mapping[str, str] | None = None
    end: TryEnd | None = None
    by: str | None = None


@dataclass(frozen=True)
class TryRecord:
    """The ends of a task instance's tries, by try number (1 = first)."""

    tries: Mapping[int, TryEntry] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: object) -> TryRecord:
        """The record as stored; anything unreadable is left out (a record never raises)."""
        tries: dict[int, TryEntry] = {}
        found = data.get("tries") if isinstance(data, Mapping) else None
        for key, entry in (found or {}).items() if isinstance(found, Mapping) else ():
            if not isinstance(entry, Mapping) or not str(key).isdigit() or len(str(key)) > 9:
                continue
            launched = entry.get("launched")
            ok = isinstance(launched, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in launched.items())
            by = entry.get("by")
            tries[int(str(key))] = TryEntry(
                {str(k): str(v) for k, v in launched.items()} if ok and isinstance(launched, Mapping) else None,
                TryEnd.from_data(entry.get("end")),
                by[:200] if isinstance(by, str) else None,
            )
        return cls(tries)

    def to_data(self) -> dict[str, Any]:
        """Plain JSON data, the newest :data:`MAX_TRIES` tries."""
        out: dict[str, Any] = {}
        for number in sorted(self.tries)[-MAX_TRIES:]:
            entry = self.tries[number]
            item: dict[str, Any] = {}
            if entry.launched is not None:
                item["launched"] = dict(entry.launched)
            if entry.end is not None:
                item["end"] = entry.end.as_data()
            if entry.by is not None:
                item["by"] = entry.by
            out[str(number)] = item
        return {"tries": out}

    def with_launch(self, number: int, launched: Mapping[str, str]) -> TryRecord:
        old = self.tries.get(number, TryEntry())
        return TryRecord({**self.tries, number: TryEntry(dict(launched), old.end, old.by)})

    def with_end(self, number: int, end: TryEnd, by: str | None = None) -> TryRecord:
        old = self.tries.get(number, TryEntry())
        return TryRecord({**self.tries, number: TryEntry(old.launched, end, by or old.by)})

    def unended_before(self, try_number: int) -> dict[int, TryEntry]:
        """Earlier tries whose end is not known yet."""
        return {n: self.tries.get(n, TryEntry()) for n in range(1, try_number) if n not in self.tries or self.tries[n].end is None}

    def oom_kills_before(self, try_number: int) -> int:
        """How many tries before ``try_number`` ended in an OOM kill."""
        return sum(1 for n, e in self.tries.items() if n < try_number and e.end is not None and e.end.oom_killed)

    def lines_before(self, try_number: int) -> list[str]:
        """One line per earlier try, for the task log."""
        lines = []
        for n in range(1, try_number):
            entry = self.tries.get(n)
            by = f" ({entry.by})" if entry is not None and entry.by else ""
            if entry is None or entry.end is None:
                lines.append(f"try {n}: its end is not known{by}; counted as no OOM kill")
            else:
                kind = "an OOM kill" if entry.end.oom_killed else "no OOM kill"
                lines.append(f"try {n}: {kind}{by}: {entry.end.reason}")
        return lines


def store_of(context: Mapping[str, Any] | None) -> Store | None:
    """The task state store of a running task (None: there is none, e.g. Airflow before 3.3)."""
    store = (context or {}).get("task_state_store")
    return store if store is not None and callable(getattr(store, "get", None)) and callable(getattr(store, "set", None)) else None


def try_number_of(context: Mapping[str, Any] | None) -> int:
    """This try's number (1 = first)."""
    number = getattr((context or {}).get("ti"), "try_number", 1)
    return number if isinstance(number, int) and not isinstance(number, bool) and number >= 1 else 1


def load(store: Store) -> TryRecord:
    """The record kept in ``store`` (an empty one when there is none or it cannot be read)."""
    try:
        data = store.get(KEY, None)
    except Exception as e:  # an unreachable store is no OOM kill: nothing grows on a guess
        log.warning("allotment: could not read the record of earlier tries (%s: %s)", type(e).__name__, e)
        return TryRecord()
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    return TryRecord.from_data(data)


def save(store: Store, record: TryRecord) -> bool:
    """Write ``record``; False (logged) when the store refused it."""
    try:
        store.set(KEY, record.to_data())
    except Exception as e:
        log.warning("allotment: could not keep the record of earlier tries (%s: %s)", type(e).__name__, e)
        return False
    return True


def record_launch(context: Mapping[str, Any] | None, launched: Mapping[str, str]) -> None:
    """Note what this try launched (a job id), so that a later try can ask the engine how it ended."""
    store = store_of(context)
    if store is not None:
        save(store, load(store).with_launch(try_number_of(context), launched))


def record_end(context: Mapping[str, Any] | None, end: TryEnd, *, by: str | None = None, try_number: int | None = None) -> None:
    """Keep how a try ended (this one unless ``try_number`` says which)."""
    store = store_of(context)
    if store is not None:
        save(store, load(store).with_end(try_number or try_number_of(context), end, by))


@dataclass(frozen=True)
class Earlier:
    """What a try knows of the tries before it: ``oom_kills`` (what memory grows by) and a line
    per earlier try for the task log (``lines``); ``stored``: a task state store was there."""

    oom_kills: int
    lines: tuple[str, ...] = ()
    stored: bool = True

    def notes(self) -> tuple[str, ...]:
        """The lines as notes of the resolved spec (shown in the task log with it)."""
        if not self.stored:
            return ("earlier tries are not counted: this Airflow has no task state store (Airflow 3.3 and later), so memory does not grow",)
        return tuple(f"earlier {line}" for line in self.lines)


Learner = Callable[[Mapping[int, TryEntry]], Mapping[int, tuple[TryEnd, str]]]
"""Asks the engine how earlier tries ended: try number -> (end, what it was: ``pod x``, ``job y``)."""


def count_earlier(store: Store | None, number: int, learn: Learner | None = None) -> Earlier:
    """What try ``number`` knows of the tries before it, from ``store`` (None: there is none);
    ``learn`` asks the engine about earlier tries whose end is not in the record yet, and what it
    learns is written back."""
    if store is None:
        return Earlier(0, (), stored=number == 1)
    if number == 1:
        return Earlier(0)
    record = load(store)
    missing = record.unended_before(number)
    if missing and learn is not None:
        try:
            learned = learn(missing)
        except Exception as e:  # the engine could not say: those tries count as no OOM kill
            log.warning("allotment: could not learn how earlier tries ended (%s: %s)", type(e).__name__, e)
            learned = {}
        for n, (end, by) in learned.items():
            record = record.with_end(n, end, by)
        if learned:
            save(store, record)
    return Earlier(record.oom_kills_before(number), tuple(record.lines_before(number)))


def earlier_tries(task: Any, context: Mapping[str, Any] | None, learn: Learner | None = None) -> Earlier:
    """:func:`count_earlier` for the try ``context`` runs, learned once per try and kept on the
    task (so every resolve of the try agrees)."""
    number = try_number_of(context)
    ti = (context or {}).get("ti")
    key = (str((context or {}).get("run_id")), getattr(ti, "map_index", -1), number)
    cached = getattr(task, _CACHE, None)
    if isinstance(cached, tuple) and len(cached) == 2 and cached[0] == key:
        found: Earlier = cached[1]
        return found
    earlier = count_earlier(store_of(context), number, learn)
    object.__setattr__(task, _CACHE, (key, earlier))
    return earlier
