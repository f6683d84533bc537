"""Pod templates and the operator's own resources are step sources (issue 10, scopes 2 and 5).

Each test parses a real DAG file with Airflow's DagBag (allotment's cluster policy applies), then
builds the pod the way the task does (``build_pod_request_obj``, offline) or the worker pod the
way the KubernetesExecutor does (``PodGenerator.construct_pod``), and asks ``allotment explain``
(the CLI's own entry point) where each value came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from af_helpers import POLICY, check_pod, container, dagbag, pod_of, run_context, sanitize, write_dag

HEAD = """
import pendulum
from airflow.sdk import DAG, task
from allotment import resources
from allotment.airflow import KubernetesPodOperator
from kubernetes.client import models as k8s
START = pendulum.datetime(2025, 1, 1, tz="UTC")
"""

TEMPLATE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"labels": {"team": "ml"}},
    "spec": {
        "containers": [
            {
                "name": "base",
                "image": "placeholder",
                "resources": {"requests": {"cpu": "3", "memory": "20Gi", "hugepages-2Mi": "128Mi"}, "limits": {"memory": "20Gi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "ml"},
        "serviceAccountName": "trainer",
    },
}


def _explain(path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    from allotment.cli import main

    capsys.readouterr()  # what the test printed before (Airflow's own logs)
    assert main(["explain", str(path), "-o", "json", *args]) == 0, capsys.readouterr().err
    return {item["step"]: item for item in json.loads(capsys.readouterr().out)}


def _field(item: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in item["fields"] if f["field"] == name)


@pytest.mark.parametrize("how", ["pod_template_file", "pod_template_dict", "full_pod_spec"])
def test_a_templates_resources_join_the_maximum_and_explain_names_the_template(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "base.yaml"
    template.write_text(yaml.safe_dump(TEMPLATE))
    argument = {
        "pod_template_file": f"pod_template_file={str(template)!r}",
        "pod_template_dict": f"pod_template_dict={TEMPLATE!r}",
        "full_pod_spec": f"full_pod_spec=PodGenerator.deserialize_model_dict({TEMPLATE!r})",
    }[how]
    dags = tmp_path / "dags"
    dags.mkdir()
    path = write_dag(
        dags,
        "templated.py",
        HEAD
        + f"""
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
with DAG("templated", schedule=None, start_date=START):
    KubernetesPodOperator(task_id="train", image="trainer:1", namespace="ml", resources={{"cpu": 2, "memory": 8192}}, {argument})
""",
    )
    bag = dagbag(dags)
    assert bag.import_errors == {}
    pod = pod_of(bag.dags["templated"].get_task("train"))
    base = container(pod)
    # the template's 3 CPUs and 20Gi win over resources= (2, 8192 MiB); its other key is kept
    assert base["resources"] == {"requests": {"cpu": "3", "memory": "20Gi", "hugepages-2Mi": "128Mi"}, "limits": {"memory": "20Gi"}}
    # everything else of the template is the provider's reconciliation, unchanged
    assert base["image"] == "trainer:1" and pod["spec"]["serviceAccountName"] == "trainer"
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert pod["spec"]["tolerations"] == TEMPLATE["spec"]["tolerations"]
    assert pod["spec"]["nodeSelector"] == {"pool": "ml"}
    check_pod(pod)

    label = {
        "pod_template_file": f"pod template pod_template_file {str(template)!r} on KubernetesPodOperator",
        "pod_template_dict": "pod template pod_template_dict on KubernetesPodOperator",
        "full_pod_spec": "pod template full_pod_spec on KubernetesPodOperator",
    }[how]
    item = _explain(path, capsys=capsys)["train"]
    assert (_field(item, "memory")["shown"], _field(item, "memory")["source"]) == ("20Gi", label)
    assert _field(item, "memory")["others"] == ["resources= on KubernetesPodOperator 8Gi"]
    assert (_field(item, "cpu")["shown"], _field(item, "cpu")["source"]) == ("3", label)


def test_gpu_toleration_and_shm_volume_in_the_template_are_merged(tmp_path: Path) -> None:
    data = json.loads(json.dumps(TEMPLATE))
    spec = data["spec"]
    spec["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
    spec["containers"][0]["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
    spec["volumes"].append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}})
    spec["tolerations"].append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(
        dags,
        "gpu.py",
        HEAD
        + f"""
with DAG("gpu", schedule=None, start_date=START):
    KubernetesPodOperator(
        task_id="train", image="trainer:1", namespace="ml", pod_template_dict={data!r},
        resources={{"memory": "32Gi", "gpu": 2, "gpu_type": "H100", "shared_memory": "4Gi"}},
    )
