"""Mapped tasks (issue 10, scope 4): ``@resources`` on a mapped ``@task``/``@task.kubernetes`` and
``resources=`` in ``.partial()`` of allotment's operators. Parsed with DagBag; each index's pod
built as the worker builds it (``unmap`` then ``build_pod_request_obj``); ``explain`` and
``render`` show the mapped task once. The run itself (every index's pod at the API server, a conf
entry applying to every index) is test_dag_run.py's ``allotment_mapped`` DAG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from af_helpers import POLICY, check_pod, container, dagbag, pod_of, sanitize, write_dag

DAG_FILE = """
import pendulum
from airflow.sdk import DAG, task
from allotment import resources
from allotment.airflow import BatchOperator, KubernetesPodOperator

with DAG("mapped", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
    KubernetesPodOperator.partial(task_id="shard", image="busybox", namespace="ml", resources={"cpu": 2, "memory": "3Gi"}).expand(
        arguments=[["a"], ["b"], ["c"]]
    )

    @resources(cpu=1, memory="2Gi", gpu=1)
    @task.kubernetes(image="python:3.12", namespace="ml", do_xcom_push=False)
    def score(n: int) -> None: ...

    score.expand(n=[1, 2])

    @resources(memory="5Gi")
    @task
    def tally(n: int) -> None: ...

    tally.expand(n=[1, 2, 3, 4])

    BatchOperator.partial(task_id="batched", job_queue="q", job_definition="d", resources={"memory": "8Gi"}).expand(
        parameters=[{"part": "1"}, {"part": "2"}]
    )
"""


@pytest.fixture
def bag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(dags, "mapped.py", DAG_FILE)
    found = dagbag(dags)
    assert found.import_errors == {}
    return found


def _index(task: Any, values: dict[str, Any]) -> Any:
    """The operator of one map index, as the worker builds it (``unmap`` with that index's values)."""
    if hasattr(task, "op_kwargs_expand_input"):
        values = {"op_kwargs": values}
    return task.unmap(values)


def test_every_index_of_a_mapped_pod_task_gets_the_spec(bag: Any) -> None:
    dag = bag.dags["mapped"]
    for arguments in (["a"], ["c"]):
        pod = pod_of(_index(dag.get_task("shard"), {"arguments": arguments}))
        assert container(pod)["resources"] == {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"memory": "3Gi"}}
        assert container(pod)["args"] == arguments
        check_pod(pod)
    score = dag.get_task("score")
    assert score.operator_class.__name__ == "KubernetesDecoratedOperator"  # allotment's, so every index is
    for n in (1, 2):
        pod = pod_of(_index(score, {"n": n}))
        assert container(pod)["resources"]["limits"] == {"memory": "2Gi", "nvidia.com/gpu": "1"}
        assert pod["spec"]["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]


def test_a_mapped_worker_task_gives_every_index_its_pod_override(bag: Any) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dag = bag.dags["mapped"]
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).get_task("tally")
    override = sanitize(restored.executor_config["pod_override"])  # what each index's task instance takes
    assert override["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "5Gi"}, "limits": {"memory": "5Gi"}}
    assert restored.executor_config["allotment"]["spec"]["mapped"] is True


def test_explain_and_render_show_a_mapped_task_once(
    bag: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from allotment.airflow.render import render
    from allotment.cli import main
    from allotment.settings import load_settings

    path = tmp_path / "dags" / "mapped.py"
    capsys.readouterr()
    assert main(["explain", str(path), "-o", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [item["step"] for item in items] == ["shard", "score", "tally", "batched"]
    note = "mapped task (.expand()): every map index gets this spec; how many indexes there are is known only when the DAG runs"
    for item in items:
        assert note in item["notes"], item
    memory = {item["step"]: next(f["shown"] for f in item["fields"] if f["field"] == "memory") for item in items}
    assert memory == {"shard": "3Gi", "score": "2Gi", "tally": "5Gi", "batched": "8Gi"}
    documents = render([path], load_settings(env={}), {})
    assert [(d["task_id"], d["map_index"]) for d in documents] == [
        (task_id, "every index (how many is known only when the DAG runs)") for task_id in ("shard", "score", "tally", "batched")
    ]
    shard = next(d for d in documents if d["task_id"] == "shard")
    assert container(shard["pod"])["resources"]["limits"] == {"memory": "3Gi"} and shard["notes"] == [note]
    batched = next(d for d in documents if d["task_id"] == "batched")
    assert {"type": "MEMORY", "value": "8192"} in batched["submitJob"]["containerOverrides"]["resourceRequirements"]


def test_mapped_specs_are_import_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_POLICY", str(POLICY))
    head = """
import pendulum
from airflow.sdk import DAG, task
from allotment import resources
from allotment.airflow import KubernetesPodOperator
START = pendulum.datetime(2025, 1, 1, tz="UTC")
"""
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(
        dags,
        "bad_decorator.py",
        head
        + """
with DAG("bad_decorator", schedule=None, start_date=START):
    @resources(memory="16gb")
    @task.kubernetes(image="busybox")
    def shard(n: int) -> None: ...
    shard.expand(n=[1, 2])
""",
    )
    write_dag(
        dags,
        "over_cap.py",
        head
        + """
with DAG("over_cap", schedule=None, start_date=START):
    @resources(gpu=16)
    @task
    def shard(n: int) -> None: ...
    shard.expand(n=[1, 2])
""",
    )
    write_dag(
        dags,
        "expanded.py",
        head
        + """
with DAG("expanded", schedule=None, start_date=START):
    KubernetesPodOperator.partial(task_id="shard", image="busybox").expand(resources=[{"memory": "1Gi"}, {"memory": "2Gi"}])
""",
    )
    errors = {Path(path).stem: text for path, text in dagbag(dags).import_errors.items()}
    assert errors == {
        "bad_decorator": "AirflowClusterPolicyError: step 'shard': memory='16gb' from @resources is not a quantity; use an int (MiB) "
        "or e.g. '16Gi', '16384Mi', '16G'",
        "over_cap": "AirflowClusterPolicyError: step 'shard': gpu='16' from @resources exceeds the cap gpu <= 8 (caps in policy "
        f"{POLICY}); ask for at most 8, or have the policy changed",
        "expanded": "AirflowClusterPolicyError: step 'shard': expands over resources, but the spec is one for every map index; give "
        "resources= and retry_memory_factor= in .partial(); expand over the operator's own container_resources to size the indexes "
        "differently",
    }


def test_expanding_over_the_operators_own_container_resources_sizes_each_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from af_helpers import run_context
    from airflow.sdk.exceptions import AirflowFailException
    from allotment.airflow.resolution import resolve_at_execute, resolve_task

    monkeypatch.setenv("ALLOTMENT_POLICY", str(POLICY))
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(
        dags,
        "per_index.py",
        """
        import pendulum
        from airflow.sdk import DAG
        from allotment.airflow import KubernetesPodOperator
        from kubernetes.client import models as k8s
        with DAG("per_index", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            KubernetesPodOperator.partial(task_id="shard", image="busybox", namespace="ml", resources={"cpu": 1}).expand(
                container_resources=[k8s.V1ResourceRequirements(limits={"memory": m}) for m in ("2Gi", "4Gi", "300Gi")]
            )
    """,
    )
    bag = dagbag(dags)
    assert bag.import_errors == {}  # the spec is valid; one index's own value is checked when it runs
    mapped = bag.dags["per_index"].get_task("shard")
    assert "container_resources differ per map index: each index's is read, and checked by the policy, when it runs" in (
        resolve_task(mapped).notes
    )
    from kubernetes.client import models as k8s

    def index(memory: str) -> Any:
        return _index(mapped, {"container_resources": k8s.V1ResourceRequirements(limits={"memory": memory})})

    for memory in ("2Gi", "4Gi"):
        assert container(pod_of(index(memory)))["resources"] == {"requests": {"cpu": "1", "memory": memory}, "limits": {"memory": memory}}
    # unmapped to run (the task runner renders, and so unmaps, inside its handling of failures):
    # an index's own value over the cap fails that index for good
    with pytest.raises(AirflowFailException, match="memory='300Gi' from container_resources= on KubernetesPodOperator exceeds the cap"):
        index("300Gi")
    task = mapped.unmap({"container_resources": None})
    task.container_resources = k8s.V1ResourceRequirements(limits={"memory": "300Gi"})  # e.g. from an upstream task's XCom
    with pytest.raises(AirflowFailException):
        resolve_at_execute(task, run_context(task), lambda r: None, before="any pod request")
