"""Airflow on the local backend (issue 11, item 4): ``@task.allotment`` registered by the provider
runs its callable through the local executor on ``local``, becomes ``@task.kubernetes`` with the
spec on ``kubernetes``, and fails at parse time on ``batch``; a plain ``@task`` with ``@resources``
under the LocalExecutor runs through the local executor too; the example DAG passes
``airflow dags test`` on SQLite."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from run_support import DATA

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dags" / "training_pipeline.py"


@pytest.fixture(scope="module", autouse=True)
def _airflow_home() -> Iterator[None]:
    """Airflow reads AIRFLOW_HOME once, at its first import: never ~/airflow (as tests/airflow/conftest.py)."""
    previous = os.environ.get("AIRFLOW_HOME")
    if previous is None:
        (ROOT / ".airflow").mkdir(exist_ok=True)
        os.environ["AIRFLOW_HOME"] = str(ROOT / ".airflow")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_HOME", None)


@pytest.fixture(autouse=True)
def _local_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AIRFLOW__ALLOTMENT__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")


def dagbag(path: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(path))


def write(folder: Path, text: str) -> Path:
    path = folder / "dag_file.py"
    path.write_text(text)
    return path


def test_the_provider_registers_task_allotment() -> None:
    from airflow.sdk import task
    from allotment.airflow.local_task import allotment_task
    from allotment.airflow.provider import get_provider_info

    assert {"name": "allotment", "class-name": "allotment.airflow.local_task.allotment_task"} in get_provider_info()["task-decorators"]
    assert task.allotment is allotment_task


def test_on_the_local_default_the_tasks_run_their_callables_on_this_machine() -> None:
    from allotment.airflow.local_task import LOCAL, LocalDecoratedOperator
    from allotment.airflow.tasks import task_spec

    bag = dagbag(EXAMPLE)
    assert bag.import_errors == {}
    dag = bag.dags["training_pipeline"]
    for task_id, cpus, ram in (("prep", 1, 512), ("train", 2, 1024), ("evaluate", 1, 512)):
        task = dag.get_task(task_id)
        assert type(task) is LocalDecoratedOperator
        spec = task_spec(task)
        assert spec is not None and (spec.backend, spec.target) == ("local", LOCAL)
        assert (task.resources.cpus.qty, task.resources.ram.qty) == (cpus, ram)  # Airflow's own field shows the ask


def test_one_environment_variable_moves_the_same_file_to_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.airflow.operators import KubernetesDecoratedOperator
    from kubernetes.client import ApiClient

    monkeypatch.setenv("ALLOTMENT_WITH", "kubernetes")
    bag = dagbag(EXAMPLE)
    assert bag.import_errors == {}
    train = bag.dags["training_pipeline"].get_task("train")
    assert type(train) is KubernetesDecoratedOperator
    pod = ApiClient().sanitize_for_serialization(train.build_pod_request_obj(dry_run=True))
    base = pod["spec"]["containers"][0]
    assert base["image"] == "python:3.12-slim" and pod["metadata"]["namespace"] == "ml"
    assert base["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"cpu": "2", "memory": "1Gi"}}
    # what the pod runs is the function alone: neither allotment's decorators nor @task.allotment,
    # which its image could not evaluate
    source = train.get_python_source()
    assert source.startswith("def train(summary: dict, epochs: int = 40) -> dict:\n")
    assert "@" not in source.split("\n", 1)[0] and "resources" not in source and "task.allotment" not in source


def test_the_render_command_shows_the_kubernetes_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.airflow.render import render
    from allotment.settings import load_settings

    documents = render([EXAMPLE], load_settings(cli={"with": ["kubernetes"]}, env={}), {})
    assert [(d["task_id"], d["pod_of"]) for d in documents] == [
        ("prep", "@task.kubernetes"),
        ("train", "@task.kubernetes"),
        ("evaluate", "@task.kubernetes"),
    ]
    requests = [d["pod"]["spec"]["containers"][0]["resources"]["requests"] for d in documents]
    assert requests == [{"cpu": "1", "memory": "512Mi"}, {"cpu": "2", "memory": "1Gi"}, {"cpu": "1", "memory": "512Mi"}]


def test_on_batch_the_dag_file_fails_to_parse_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_WITH", "batch:memory=2Gi")
    errors = dagbag(EXAMPLE).import_errors
    assert len(errors) == 1
    message = next(iter(errors.values()))
    assert (
        "step 'prep': runs on AWS Batch here (the deployment's backend, from with), which runs a job definition's container, "
        "not a Python callable; use allotment's BatchOperator (or portable_task) with a job definition"
    ) in message


def test_a_backend_decorator_on_the_callable_pins_the_task(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "import pendulum\nfrom airflow.sdk import DAG, task\nfrom allotment import kubernetes\n\n"
        "with DAG('pinned', schedule=None, start_date=pendulum.datetime(2025, 1, 1)):\n"
        "    @kubernetes(cpu=3, image='python:3.12-slim')\n    @task.allotment()\n    def job() -> None:\n        pass\n\n"
        "    @task.allotment(kubernetes={'namespace': 'ml'})\n    @kubernetes(cpu=1)\n    def imageless() -> None:\n        pass\n\n"
        "    job()\n",
    )
    bag = dagbag(file)
    assert bag.import_errors == {}
    job = bag.dags["pinned"].get_task("job")
    assert type(job).__name__ == "KubernetesDecoratedOperator" and job.image == "python:3.12-slim"
    (tmp_path / "dag_file.py").write_text(file.read_text().replace("    job()\n", "    imageless()\n"))
    errors = dagbag(tmp_path / "dag_file.py").import_errors
    message = next(iter(errors.values()))
    assert "step 'imageless': runs on Kubernetes here (@kubernetes on the callable) but @task.allotment got no image" in message


def test_a_plain_task_with_resources_runs_locally_under_the_local_executor_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.airflow.local_task import LocalMixin
    from allotment.airflow.tasks import task_spec

    file = write(
        tmp_path,
        "import pendulum\nfrom airflow.sdk import DAG, task\nfrom allotment import resources, kubernetes\n\n"
        "with DAG('plain', schedule=None, start_date=pendulum.datetime(2025, 1, 1)):\n"
        "    @resources(cpu=1, memory='300Mi')\n    @task\n    def sized() -> None:\n        pass\n\n"
        "    @task\n    def unsized() -> None:\n        pass\n\n"
        "    @kubernetes(cpu=2)\n    @task\n    def pinned() -> None:\n        pass\n\n"
        "    @resources(cpu=1)\n    @task.virtualenv(requirements=[])\n    def venv() -> None:\n        pass\n\n"
        "    sized() >> unsized() >> pinned() >> venv()\n",
    )
    dag = dagbag(file).dags["plain"]
    sized = dag.get_task("sized")
    assert isinstance(sized, LocalMixin) and type(sized).__name__ == "AllotmentLocalPythonDecoratedOperator"
    spec = task_spec(sized)
    assert spec is not None and spec.backend == "local"
    for task_id in ("unsized", "pinned", "venv"):  # no spec; pinned elsewhere; runs its callable its own way
        assert not isinstance(dag.get_task(task_id), LocalMixin), task_id
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    on_kubernetes = dagbag(file).dags["plain"].get_task("sized")
    assert not isinstance(on_kubernetes, LocalMixin)
    assert "pod_override" in on_kubernetes.executor_config


def _context(task: Any, conf: Any = None) -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(conf=conf or {}), "dag": task.dag, "ti": SimpleNamespace(try_number=1)}


def test_the_callable_runs_in_a_child_under_the_spec_of_this_run(tmp_path: Path) -> None:
    """A task over its memory is OOM-killed; the same task with a run's conf raising its memory succeeds."""
    from airflow.sdk.exceptions import AirflowFailException
    from allotment.local import OOMKilled

    file = write(
        tmp_path,
        "import pendulum\nfrom airflow.sdk import DAG, task\nfrom allotment import resources\n\n"
        "HELD = 150\n\n"
        "def touch(mib):\n    block = bytearray(mib * 1024 * 1024)\n"
        "    for i in range(0, len(block), 4096):\n        block[i] = 1\n    return len(block)\n\n"
        "with DAG('sized', schedule=None, start_date=pendulum.datetime(2025, 1, 1)):\n"
        "    @resources(cpu=1, memory='96Mi')\n    @task.allotment()\n    def fill(extra: int) -> dict:\n"
        "        import os\n        return {'pid': os.getpid(), 'mib': touch(HELD + extra) // 2**20}\n\n"
        "    fill(10)\n",
    )
    task = dagbag(file).dags["sized"].get_task("fill")
    object.__setattr__(task, "_allotment_context", _context(task))
    with pytest.raises(OOMKilled, match="was OOM-killed"):
        task.execute_callable()
    object.__setattr__(task, "_allotment_context", _context(task, {"allotment": {"tasks": {"fill": "memory=400Mi"}}}))
    value = task.execute_callable()
    assert value == {"pid": value["pid"], "mib": 160}  # the module-level helper and constant travelled with the callable
    assert value["pid"] != os.getpid()
    object.__setattr__(task, "_allotment_context", _context(task, {"allotment": {"image": "evil"}}))
    with pytest.raises(AirflowFailException, match=r"dag_run.conf\['allotment'\] has key 'image'"):
        task.execute_callable()