""",
    )
    bag = dagbag(dags)
    assert bag.import_errors == {}
    pod = pod_of(bag.dags["gpu"].get_task("train"))
    base, spec_out = container(pod), pod["spec"]
    assert base["resources"]["limits"] == {"memory": "32Gi", "nvidia.com/gpu": "2"}  # 2 GPUs win over the template's 1
    # the template's 8Gi /dev/shm is a source too: one volume, at the larger size, allotment's name
    assert [v for v in spec_out["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    ]
    assert [m["mountPath"] for m in base["volumeMounts"]] == ["/data", "/dev/shm"]
    # the template's GPU toleration and its own are kept once each; its node selector gets the GPU label
    assert spec_out["tolerations"] == data["spec"]["tolerations"]
    assert spec_out["nodeSelector"] == {"pool": "ml", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    check_pod(pod)


def test_a_template_that_conflicts_is_an_error_naming_both(tmp_path: Path) -> None:
    data = json.loads(json.dumps(TEMPLATE))
    data["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "Tesla-T4"}
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(
        dags,
        "clash.py",
        HEAD
        + f"""
with DAG("clash", schedule=None, start_date=START):
    KubernetesPodOperator(task_id="train", image="t", pod_template_dict={data!r}, resources={{"gpu": 1, "gpu_type": "H100"}})
""",
    )
    errors = list(dagbag(dags).import_errors.values())
    assert errors == [
        "AirflowClusterPolicyError: step 'train': node selector nvidia.com/gpu.product='Tesla-T4' from the KubernetesPodOperator's "
        "own container_resources/volumes/volume_mounts/node_selector/tolerations or its pod_template_dict conflicts with "
        "nvidia.com/gpu.product='NVIDIA-H100-80GB-HBM3' that allotment derives from gpu_type; drop the label from your node "
        "selector, or change gpu_type"
    ]


def test_the_operators_own_tolerations_replace_the_templates_as_in_the_provider(tmp_path: Path) -> None:
    """Without allotment the provider drops a template's tolerations when the operator has its own:
    that stays so; a GPU toleration allotment adds does not make the template's vanish."""
    from airflow.sdk import DAG
    from allotment.airflow import KubernetesPodOperator
    from kubernetes.client import models as k8s

    with DAG("t", schedule=None):
        own = KubernetesPodOperator(
            task_id="own",
            image="t",
            pod_template_dict=TEMPLATE,
            resources={"gpu": 1},
            tolerations=[k8s.V1Toleration(key="spot", operator="Exists")],
        )
        kept = KubernetesPodOperator(task_id="kept", image="t", pod_template_dict=TEMPLATE, resources={"gpu": 1})
    assert [t["key"] for t in pod_of(own)["spec"]["tolerations"]] == ["spot", "nvidia.com/gpu"]
    assert [t["key"] for t in pod_of(kept)["spec"]["tolerations"]] == ["dedicated", "nvidia.com/gpu"]


def test_the_kubernetes_executors_pod_template_is_a_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from allotment.airflow.executors import worker_pod

    template = tmp_path / "worker.yaml"
    data = json.loads(json.dumps(TEMPLATE))
    data["spec"]["containers"][0]["resources"] = {"requests": {"memory": "20Gi"}, "limits": {"memory": "20Gi"}}
    template.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(template))
    dags = tmp_path / "dags"
    dags.mkdir()
    path = write_dag(
        dags,
        "worker.py",
        HEAD
        + """
with DAG("worker", schedule=None, start_date=START):
    @resources(cpu=2, memory=8192, gpu=1)
    @task
    def train() -> None: ...
    train()
""",
    )
    bag = dagbag(dags)
    assert bag.import_errors == {}
    task = bag.dags["worker"].get_task("train")
    pod = sanitize(worker_pod(task.dag_id, task.task_id, task.executor_config))
    base = container(pod)
    assert base["resources"]["requests"] == {"cpu": "2", "memory": "20Gi", "nvidia.com/gpu": "1"}
    assert base["resources"]["limits"] == {"memory": "20Gi", "nvidia.com/gpu": "1"}
    # the template's toleration and node selector stay (the executor lets pod_override's replace them)
    assert [t["key"] for t in pod["spec"]["tolerations"]] == ["dedicated", "nvidia.com/gpu"]
    assert pod["spec"]["nodeSelector"] == {"pool": "ml"}
    assert [m["name"] for m in base["volumeMounts"]] == ["data"] and [v["name"] for v in pod["spec"]["volumes"]] == ["data"]
    check_pod(pod)
    memory = _field(_explain(path, capsys=capsys)["train"], "memory")
    assert (memory["shown"], memory["source"]) == ("20Gi", f"pod template the KubernetesExecutor's pod_template_file {str(template)!r}")


