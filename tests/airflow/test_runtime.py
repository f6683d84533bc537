"""Runtime overrides from dag_run.conf["allotment"], the policy, and memory-growing retries, as the
operator resolves them for one run and try (the real execution path is test_dag_run.py)."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from af_helpers import POLICY, StateStore, container, pod_of, run_context
from allotment import AllotmentError
from allotment.policy import Policy
from allotment.settings import Settings


def _kpo(**kwargs: Any) -> Any:
    from airflow.sdk import DAG
    from allotment.airflow import KubernetesPodOperator

    with DAG("conf", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
        op = KubernetesPodOperator(task_id="train", image="busybox", namespace="ml", **kwargs)
        KubernetesPodOperator(task_id="other", image="busybox", namespace="ml")
    return op


def _memory(op: Any, conf: Any = None, try_number: int = 1) -> str:
    return str(container(pod_of(op, run_context(op, try_number=try_number, conf=conf)))["resources"]["limits"]["memory"])


@pytest.mark.parametrize(
    ("conf", "memory"),
    [
        (None, "8Gi"),
        ({}, "8Gi"),
        ({"other": 1}, "8Gi"),  # keys outside "allotment" are the DAG's own business
        ({"allotment": {"with": "kubernetes:memory=65536"}}, "64Gi"),
        ({"allotment": {"with": ["memory=16Gi", "other:memory=32Gi"]}}, "16Gi"),
        ({"allotment": {"with": "batch:memory=64Gi"}}, "8Gi"),  # for another backend
        ({"allotment": {"with": "memory=4Gi"}}, "8Gi"),  # a floor never lowers
        ({"allotment": {"tasks": {"train": "memory=24Gi"}}}, "24Gi"),
        ({"allotment": {"tasks": {"train": {"memory": "24Gi", "cpu": 4}}}}, "24Gi"),
        ({"allotment": {"tasks": {"other": "memory=24Gi"}}}, "8Gi"),
        ({"allotment": {"set": "train:memory=2Gi"}}, "2Gi"),  # no policy: set is allowed
    ],
)
def test_conf_overrides(conf: Any, memory: str) -> None:
    assert _memory(_kpo(resources={"memory": "8Gi"}), conf) == memory


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ("memory=1Gi", ["dag_run.conf='memory=1Gi' is a str, not a mapping"]),
        ({"allotment": "memory=1Gi"}, ["step 'train': dag_run.conf['allotment']='memory=1Gi' is a str, not a mapping"]),
        ({"allotment": {"image": "evil:latest"}}, ["dag_run.conf['allotment'] has key 'image'", "only resource fields"]),
        ({"allotment": {"volumes": []}}, ["has key 'volumes'"]),
        ({"allotment": {"tasks": {"train": {"image": "evil"}}}}, ["['tasks']['train'] has key 'image', which is no resource field"]),
        ({"allotment": {"tasks": {"train": {"memory": "16gb"}}}}, ["memory='16gb'", "is not a quantity"]),
        ({"allotment": {"tasks": {"nope": "memory=1Gi"}}}, ["names task 'nope', which this DAG does not have", "tasks are other, train"]),
        ({"allotment": {"tasks": {"train": "other:memory=1Gi"}}}, ["names step 'other' inside the entry for task 'train'"]),
        ({"allotment": {"tasks": "train:memory=1Gi"}}, ["['tasks']='train:memory=1Gi' is a str"]),
        ({"allotment": {"with": "kubernetes:memory=="}}, ["memory='=' from dag_run.conf['allotment']['with'] 'kubernetes:memory=='"]),
        ({"allotment": {"with": "kubernetes:image=evil"}}, ["unknown key 'image'"]),
        ({"allotment": {"with": "nope:memory=1Gi"}}, ["names step 'nope', which does not exist"]),
        ({"allotment": {"with": 5}}, ["['with']=5 is a int, not a spec"]),
    ],
)
def test_bad_conf_fails_with_the_reason(conf: Any, words: list[str]) -> None:
    op = _kpo(resources={"memory": "8Gi"})
    with pytest.raises(AllotmentError) as caught:
        pod_of(op, run_context(op, conf=conf))
    for word in words:
        assert word in str(caught.value)


def _with_policy(data: dict[str, Any]) -> Any:
    from allotment.settings import using_settings

    return using_settings(Settings(backend="kubernetes", policy=Policy.from_mapping(data, origin="test-policy")))


def test_policy_checks_runtime_values() -> None:
    op = _kpo(resources={"memory": "8Gi"})
    with _with_policy({"caps": {"memory": "256Gi"}, "runtime": {"caps": {"memory": "64Gi"}}}):
        assert _memory(op, {"allotment": {"tasks": {"train": "memory=64Gi"}}}) == "64Gi"
        with pytest.raises(AllotmentError, match=r"memory='100Gi' from with dag_run.conf.* exceeds the cap memory <= 64Gi \(runtime.caps"):
            _memory(op, {"allotment": {"tasks": {"train": "memory=100Gi"}}})
        with pytest.raises(AllotmentError, match=r"is a runtime 'set', which policy test-policy does not allow"):
            _memory(op, {"allotment": {"set": "train:memory=2Gi"}})
    with _with_policy({"runtime": {"with": False}}), pytest.raises(AllotmentError, match="does not allow"):
        _memory(op, {"allotment": {"with": "memory=16Gi"}})


def _ended(store: StateStore, try_number: int, oom_killed: bool, reason: str) -> StateStore:
    from allotment.airflow.tries import load, save
    from allotment.facade import TryEnd

    save(store, load(store).with_end(try_number, TryEnd(oom_killed, reason), f"pod train-{try_number}"))
    return store


OOM = "container base terminated: OOMKilled, exit code 137"
EVICTED = "container base terminated: Error, exit code 137 (pod Evicted: The node was low on resource: memory)"


def test_memory_grows_only_after_an_oom_kill_and_is_capped_by_policy() -> None:
    from allotment.airflow.resolution import resolve_task
    from allotment.airflow.runtime import describe

    def memory(store: StateStore | None, try_number: int, conf: Any = None) -> str:
        op = _kpo(resources={"memory": "8Gi"}, retry_memory_factor=1.5)
        return str(container(pod_of(op, run_context(op, try_number=try_number, conf=conf, store=store)))["resources"]["limits"]["memory"])

    assert memory(StateStore(), 1) == "8Gi"
    assert memory(_ended(StateStore(), 1, True, OOM), 2) == "12Gi"  # try 1 OOM-killed
    assert memory(_ended(StateStore(), 1, False, "container base terminated: Error, exit code 1"), 2) == "8Gi"  # a plain error
    assert memory(_ended(StateStore(), 1, False, EVICTED), 2) == "8Gi"  # exit code 137 alone is only a SIGKILL
    oom_then_evicted = _ended(_ended(StateStore(), 1, True, OOM), 2, False, EVICTED)
    assert memory(oom_then_evicted, 3) == "12Gi"  # grown once, and not lost
    assert memory(_ended(oom_then_evicted, 3, True, OOM), 4) == "18Gi"
    assert memory(StateStore(), 3) == "8Gi"  # no record of earlier tries: their ends are unknown, none counts
    assert memory(_ended(StateStore(), 1, True, OOM), 2, {"allotment": {"tasks": {"train": "memory=10000"}}}) == "15000Mi"  # conf grows too
    with _with_policy({"caps": {"memory": "16Gi"}}):
        assert memory(_ended(_ended(StateStore(), 1, True, OOM), 2, True, OOM), 3) == "16Gi"
        op = _kpo(resources={"memory": "8Gi"}, retry_memory_factor=1.5)
        store = _ended(_ended(StateStore(), 1, True, OOM), 2, False, EVICTED)
        _ended(store, 3, True, OOM)
        lines = describe(resolve_task(op, run_context(op, try_number=4, store=store)))
    assert "allotment: note: earlier try 1: an OOM kill (pod train-1): " + OOM in lines
    assert "allotment: note: earlier try 2: no OOM kill (pod train-2): " + EVICTED in lines
    assert any("cap 16Gi" in line and "would be 18Gi" in line for line in lines)
    assert "allotment: note: try 4: memory 8Gi -> 16Gi after 2 OOM kills of earlier tries (retry_memory_factor 1.5)" in lines


def test_without_a_task_state_store_no_try_counts_and_the_log_says_so() -> None:
    from allotment.airflow.resolution import resolve_task
    from allotment.airflow.runtime import describe

    op = _kpo(resources={"memory": "8Gi"}, retry_memory_factor=1.5)
    lines = describe(resolve_task(op, run_context(op, try_number=2)))
    assert any("earlier tries are not counted: this Airflow has no task state store" in line for line in lines)
    assert lines[0].endswith("memory=8Gi, retry_memory_factor=1.5")


def test_example_policy_file_loads_and_caps() -> None:
    from allotment.policy import load_policy

    policy = load_policy(POLICY)
    assert policy.caps.memory == 256 * 1024 and policy.runtime_caps.memory == 64 * 1024
    assert policy.allow_with and not policy.allow_set
