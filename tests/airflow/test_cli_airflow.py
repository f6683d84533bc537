"""The CLI on DAG files tells the truth (issue 14, the Airflow items): ``explain`` resolves every task
through the task's own path (its pod settings, Airflow's ``[allotment]`` section, a previewed run's
conf), so it agrees with ``render --target airflow`` and the running task; errors are one clean
line; ``render`` keeps stderr for allotment's own notes.

Each test calls the CLI's own entry point (``allotment.cli.main``, or the console script in a
subprocess) with the ``AIRFLOW__ALLOTMENT__*`` variables a deployment sets (Airflow reads them on
every lookup).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from af_helpers import DAGS, POLICY, ROOT, dagbag, write_dag
from allotment.fields import parse_cpu, parse_gpu, parse_mib

EXAMPLES = sorted(p.name for p in DAGS.glob("*.py"))
TIGHT = "caps:\n  memory: 16Gi\n"
SETTINGS: dict[str, dict[str, str]] = {
    "none": {},
    "with": {"AIRFLOW__ALLOTMENT__WITH": "kubernetes:cpu=3,memory=20Gi"},
    "with_batch": {"AIRFLOW__ALLOTMENT__WITH": "batch:memory=40Gi"},
    "policy": {"AIRFLOW__ALLOTMENT__POLICY": str(POLICY)},
    "policy_tight": {"AIRFLOW__ALLOTMENT__POLICY": "TIGHT"},
    "profile": {"AIRFLOW__ALLOTMENT__PROFILE": "gke"},
    "backend": {"AIRFLOW__ALLOTMENT__BACKEND": "batch"},
}


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from allotment.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _errors(err: str) -> list[str]:
    """The error lines of a command's stderr (its notes and closing summary left out)."""
    return [line for line in err.splitlines() if line.startswith("allotment: error: ")]


