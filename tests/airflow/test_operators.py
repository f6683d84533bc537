"""allotment's operators: ``resources=`` in its three forms, the spec on a callable, the user's own
pod settings kept and merged, TaskFlow stacking, DAG defaults, deployment-wide ``with``, and
bad specs as DAG import errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pendulum
import pytest
from af_helpers import POLICY, StateStore, check_pod, container, dagbag, pod_of, run_context, write_dag
from allotment import AllotmentError, Resources, kubernetes, resources

START = pendulum.datetime(2025, 1, 1, tz="UTC")


def _dag(dag_id: str = "t", **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id=dag_id, schedule=None, start_date=START, **kwargs)


def _kpo(**kwargs: Any) -> Any:
    from allotment.airflow import KubernetesPodOperator

    kwargs.setdefault("task_id", "job")
    kwargs.setdefault("image", "busybox")
    kwargs.setdefault("namespace", "ml")
    with _dag():
        return KubernetesPodOperator(**kwargs)


def _policy(dag: Any) -> Any:
    """Airflow's own cluster-policy hook (allotment is registered through its entry point)."""
    from airflow import settings

    for task in dag.tasks:
        settings.task_policy(task)
    return dag


@pytest.mark.parametrize(
    "given",
    [Resources(cpu=2, memory="4Gi"), {"cpu": 2, "memory": 4096}, {"cpu": "2000m", "memory": "4Gi"}, {"cpus": 2, "ram": 4096}],
    ids=["Resources", "fields", "quantities", "airflow-form"],
)
def test_resources_forms_give_the_same_pod(given: Any) -> None:
    op = _kpo(resources=given)
    assert container(pod_of(op))["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}
    # Airflow's own BaseOperator resources stay filled (cores, MiB)
    assert (op.resources.cpus.qty, op.resources.ram.qty) == (2, 4096)


def test_airflow_form_ram_and_disk_are_mib() -> None:
    op = _kpo(resources={"cpus": 0.5, "ram": 1000, "disk": 2048, "gpus": 0})
    assert container(pod_of(op))["resources"] == {
        "requests": {"cpu": "500m", "memory": "1000Mi", "ephemeral-storage": "2Gi"},
        "limits": {"memory": "1000Mi", "ephemeral-storage": "2Gi"},
    }
    assert op.resources.cpus.qty == 0.5 and op.resources.disk.qty == 2048


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"cpus": 2, "memory": "4Gi"}, ["mixes Airflow's keys (cpus) with allotment's (memory)", "resources= on KubernetesPodOperator"]),
        ({"memory": "16gb"}, ["step 'job'", "memory='16gb'", "from resources= on KubernetesPodOperator", "'16Gi'"]),
        ({"mem": 1}, ["unknown field 'mem'", "cpus"]),
        ("4Gi", ["got a str", "allotment.Resources"]),
    ],
)
def test_bad_resources_argument(given: Any, words: list[str]) -> None:
    with pytest.raises(AllotmentError) as caught:
        _kpo(resources=given)
    for word in words:
        assert word in str(caught.value)


def test_retry_memory_factor_argument_grows_memory_after_oom_kills() -> None:
    from allotment.airflow.tries import TryRecord, save
    from allotment.facade import TryEnd

    op = _kpo(resources={"memory": "1Gi"}, retry_memory_factor=1.5)
    store = StateStore()
    save(store, TryRecord().with_end(1, TryEnd(True, "OOMKilled")).with_end(2, TryEnd(True, "OOMKilled")))
    assert container(pod_of(op, run_context(op, try_number=3, store=store)))["resources"]["limits"]["memory"] == "2304Mi"  # 1024 x 1.5^2
    assert container(pod_of(op))["resources"]["limits"]["memory"] == "1Gi"


