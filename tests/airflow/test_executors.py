"""Executors (issue 3b): a plain task on the KubernetesExecutor carries its spec in its worker pod
through executor_config["pod_override"]; under the Local/Celery executors nothing changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from af_helpers import check_pod, container, dagbag, sanitize, write_dag
from allotment import AllotmentError, resources

START = pendulum.datetime(2025, 1, 1, tz="UTC")
K8S_PATH = "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor"


def _tasks(executor: str | None = None, pod_override: Any = None) -> Any:
    """A DAG with a @resources @task, a PythonOperator with the same callable, and a plain @task."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, task

    from airflow import settings

    @resources(cpu=2, memory="8Gi", gpu=1, gpu_type="L4", shared_memory="1Gi")
    def crunch() -> None: ...

    with DAG("exec", schedule=None, start_date=START, default_args={"allotment": {"disk": "10Gi"}}) as dag:
        config = {"pod_override": pod_override} if pod_override is not None else None
        task(crunch, task_id="decorated", executor=executor, executor_config=config)()
        PythonOperator(task_id="classic", python_callable=crunch, executor=executor)

        @task
        def plain() -> None: ...

        plain()
    for t in dag.tasks:
        settings.task_policy(t)
    return dag


@pytest.mark.parametrize(
    ("configured", "task_executor", "expected"),
    [
        ("LocalExecutor", None, "LocalExecutor"),
        ("KubernetesExecutor", None, "KubernetesExecutor"),
        ("LocalExecutor,KubernetesExecutor", "KubernetesExecutor", "KubernetesExecutor"),
        (f"LocalExecutor,k8s:{K8S_PATH}", "k8s", "KubernetesExecutor"),
        (f"{K8S_PATH},CeleryExecutor", None, "KubernetesExecutor"),
        ("CeleryExecutor,KubernetesExecutor", None, "CeleryExecutor"),
    ],
)
def test_executor_of_a_task(configured: str, task_executor: str | None, expected: str) -> None:
    from allotment.airflow.executors import executor_class

    assert executor_class(task_executor, [p.strip() for p in configured.split(",")]) == expected


@pytest.mark.parametrize("executor", ["LocalExecutor", "CeleryExecutor"])
def test_nothing_goes_to_kubernetes_under_local_or_celery(monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    dag = _tasks()
    for t in dag.tasks:
        assert t.executor_config == {}


def _override(task: Any) -> dict[str, Any]:
    from kubernetes.client import models as k8s

    override = task.executor_config["pod_override"]
    assert isinstance(override, k8s.V1Pod)
    return sanitize(override)


@pytest.mark.parametrize(
    ("configured", "task_executor"), [("KubernetesExecutor", None), ("LocalExecutor,KubernetesExecutor", "KubernetesExecutor")]
)
def test_pod_override_on_the_kubernetes_executor(monkeypatch: pytest.MonkeyPatch, configured: str, task_executor: str | None) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", configured)
    dag = _tasks(task_executor)
    expected = {
        "spec": {
            "containers": [
                {
                    "name": "base",
                    "resources": {
                        "limits": {"memory": "8Gi", "ephemeral-storage": "10Gi", "nvidia.com/gpu": "1"},
                        "requests": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "10Gi", "nvidia.com/gpu": "1"},
                    },
                    "volumeMounts": [{"mountPath": "/dev/shm", "name": "dshm"}],
                }
            ],
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
            "tolerations": [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
            "volumes": [{"emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}, "name": "dshm"}],
        }
    }
    assert _override(dag.get_task("decorated")) == expected
    assert _override(dag.get_task("classic")) == expected
    assert dag.get_task("plain").executor_config == {}


def test_pod_override_is_merged_with_the_users_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.client import models as k8s

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    mine = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(labels={"team": "ml"}),
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="base", env=[k8s.V1EnvVar(name="X", value="1")],
                                        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data")])],
            volumes=[k8s.V1Volume(name="data", empty_dir=k8s.V1EmptyDirVolumeSource())],
            tolerations=[k8s.V1Toleration(key="dedicated", operator="Exists")],
            node_selector={"pool": "gpu"},
        ),
    )
    override = _override(_tasks(pod_override=mine).get_task("decorated"))
    base = override["spec"]["containers"][0]
    assert override["metadata"] == {"labels": {"team": "ml"}}
    assert base["env"] == [{"name": "X", "value": "1"}]
    assert [m["name"] for m in base["volumeMounts"]] == ["data", "dshm"]
    assert [v["name"] for v in override["spec"]["volumes"]] == ["data", "dshm"]
    assert [t["key"] for t in override["spec"]["tolerations"]] == ["dedicated", "nvidia.com/gpu"]
    assert override["spec"]["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-L4"}


def test_pod_override_conflict_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.client import models as k8s

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    mine = k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(
        name="base", resources=k8s.V1ResourceRequirements(requests={"memory": "2Gi"}, limits={"memory": "2Gi"}))]))
    with pytest.raises(AllotmentError, match=r"step 'decorated': requests.memory='2Gi' from executor_config\['pod_override'\] conflicts"):
        _tasks(pod_override=mine)
    with pytest.raises(AllotmentError, match=r"is a dict, not a V1Pod"):
        _tasks(pod_override={"spec": {}})