def test_an_executor_template_sizing_dev_shm_smaller_than_the_spec_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = tmp_path / "worker.yaml"
    data = json.loads(json.dumps(TEMPLATE))
    data["spec"]["containers"][0]["volumeMounts"] = [{"name": "shm", "mountPath": "/dev/shm"}]
    data["spec"]["volumes"] = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    template.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(template))
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(
        dags,
        "same.py",
        HEAD
        + """
with DAG("same", schedule=None, start_date=START):
    @resources(memory="32Gi", shared_memory="8Gi")
    @task
    def same() -> None: ...
    same()
""",
    )
    write_dag(
        dags,
        "more.py",
        HEAD
        + """
with DAG("more", schedule=None, start_date=START):
    @resources(memory="32Gi", shared_memory="16Gi")
    @task
    def more() -> None: ...
    more()
""",
    )
    bag = dagbag(dags)
    assert list(bag.import_errors.values()) == [
        "AirflowClusterPolicyError: step 'more': shared_memory='16Gi' from @resources is more than the 8Gi of the /dev/shm volume "
        f"'shm' in the KubernetesExecutor's pod_template_file {str(template)!r}, which "
        "pod_override cannot resize (the executor adds pod_override's volumes to the template's); ask for at most 8Gi, or drop "
        "that volume from the template (allotment adds it)"
    ]
    from allotment.airflow.executors import worker_pod

    task = bag.dags["same"].get_task("same")
    pod = sanitize(worker_pod(task.dag_id, task.task_id, task.executor_config))
    assert [v for v in pod["spec"]["volumes"] if v["name"] in ("shm", "dshm")] == [data["spec"]["volumes"][0]]  # one /dev/shm
    check_pod(pod)


def test_templated_container_resources_are_read_after_templating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: a KPO whose own container_resources asks, through Jinja from the run's
    conf, for 1Ti and 64 GPUs, under a policy capping 256Gi and 8 GPUs."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("ALLOTMENT_POLICY", str(POLICY))
    dags = tmp_path / "dags"
    dags.mkdir()
    path = write_dag(
        dags,
        "jinja.py",
        HEAD
        + """
with DAG("jinja", schedule=None, start_date=START):
    KubernetesPodOperator(
        task_id="train", image="t", namespace="ml", resources={"cpu": 2},
        container_resources=k8s.V1ResourceRequirements(
            limits={"memory": "{{ dag_run.conf.get('mem', '8Gi') }}", "nvidia.com/gpu": "{{ dag_run.conf.get('gpus', '1') }}"}),
    )
""",
    )
    bag = dagbag(dags)
    assert bag.import_errors == {}
    item = _explain(path, capsys=capsys)["train"]
    assert any(
        "container_resources= on KubernetesPodOperator: limits.memory \"{{ dag_run.conf.get('mem', '8Gi') }}\"" in n
        and "read when the task runs, after templating" in n
        for n in item["notes"]
    )
    op = bag.dags["jinja"].get_task("train")

    def run(conf: dict[str, Any]) -> Any:
        from allotment.airflow.config import active_settings
        from allotment.airflow.resolution import resolve_at_execute
        from allotment.airflow.wiring import pod_arguments

        task = op.prepare_for_execution()  # a shallow copy, as the task runner makes
        context = run_context(task, conf=conf)
        task.render_template_fields(context)
        resolve_at_execute(task, context, lambda r: pod_arguments(task, r, active_settings(), running=True), before="any pod request")
        return container(pod_of(task, context))

    base = run({})
    assert base["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": "1"}
    assert run({"mem": "32Gi"})["resources"]["limits"]["memory"] == "32Gi"
    # a rendered value is runtime input: runtime.caps (memory 64Gi, gpu 4) and caps (256Gi, 8) apply
    for conf, message in [
        (
            {"mem": "1Ti"},
            # the cap that binds is named: runtime.caps (64Gi) is the stricter for runtime input
            "memory='1024Gi' from container_resources= on KubernetesPodOperator (templated) exceeds the cap memory <= 64Gi (runtime",
        ),
        (
            {"mem": "100Gi"},
            "memory='100Gi' from container_resources= on KubernetesPodOperator (templated) exceeds the cap memory <= 64Gi (runtime",
        ),
        ({"gpus": "64"}, "gpu='64' from container_resources= on KubernetesPodOperator (templated) exceeds the cap gpu <= 4 (runtime"),
        ({"gpus": "6"}, "gpu='6' from container_resources= on KubernetesPodOperator (templated) exceeds the cap gpu <= 4 (runtime.caps"),
        ({"mem": "{{ 7 * 7 }}Gi"}, "holds a Jinja template marker after templating"),
        ({"mem": "lots"}, "memory='lots' from container_resources= on KubernetesPodOperator (limits.memory) is not a quantity"),
    ]:
        with pytest.raises(AirflowFailException) as failed:
            run(conf)
        assert message in str(failed.value), str(failed.value)
        assert failed.value.__cause__ is None and failed.value.__suppress_context__  # one clean message, no chain