def _from_render(document: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """(backend, field -> value in the spec's units) read back from what render prints."""
    if "pod" in document:
        pod = document["pod"]
        base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
        requests = (base.get("resources") or {}).get("requests") or {}
        values = {"cpu": parse_cpu(requests["cpu"]), "memory": parse_mib(requests["memory"])}
        if "ephemeral-storage" in requests:
            values["disk"] = parse_mib(requests["ephemeral-storage"])
        gpus = [parse_gpu(v) for k, v in requests.items() if k.endswith("/gpu")]
        if gpus:
            values["gpu"] = gpus[0]
        shm = [v["emptyDir"]["sizeLimit"] for v in pod["spec"].get("volumes") or [] if v["name"] == "dshm"]
        if shm:
            values["shared_memory"] = parse_mib(shm[0])
        return "kubernetes", values
    if document.get("runs_on") == "local":  # a child process on this machine: the resolved values themselves
        shown = document["resources"]
        values = {"cpu": parse_cpu(shown["cpu"]), "memory": parse_mib(shown["memory"])}
        values |= {name: parse_mib(shown[name]) for name in ("disk", "shared_memory") if name in shown}
        if shown.get("gpu") not in (None, "0"):
            values["gpu"] = parse_gpu(shown["gpu"])
        return "local", values
    overrides = document.get("submitJob", {}).get("containerOverrides") or document.get("executorConfig", {}).get("containerOverrides")
    entries = {e["type"]: e["value"] for e in overrides["resourceRequirements"]}
    values = {"cpu": int(entries["VCPU"]) * 1000, "memory": int(entries["MEMORY"])}
    if "GPU" in entries:
        values["gpu"] = int(entries["GPU"])
    if "jobDefinitionFields" in document:
        values["shared_memory"] = document["jobDefinitionFields"]["containerProperties"]["linuxParameters"]["sharedMemorySize"]
    return "batch", values


def _from_explain(item: dict[str, Any]) -> dict[str, int]:
    fields = {f["field"]: f["value"] for f in item["fields"]}
    values = {name: fields[name] for name in ("cpu", "memory", "gpu", "disk", "shared_memory") if fields.get(name)}
    if item["backend"] == "batch":
        values["cpu"] = math.ceil(values["cpu"] / 1000) * 1000  # EC2 counts whole vCPUs (explain's note says so)
        values.pop("disk", None)  # sized by the launch template on EC2 (a warning)
    return values


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_explain_agrees_with_render_under_every_airflow_setting(
    example: str, setting: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name, value in SETTINGS[setting].items():
        if value == "TIGHT":
            (tmp_path / "tight.yaml").write_text(TIGHT)
            value = str(tmp_path / "tight.yaml")
        monkeypatch.setenv(name, value)
    path = str(DAGS / example)
    explained = _cli(capsys, "explain", path, "-o", "json")
    rendered = _cli(capsys, "render", path, "--target", "airflow", "-o", "json")
    assert explained[0] == rendered[0], (explained, rendered)
    if explained[0] != 0:  # both refuse, with the same one-line message (then each its own closing summary)
        assert _errors(explained[2]) == _errors(rendered[2]) and len(_errors(explained[2])) == 1, (explained, rendered)
        return
    items = {item["step"]: item for item in json.loads(explained[1])}
    documents = {d["task_id"]: d for d in json.loads(rendered[1])}
    assert set(items) == set(documents)
    for task_id, document in documents.items():
        backend, values = _from_render(document)
        assert items[task_id]["backend"] == backend, task_id
        assert _from_explain(items[task_id]) == values, task_id
        if "pod" in document:  # the node labels a GPU type selects, under the profile in force
            selector = document["pod"]["spec"].get("nodeSelector") or {}
            gpu_type = next((f for f in items[task_id]["fields"] if f["field"] == "gpu_type"), None)
            if gpu_type is not None:
                assert all(f"{k}={v}" in gpu_type["effect"] for k, v in selector.items() if "gpu" in k or "accelerator" in k)


def test_explain_reads_airflows_allotment_section(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The issue's three cases, as a user meets them."""
    path = write_dag(
        tmp_path,
        "sized.py",
        """
        import pendulum
        from airflow.sdk import DAG
        from allotment.airflow import KubernetesPodOperator, portable_task
        with DAG("sized", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            KubernetesPodOperator(task_id="prep", image="busybox", namespace="ml", resources={"cpu": 2, "memory": 8192})
            portable_task(task_id="train", resources={"cpu": 1}, kubernetes={"image": "t"}, batch={"job_definition": "d", "job_queue": "q"})
    """,
    )
    monkeypatch.setenv("AIRFLOW__ALLOTMENT__WITH", "kubernetes:cpu=3,memory=20Gi")
    code, out, _ = _cli(capsys, "explain", str(path))
    assert code == 0
    assert (
        "  cpu     3      with config [allotment] with 'kubernetes:cpu=3,memory=20Gi'  "
        "resources= on KubernetesPodOperator 2    requests.cpu 3" in out
    )
    assert (
        "  memory  20Gi   with config [allotment] with 'kubernetes:cpu=3,memory=20Gi'  "
        "resources= on KubernetesPodOperator 8Gi  requests/limits.memory 20Gi" in out
    )

    monkeypatch.delenv("AIRFLOW__ALLOTMENT__WITH")
    (tmp_path / "small.yaml").write_text("caps:\n  memory: 4Gi\n")
    monkeypatch.setenv("AIRFLOW__ALLOTMENT__POLICY", str(tmp_path / "small.yaml"))
    message = (
        f"allotment: error: {path}: step 'prep': memory='8Gi' from resources= on KubernetesPodOperator exceeds the cap memory <= 4Gi "
        f"(caps in policy {tmp_path / 'small.yaml'}); ask for at most 4Gi, or have the policy changed\n"
    )
    for command in (["explain", str(path)], ["render", str(path), "--target", "airflow"]):
        code, out, err = _cli(capsys, *command)
        assert (code, _errors(err)) == (1, [message.rstrip("\n")]), err

    monkeypatch.delenv("AIRFLOW__ALLOTMENT__POLICY")
    monkeypatch.setenv("AIRFLOW__ALLOTMENT__BACKEND", "batch")
    code, out, _ = _cli(capsys, "explain", str(path))
    assert code == 0 and f"step 'train' ({path.as_posix()}): runs on batch\n" in out
    code, out, _ = _cli(capsys, "render", str(path), "--target", "airflow", "-o", "json")
    assert {d["task_id"]: d.get("job_of") for d in json.loads(out)}["train"] == "BatchOperator"


def test_explain_previews_a_runs_conf_as_the_engine_checks_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW__ALLOTMENT__POLICY", str(POLICY))
    path = str(DAGS / "nightly_aggregate.py")
    code, out, _ = _cli(capsys, "explain", path, "-o", "json", "--conf", '{"allotment": {"tasks": {"aggregate": "memory=24Gi"}}}')
    assert code == 0
    memory = next(f for f in json.loads(out)[0]["fields"] if f["field"] == "memory")
    assert (memory["shown"], memory["source"]) == ("24Gi", "with dag_run.conf['allotment']['tasks']['aggregate'] 'memory=24Gi'")
    # the same errors the running task fails with (test_dag_run.py's over_cap and image_key)
    code, out, err = _cli(capsys, "explain", path, "--conf", '{"allotment": {"tasks": {"aggregate": "memory=100Gi"}}}')
    assert (code, _errors(err)) == (
        1,
        [
            f"allotment: error: {path}: step 'aggregate': memory='100Gi' from with dag_run.conf['allotment']['tasks']['aggregate'] "
            f"'memory=100Gi' exceeds the cap memory <= 64Gi (runtime.caps in policy {POLICY}); ask for at most 64Gi, or have the "
            "policy changed"
        ],
    ), err
    assert "step 'aggregate'" not in out  # the other tasks are still explained; the one that fails is not
    code, _, err = _cli(capsys, "explain", path, "--conf", '{"allotment": {"image": "evil:latest"}}')
    assert code == 1 and _errors(err)[0].startswith(
        f"allotment: error: {path}: step 'aggregate': dag_run.conf['allotment'] has key 'image'; it takes only with, set, tasks"
    )
    assert _cli(capsys, "explain", path, "--conf", "{not json")[:2] == (1, "")
    assert _errors(_cli(capsys, "explain", path, "--conf", "{not json")[2]) == [
        "allotment: error: --conf='{not json' is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
        """(char 1)); write e.g. '{"allotment": {"with": "memory=64Gi"}}'""",
    ]
    flow = str(ROOT / "tests" / "data" / "flows")
    code, _, err = _cli(capsys, "explain", flow, "--conf", "{}")
    assert code == 1 and "is no task of an engine that takes a run's conf" in err


def test_a_bad_spec_is_one_line_in_list_import_errors_and_the_chain_stays_under_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dag(
        tmp_path,
        "bad.py",
        """
        import pendulum
        from airflow.sdk import DAG, task
        from allotment import resources
        with DAG("bad", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            @resources(memory="16gb")
            @task.kubernetes(image="busybox")
            def train() -> None: ...
            train()
    """,
    )
    errors = list(dagbag(tmp_path).import_errors.values())
    assert errors == [
        "AirflowClusterPolicyError: step 'train': memory='16gb' from @resources is not a quantity; use an int (MiB) or e.g. '16Gi', "
        "'16384Mi', '16G'"
    ]
    monkeypatch.setenv("ALLOTMENT_DEBUG", "1")
    (debug,) = dagbag(tmp_path).import_errors.values()
    assert (
        "Traceback" in debug
        and "QuantityError" in debug
        and "FieldError" in debug
        and ("The above exception was the direct cause" in debug or "During handling of the above exception" in debug)
    )


def test_airflow_list_import_errors_shows_one_line(tmp_path: Path) -> None:
    """The command a user runs, in a process of its own (a fresh SQLite database)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(
        dags,
        "bad.py",
        """
        import pendulum
        from airflow.sdk import DAG
        from allotment.airflow import KubernetesPodOperator
        with DAG("bad", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            KubernetesPodOperator(task_id="prep", image="busybox", resources={"cpu": 2, "memory": "lots"})
    """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "AIRFLOW_HOME", "PYTHONPATH"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    airflow = str(Path(sys.executable).with_name("airflow"))
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([airflow, *command], env=env, capture_output=True, text=True, check=True, timeout=300)
    out = subprocess.run(
        [airflow, "dags", "list-import-errors", "-o", "json"], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 1, out.stderr[-3000:]  # Airflow's exit status when a file has an import error
    listed = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("[{")))  # after Airflow's log lines
    assert [(Path(e["filepath"]).name, e["error"]) for e in listed] == [
        (
            "bad.py",
            "AirflowClusterPolicyError: step 'prep': memory='lots' from resources= on KubernetesPodOperator is not a quantity; "
            "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'",
        )
    ]


def test_render_keeps_stderr_for_allotments_notes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "PYTHONPATH"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    out = subprocess.run(
        [sys.executable, "-m", "allotment", "render", "dags", "--target", "airflow"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "Building pod" not in out.stderr and "Building pod" not in out.stdout
    assert "kind: Pod" in out.stdout


def test_the_stock_kpo_given_airflow_resources_gets_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    write_dag(
        tmp_path,
        "stock.py",
        """
        import pendulum
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.sdk import DAG
        with DAG("stock", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            KubernetesPodOperator(task_id="prep", image="busybox", resources={"cpus": 2, "ram": 8192})
    """,
    )
    capsys.readouterr()
    with caplog.at_level("WARNING", logger="allotment.airflow.policy"):
        assert dagbag(tmp_path).import_errors == {}
    out, err = capsys.readouterr()  # where Airflow's logging sends it: its console, or the root logger's handlers
    assert (
        "allotment: task 'prep': resources= on the provider's KubernetesPodOperator sizes no pod (the provider reads only "
        "container_resources); use allotment.airflow.KubernetesPodOperator, which takes resources= in allotment's or Airflow's form"
    ) in out + err + caplog.text


def test_the_stock_kpo_given_allotments_resources_form_gets_the_hint_from_explain(tmp_path: Path) -> None:
    # Airflow's own constructor raises a bare TypeError before any hook of allotment's runs, so
    # Airflow's import error stays Airflow's; allotment's tools add the advice to it.
    dag = write_dag(
        tmp_path,
        "stock.py",
        """
        import pendulum
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.sdk import DAG
        with DAG("stock", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            KubernetesPodOperator(task_id="prep", image="busybox", resources={"cpu": 2, "memory": 8192})
    """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__", "PYTHONPATH"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    out = subprocess.run(
        [sys.executable, "-m", "allotment", "explain", str(dag)], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr.splitlines() == [
        f"allotment: error: {dag} failed to import: TypeError: Resources.__init__() got an unexpected keyword argument 'cpu'; "
        "an Airflow operator got resources= with 'cpu', which only allotment's form has; the provider's operators take "
        "Airflow's form (cpus, ram, disk, gpus) and size no pod with it: use allotment.airflow.KubernetesPodOperator (or "
        "BatchOperator), which takes resources= in either form; run with ALLOTMENT_DEBUG=1 to see the traceback",
        "allotment: explain: 0 steps in 1 file, 1 error",
    ]


def test_batch_operator_errors_are_one_line_import_errors(tmp_path: Path) -> None:
    head = """
        import pendulum
        from airflow.sdk import DAG
        from allotment.airflow import BatchOperator
        START = pendulum.datetime(2025, 1, 1, tz="UTC")
    """
    write_dag(tmp_path, "no_queue.py", head + """
        with DAG("no_queue", schedule=None, start_date=START):
            BatchOperator(task_id="train", job_definition="trainer", resources={"memory": "lots"})
    """)
    write_dag(tmp_path, "platform.py", head + """
        with DAG("platform", schedule=None, start_date=START):
            BatchOperator(task_id="train", job_definition="trainer", job_queue="q", platform="lambda")
    """)
    errors = {Path(path).stem: text for path, text in dagbag(tmp_path).import_errors.items()}
    assert errors == {
        "no_queue": "AirflowClusterPolicyError: step 'train': BatchOperator has no job_queue; pass job_definition= and job_queue=, "
        "or give them with @batch(job_definition=..., queue=...) on step=",
        "platform": "AirflowClusterPolicyError: step 'train': platform='lambda' from platform= on BatchOperator is not an AWS Batch "
        "platform; use one of ec2, fargate, eks",
    }


def test_portable_task_argument_errors_are_one_line_import_errors(tmp_path: Path) -> None:
    head = """
        import pendulum
        from airflow.sdk import DAG
        from allotment.airflow import portable_task
        START = pendulum.datetime(2025, 1, 1, tz="UTC")
    """
    write_dag(tmp_path, "twice.py", head + """
        with DAG("twice", schedule=None, start_date=START):
            portable_task(task_id="prep", resources={"cpu": 2}, kubernetes={"image": "busybox", "task_id": "other"})
    """)
    write_dag(tmp_path, "fallback.py", head + """
        with DAG("fallback", schedule=None, start_date=START):
            portable_task(task_id="prep", fallback="lambda", kubernetes={"image": "busybox"})
    """)
    errors = {Path(path).stem: text for path, text in dagbag(tmp_path).import_errors.items()}
    assert errors["twice"] == (
        "AirflowClusterPolicyError: step 'prep': portable_task got 'task_id' both in kubernetes= and as a common argument; "
        "give each argument once"
    )
    assert errors["fallback"] == (
        "AirflowClusterPolicyError: step 'prep': fallback='lambda' from portable_task is no backend a portable task can run "
        "on; use one of kubernetes, batch"
    )
    assert all("Traceback" not in text and "\n" not in text for text in errors.values())