def test_worker_pod_as_the_executor_builds_it_carries_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.airflow.executors import worker_pod

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY", "apache/airflow")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG", "3.3.2")
    task = _tasks().get_task("decorated")
    pod = sanitize(worker_pod(task.dag_id, task.task_id, task.executor_config))
    base = container(pod)
    assert base["image"] == "apache/airflow:3.3.2"
    assert base["resources"]["requests"] == {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "10Gi", "nvidia.com/gpu": "1"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in base["volumeMounts"]
    assert pod["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert pod["metadata"]["labels"]["task_id"] == "decorated"
    check_pod({"apiVersion": "v1", "kind": "Pod", **pod})  # the executor's body names neither


def test_dag_on_the_kubernetes_executor_parses_serializes_and_renders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow.serialization.serialized_objects import DagSerialization
    from allotment.airflow.render import render
    from allotment.settings import load_settings

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    write_dag(tmp_path, "on_k8s.py", '''
        import pendulum
        from airflow.sdk import dag, task
        from allotment import resources
        from allotment.airflow import KubernetesPodOperator

        @dag(schedule="@daily", start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
        def on_k8s():
            @resources(cpu=4, memory="16Gi", shared_memory="2Gi")
            @task
            def train() -> None: ...

            pod = KubernetesPodOperator(task_id="pod", image="busybox", namespace="ml", resources={"cpu": 1})
            train() >> pod

        on_k8s()
    ''')
    bag = dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["on_k8s"]
    assert dag.get_task("pod").executor_config == {}  # a pod operator's spec sizes the launched pod, not its worker
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).get_task("train")
    assert sanitize(restored.executor_config["pod_override"]) == sanitize(dag.get_task("train").executor_config["pod_override"])
    documents = {d["task_id"]: d for d in render([tmp_path], load_settings(env={}), {})}
    assert documents["train"]["pod_of"] == "KubernetesExecutor worker"
    assert documents["pod"]["pod_of"] == "KubernetesPodOperator"
    assert documents["train"]["pod"]["metadata"]["name"].endswith("-XXXXXXXX")
    for document in documents.values():
        check_pod(document["pod"])
    assert container(documents["train"]["pod"])["resources"]["limits"]["memory"] == "16Gi"


def test_resources_mixin_on_a_python_operator_sizes_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
    from allotment.airflow import ResourcesMixin

    class SizedPythonOperator(ResourcesMixin, PythonOperator):
        pass

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    with DAG("mixin", schedule=None, start_date=START):
        op = SizedPythonOperator(task_id="t", python_callable=lambda: None, resources={"cpus": 3, "ram": 3072})
    assert _override(op)["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "3", "memory": "3Gi"}
    assert op.resources.cpus.qty == 3
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    with DAG("mixin2", schedule=None, start_date=START):
        op = SizedPythonOperator(task_id="t", python_callable=lambda: None, resources={"cpus": 3})
    assert op.executor_config == {} and op.resources.cpus.qty == 3