def test_user_pod_settings_are_kept_and_merged() -> None:
    from kubernetes.client import models as k8s

    volume = k8s.V1Volume(name="data", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="data"))
    op = _kpo(
        resources={"cpu": 4, "memory": "16Gi", "gpu": 1, "gpu_type": "H100", "shared_memory": "2Gi"},
        container_resources=k8s.V1ResourceRequirements(limits={"cpu": "8"}, requests={"hugepages-2Mi": "64Mi"}),
        volumes=[volume],
        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data")],
        node_selector={"pool": "gpu"},
        tolerations=[k8s.V1Toleration(key="dedicated", operator="Equal", value="ml", effect="NoSchedule")],
    )
    pod = pod_of(op)
    base, spec = container(pod), pod["spec"]
    assert base["resources"]["requests"] == {"cpu": "4", "memory": "16Gi", "hugepages-2Mi": "64Mi", "nvidia.com/gpu": "1"}
    assert base["resources"]["limits"] == {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert [m["name"] for m in base["volumeMounts"]] == ["data", "dshm"]
    assert [v["name"] for v in spec["volumes"]] == ["data", "dshm"]
    assert spec["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert [t["key"] for t in spec["tolerations"]] == ["dedicated", "nvidia.com/gpu"]
    check_pod(pod)
    # the operator's own attributes are left as the user gave them, and building twice is the same
    assert op.volumes == [volume] and op.container_resources.requests == {"hugepages-2Mi": "64Mi"}
    assert pod_of(op)["spec"] == pod["spec"]


@pytest.mark.parametrize(
    ("mine", "words"),
    [
        (
            {"volume_mounts": "shm", "resources": {"memory": "4Gi", "shared_memory": "1Gi"}},
            ["step 'job'", "volume mount 'cache' at '/dev/shm'", "KubernetesPodOperator's own", "clashes with the 'dshm' mount"],
        ),
        (
            {"container_resources": {"limits": {"cpu": "1"}}, "resources": {"cpu": 2}},
            ["requests.cpu='2' from allotment's spec is above limits.cpu='1' from the KubernetesPodOperator's own"],
        ),
        (
            {"node_selector": {"nvidia.com/gpu.product": "Tesla-T4"}, "resources": {"gpu": 1, "gpu_type": "H100"}},
            ["node selector nvidia.com/gpu.product='Tesla-T4'", "conflicts with nvidia.com/gpu.product='NVIDIA-H100-80GB-HBM3'"],
        ),
    ],
    ids=["shm-mount", "cpu-limit", "node-selector"],
)
def test_merge_conflicts_are_errors_naming_both(mine: dict[str, Any], words: list[str]) -> None:
    from kubernetes.client import models as k8s

    kwargs = dict(mine)
    if kwargs.get("volume_mounts") == "shm":
        kwargs["volumes"] = [k8s.V1Volume(name="cache", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory"))]
        kwargs["volume_mounts"] = [k8s.V1VolumeMount(name="cache", mount_path="/dev/shm")]
    if isinstance(kwargs.get("container_resources"), dict):
        kwargs["container_resources"] = k8s.V1ResourceRequirements(**kwargs["container_resources"])
    with pytest.raises(AllotmentError) as caught:  # at parse time: the DAG file's import error
        _kpo(**kwargs)
    for word in words:
        assert word in str(caught.value)


def test_the_operators_own_container_resources_are_a_step_source() -> None:
    from allotment.airflow.resolution import resolve_task
    from kubernetes.client import models as k8s

    own = k8s.V1ResourceRequirements(requests={"memory": "2Gi", "hugepages-2Mi": "64Mi"}, limits={"memory": "3Gi", "cpu": "8"})
    op = _kpo(resources={"cpu": 2}, container_resources=own)
    # memory: the larger of the operator's request and limit, in both (no memory overcommit); the
    # CPU limit stays the operator's ceiling; keys allotment does not set are kept
    assert container(pod_of(op))["resources"] == {
        "requests": {"cpu": "2", "memory": "3Gi", "hugepages-2Mi": "64Mi"},
        "limits": {"cpu": "8", "memory": "3Gi"},
    }
    resolved = resolve_task(op)
    assert str(resolved.winners["memory"].source) == "container_resources= on KubernetesPodOperator"
    assert any("requests.memory 2Gi and limits.memory 3Gi; allotment asks for 3Gi in both" in note for note in resolved.notes)
    # the larger source wins either way: the operator's own or resources=
    assert container(pod_of(_kpo(resources={"memory": "4Gi"}, container_resources=own)))["resources"]["limits"]["memory"] == "4Gi"


def test_resources_mixin_on_a_users_own_subclass() -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from allotment.airflow import ResourcesMixin

    class TeamPodOperator(KubernetesPodOperator):
        def __init__(self, *, team: str, **kwargs: Any) -> None:
            super().__init__(labels={"team": team}, **kwargs)

    class SizedTeamPodOperator(ResourcesMixin, TeamPodOperator):
        pass

    with _dag(default_args={"allotment": {"memory": "3Gi"}}):
        op = SizedTeamPodOperator(task_id="t", team="ml", image="busybox", namespace="ml", resources={"cpu": 1})
    pod = pod_of(op)
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert container(pod)["resources"]["requests"] == {"cpu": "1", "memory": "3Gi"}


def test_kubernetes_decorator_on_the_callable_is_read() -> None:
    from airflow.sdk import task

    with _dag() as dag:

        @kubernetes(cpu=2, memory="2Gi", qos="guaranteed", namespace="ml", image="python:3.12",
                    node_selector={"pool": "batch"}, tolerations=[{"key": "batch", "operator": "Exists"}])
        @task.kubernetes(do_xcom_push=False)
        def crunch() -> None: ...

        crunch()
    op = _policy(dag).get_task("crunch")
    pod = pod_of(op)
    assert (pod["metadata"]["namespace"], container(pod)["image"]) == ("ml", "python:3.12")
    assert container(pod)["resources"] == {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert pod["spec"]["nodeSelector"] == {"pool": "batch"}
    assert pod["spec"]["tolerations"] == [{"key": "batch", "operator": "Exists"}]


def test_other_decorated_pod_operators_are_taken_over_too() -> None:
    from airflow.sdk import task

    with _dag() as dag:

        @resources(cpu=1, memory="512Mi")
        @task.kubernetes_cmd(image="busybox", namespace="ml")
        def echo() -> list[str]:
            return ["echo", "hi"]

        echo()
    op = _policy(dag).get_task("echo")
    assert type(op).__name__ == "AllotmentKubernetesCmdDecoratedOperator"
    assert container(pod_of(op))["resources"] == {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}


def test_kubernetes_decorator_option_conflicting_with_the_operator() -> None:
    from airflow.sdk import task

    with _dag() as dag:

        @kubernetes(namespace="ml")
        @task.kubernetes(namespace="prod", do_xcom_push=False)
        def crunch() -> None: ...

        crunch()
    with pytest.raises(AllotmentError, match=r"namespace='prod' on KubernetesDecoratedOperator conflicts with namespace='ml'"):
        _policy(dag)


def test_taskflow_stacking_order_gives_the_same_pod(tmp_path: Path) -> None:
    from allotment.airflow.kube import normalise_pod_name

    body = '''
        import pendulum
        from airflow.sdk import dag, task
        from allotment import resources

        @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), default_args={{"allotment": {{"disk": "1Gi"}}}})
        def {name}():
            {first}
            {second}
            def train() -> None: ...

            train()

        {name}()
    '''
    spec = '@resources(cpu=4, memory="16Gi", gpu=1, gpu_type="H100", shared_memory="8Gi")'
    deco = '@task.kubernetes(image="pytorch/pytorch", namespace="ml", do_xcom_push=False)'
    write_dag(tmp_path, "above.py", body.format(name="above", first=spec, second=deco))
    write_dag(tmp_path, "below.py", body.format(name="below", first=deco, second=spec))
    bag = dagbag(tmp_path)
    assert bag.import_errors == {}
    above, below = (normalise_pod_name(pod_of(bag.dags[d].get_task("train"))) for d in ("above", "below"))
    assert above == below
    assert container(above)["resources"]["limits"] == {"memory": "16Gi", "ephemeral-storage": "1Gi", "nvidia.com/gpu": "1"}
    check_pod(above)


def test_dag_defaults_fill_gaps_and_plain_operators_ignore_them(tmp_path: Path) -> None:
    write_dag(tmp_path, "mixed.py", '''
        import pendulum
        from airflow.providers.standard.operators.python import PythonOperator
        from airflow.sdk import DAG, task
        from allotment import resources
        from allotment.airflow import KubernetesPodOperator

        with DAG("mixed", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
                 default_args={"retries": 2, "allotment": {"cpu": 3, "memory": "2Gi"}}):
            plain = PythonOperator(task_id="plain", python_callable=lambda: None)

            @task
            def also_plain() -> None: ...

            @resources(memory="1Gi")
            @task
            def local_step() -> None: ...

            @task.kubernetes(image="busybox", namespace="ml", do_xcom_push=False)
            def stock_k8s() -> None: ...

            pod = KubernetesPodOperator(task_id="pod", image="busybox", namespace="ml", resources={"cpu": 1})
            plain >> also_plain() >> local_step() >> stock_k8s() >> pod
    ''')
    bag = dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["mixed"]
    for task_id in ("plain", "also_plain", "stock_k8s"):
        task = dag.get_task(task_id)
        assert getattr(task, "_allotment", None) is None and task.resources is None and task.executor_config == {}
    assert dag.get_task("plain").retries == 2
    assert container(pod_of(dag.get_task("stock_k8s"))).get("resources") is None  # untouched stock operator
    # cpu 1 from resources= (a default never joins the maximum), memory from default_args
    assert container(pod_of(dag.get_task("pod")))["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert dag.get_task("local_step").executor_config == {}  # LocalExecutor: nothing sent to Kubernetes


def test_deployment_wide_with_from_env_and_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_WITH", "kubernetes:cpu=3")
    monkeypatch.setenv("AIRFLOW__ALLOTMENT__WITH", "kubernetes:memory=8Gi;batch:gpu=4")
    monkeypatch.setenv("ALLOTMENT_BACKEND", "kubernetes")
    op = _kpo(resources={"cpu": 2, "memory": "4Gi"})
    assert container(pod_of(op))["resources"]["requests"] == {"cpu": "3", "memory": "8Gi"}
    assert op.resources.cpus.qty == 3


_READ_ONCE_TASKS = {
    # set up while the DAG file is imported
    "operators": """
        for name in ("a", "b"):
            KubernetesPodOperator(task_id=name, image="busybox", resources={"cpu": 1})
    """,
    # set up by allotment's cluster policy, right after the import
    "decorated": """
        for name in ("a", "b"):
            @resources(cpu=1)
            @task.kubernetes(image="busybox", task_id=name)
            def step() -> None: ...
            step()
    """,
}


@pytest.mark.parametrize("tasks", sorted(_READ_ONCE_TASKS))
def test_the_deployment_is_read_once_per_dag_file_import_and_anew_for_the_next(
    tasks: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # allotment reads [allotment] and the environment once per DAG file import (for all its
    # tasks); the next import of the same file, in the same process, reads them again.
    head = """
        import pendulum
        from airflow.sdk import DAG, task
        from allotment import resources
        from allotment.airflow import KubernetesPodOperator
        with DAG("two", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
    """
    body = textwrap.indent(textwrap.dedent(_READ_ONCE_TASKS[tasks]), "    ")
    (tmp_path / "two.py").write_text(textwrap.dedent(head) + body)
    for cpu in ("2", "3"):
        monkeypatch.setenv("AIRFLOW__ALLOTMENT__WITH", f"kubernetes:cpu={cpu}")
        dag = dagbag(tmp_path).dags["two"]
        for name in ("a", "b"):  # Airflow's resources, filled when the DAG file is parsed
            assert dag.get_task(name).resources.cpus.qty == int(cpu), name


def test_bad_specs_are_the_dag_files_import_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = '''
        import pendulum
        from airflow.sdk import DAG, task
        from allotment import resources
        from allotment.airflow import KubernetesPodOperator
        START = pendulum.datetime(2025, 1, 1, tz="UTC")
    '''
    write_dag(tmp_path, "decorator.py", head + '''
        with DAG("decorator", schedule=None, start_date=START):
            @resources(memory="16gb")
            @task.kubernetes(image="busybox")
            def train() -> None: ...
            train()
    ''')
    write_dag(tmp_path, "operator.py", head + '''
        with DAG("operator", schedule=None, start_date=START):
            KubernetesPodOperator(task_id="prep", image="busybox", resources={"cpu": 2, "gpu": 0.5})
    ''')
    write_dag(tmp_path, "defaults.py", head + '''
        with DAG("defaults", schedule=None, start_date=START, default_args={"allotment": {"memory": "lots"}}):
            KubernetesPodOperator(task_id="prep", image="busybox")
    ''')
    write_dag(tmp_path, "policy.py", head + '''
        with DAG("policy", schedule=None, start_date=START):
            KubernetesPodOperator(task_id="huge", image="busybox", resources={"cpu": 64})
    ''')
    write_dag(tmp_path, "stacked.py", head + '''
        with DAG("stacked", schedule=None, start_date=START):
            @resources(memory="1Gi", shared_memory="2Gi")
            @task.kubernetes(image="busybox")
            def train() -> None: ...
            train()
    ''')
    write_dag(tmp_path, "mapped.py", head + '''
        with DAG("mapped", schedule=None, start_date=START):
            KubernetesPodOperator.partial(task_id="shard", image="busybox", resources={"memory": "300Gi"}).expand(
                arguments=[["1"], ["2"]]
            )
    ''')
    write_dag(tmp_path, "own.py", head + '''
        from kubernetes.client import models as k8s
        with DAG("own", schedule=None, start_date=START):
            KubernetesPodOperator(
                task_id="big", image="busybox",
                container_resources=k8s.V1ResourceRequirements(limits={"memory": "1Ti", "nvidia.com/gpu": "64"}),
            )
    ''')
    monkeypatch.setenv("ALLOTMENT_POLICY", str(POLICY))
    bag = dagbag(tmp_path)
    errors = {Path(path).stem: text for path, text in bag.import_errors.items()}
    policy = POLICY
    expected = {
        "decorator": "step 'train': memory='16gb' from @resources is not a quantity; use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'",
        "operator": "step 'prep': gpu=0.5 from resources= on KubernetesPodOperator is a fraction of a GPU; use a whole number >= 0 "
        "(0 means no GPU; for part of a GPU use a MIG gpu_type such as '1g.10gb')",
        "defaults": "step 'prep': memory='lots' from workflow default default_args['allotment'] is not a quantity; use an int (MiB) "
        "or e.g. '16Gi', '16384Mi', '16G'",
        "policy": f"step 'huge': cpu='64' from resources= on KubernetesPodOperator exceeds the cap cpu <= 32 (caps in policy {policy}); "
        "ask for at most 32, or have the policy changed",
        "stacked": "step 'train': shared_memory='2Gi' from @resources is more than memory=1Gi from @resources (shared memory is "
        "charged to the step's memory); ask for at most 1Gi of shared memory, or more memory",
        "mapped": f"step 'shard': memory='300Gi' from resources= on KubernetesPodOperator exceeds the cap memory <= 256Gi (caps in "
        f"policy {policy}); ask for at most 256Gi, or have the policy changed",
        "own": f"step 'big': memory='1024Gi' from container_resources= on KubernetesPodOperator exceeds the cap memory <= 256Gi (caps in "
        f"policy {policy}); ask for at most 256Gi, or have the policy changed",
    }
    # each is one line, as Airflow shows a cluster policy's error: no traceback, no chained exceptions
    assert errors == {name: f"AirflowClusterPolicyError: {text}" for name, text in expected.items()}