def test_a_context_object_argument_fails_with_a_clear_message(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    file = write(
        tmp_path,
        "import pendulum\nfrom airflow.sdk import DAG, task\nfrom allotment import resources\n\n"
        "with DAG('ctx', schedule=None, start_date=pendulum.datetime(2025, 1, 1)):\n"
        "    @resources(cpu=1)\n    @task.allotment()\n    def uses(lock=None) -> None:\n        pass\n\n    uses()\n",
    )
    task = dagbag(file).dags["ctx"].get_task("uses")
    object.__setattr__(task, "_allotment_context", _context(task))
    task.op_kwargs = {"lock": (i for i in range(3))}  # a generator: dill cannot pickle it
    with pytest.raises(AirflowFailException, match="its callable and arguments must pickle to run in a child process on the local backend"):
        task.execute_callable()


def test_an_airflow_dag_file_is_refused_by_allotment_run(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "allotment", "run", str(EXAMPLE)],
        cwd=ROOT, env={**os.environ, "AIRFLOW_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 1
    assert "step 'prep': in " in out.stderr and "is a task of an engine (LocalDecoratedOperator), not a plain function" in out.stderr
    assert "run an Airflow DAG with `airflow dags test DAG_ID`" in out.stderr


@pytest.fixture(scope="module")
def dags_test(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """``airflow db migrate`` on a fresh SQLite database, then ``airflow dags test`` of the example
    DAG and of the behaviour DAG, in processes with an environment of their own."""
    home = tmp_path_factory.mktemp("airflow-home")
    folder = tmp_path_factory.mktemp("dags")
    shutil.copy(EXAMPLE, folder / EXAMPLE.name)
    shutil.copy(DATA / "airflow_local_dag.py", folder / "airflow_local_dag.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "AIRFLOW_HOME", "PYTHONPATH"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    })
    airflow = str(Path(sys.executable).with_name("airflow"))
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    for name, argv, status in (
        ("migrate", [airflow, "db", "migrate"], 0),
        ("example", [airflow, "dags", "test", "training_pipeline"], 0),
        ("behaviour", [airflow, "dags", "test", "allotment_local_behaviour"], 1),  # its run fails: hungry is OOM-killed
    ):
        done[name] = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=400, check=False)
        assert done[name].returncode == status, done[name].stdout[-3000:] + done[name].stderr[-3000:]
    (home / "behaviour.log").write_text(done["behaviour"].stdout + done["behaviour"].stderr)
    return done


def _table_rows(text: str) -> dict[str, str]:
    """The local backend's table rows in an Airflow log: step -> the rest of its row."""
    rows = {}
    for match in re.finditer(r"allotment: (\w+(?: \(try \d+\))?) {2,}(\d[^\[]*?)\s+\[airflow", text):
        rows[match.group(1)] = match.group(2)
    return rows


@pytest.mark.slow
def test_the_example_dag_passes_airflow_dags_test_on_the_local_backend(dags_test: dict[str, Any]) -> None:
    out = dags_test["example"].stdout + dags_test["example"].stderr
    assert "DagRun Finished: dag_id=training_pipeline" in out and "state=success" in out
    rows = _table_rows(out)
    assert [rows[step].split("  ")[0] for step in ("prep", "train", "evaluate")] == ["1 cpu, 512Mi", "2 cpu, 1Gi", "1 cpu, 512Mi"]
    assert "fitted y = 3.000 x + 2.000 on 1000000 rows" in out  # the step's own output is in the task log
    assert "Done. Returned value was: {'slope': 3.0, 'intercept': 2.0, 'rows': 1000000}" in out  # back through XCom


@pytest.mark.slow
def test_plain_tasks_run_in_a_child_and_an_oom_kill_fails_the_task_after_its_retry(dags_test: dict[str, Any]) -> None:
    out = dags_test["behaviour"].stdout + dags_test["behaviour"].stderr
    assert "DagRun Finished: dag_id=allotment_local_behaviour" in out and "state=failed" in out
    # the plain @task ran in the local executor's child, on the one core it asked for
    assert "Done. Returned value was: {'program': 'child.py', 'cores': 1}" in out
    assert _table_rows(out)["where"].startswith("1 cpu, 200Mi ")
    # two Airflow tries of hungry, each OOM-killed at the resolved memory (it has no retry_memory_factor)
    killed = "allotment: task 'hungry' oom-killed: OOMKilled: the step used "
    assert out.count(killed) == 2
    assert len(re.findall(r"allotment: hungry +1 cpu, 96Mi +[^\n]*memory: OOM-killed at 96Mi — ask for more", out)) == 2
    assert "new_state=up_for_retry" in out
    assert "[DAG TEST] running task <TaskInstance: allotment_local_behaviour.after" not in out


@pytest.mark.slow
def test_an_oom_killed_task_is_retried_by_airflow_with_the_grown_memory_and_succeeds(dags_test: dict[str, Any]) -> None:
    """Issue 12 on the local backend under Airflow: each try is a new process; try 1's OOM kill is
    kept in the task state store, so try 2 runs under 96Mi x 2 and succeeds."""
    out = dags_test["behaviour"].stdout + dags_test["behaviour"].stderr
    assert out.count("allotment: task 'grows' oom-killed: OOMKilled: the step used ") == 1
    assert re.search(r"allotment: grows +1 cpu, 96Mi +[^\n]*memory: OOM-killed at 96Mi", out)
    assert "allotment: note: earlier try 1: an OOM kill (the local backend): OOMKilled: the step used " in out
    assert "allotment: note: try 2: memory 96Mi -> 192Mi after 1 OOM kill of earlier tries (retry_memory_factor 2.0)" in out
    assert "allotment: task 'grows' on local: cpu=1, memory=192Mi, retry_memory_factor=2.0" in out  # what try 2 asks for
    assert "allotment:   memory 192Mi from retry (after 1 OOM kill: 96Mi x 2.0^1)" in out
    assert re.search(r"allotment: grows +1 cpu, 192Mi ", out)  # the second try's row: the grown cap
    assert "Done. Returned value was: 160" in out


def test_task_kubernetes_pods_run_the_function_without_allotment_decorators(tmp_path: Path) -> None:
    """Also for the stock @task.kubernetes with @resources above or below it, under any import name:
    a decorator line left in the pod's script would fail there (NameError), the image has no allotment."""
    file = write(
        tmp_path,
        "import pendulum\nimport allotment\nfrom airflow.sdk import DAG, task\nfrom allotment import resources as res\n\n"
        "def keep(f):\n    return f\n\n"
        "with DAG('k', schedule=None, start_date=pendulum.datetime(2025, 1, 1)):\n"
        "    @res(cpu=2)\n    @task.kubernetes(image='python:3.12-slim')\n    @keep\n    def above() -> None:\n        print(1)\n\n"
        "    @task.kubernetes(image='python:3.12-slim')\n    @allotment.kubernetes(cpu=1)\n    def below() -> None:\n        print(2)\n\n"
        "    above() >> below()\n",
    )
    dag = dagbag(file).dags["k"]
    assert dag.get_task("above").get_python_source() == "@keep\ndef above() -> None:\n    print(1)\n"  # the user's own decorator stays
    assert dag.get_task("below").get_python_source() == "def below() -> None:\n    print(2)\n"
