"""Answers a user can trust (issue 14, the core and CLI items): each test runs the command as a
user meets it and asserts the exact message and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from allotment import AllotmentError, __version__
from allotment.cli import main
from allotment.errors import AllotmentWarning
from allotment.settings import load_settings
from allotment.withspec import parse_runtime

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "tests" / "data" / "flows" / "train.py"
RETRIES = ROOT / "workflows" / "overrides_and_retries.py"
ALLOTMENT = Path(sys.executable).parent / "allotment"
BACKENDS = "backends are kubernetes, batch, local"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_BACKEND", "ALLOTMENT_POLICY", "ALLOTMENT_PROFILE", "ALLOTMENT_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def console(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALLOTMENT_")} | (env or {})
    return subprocess.run([str(ALLOTMENT), *argv], capture_output=True, text=True, check=False, env=environment)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# -- 2. advice names the cap that binds ---------------------------------------------------------


@pytest.fixture
def two_caps(tmp_path: Path) -> Path:
    return write(tmp_path, "policy.yaml", "caps: {memory: 64Gi}\nruntime: {caps: {memory: 48Gi}}\n")


def test_2_advice_names_the_cap_that_binds_runtime_input(capsys: pytest.CaptureFixture[str], two_caps: Path) -> None:
    code, out, err = run(capsys, "explain", str(FLOW), "--with", "prepare:memory=500Gi", "--policy", str(two_caps))
    assert code == 1
    assert err.splitlines()[0] == (
        f"allotment: error: {FLOW}: step 'prepare': memory='500Gi' from with --with 'prepare:memory=500Gi' exceeds the cap "
        f"memory <= 48Gi (runtime.caps in policy {two_caps}); ask for at most 48Gi, or have the policy changed"
    )
    # The advice is a value that passes.
    code, out, err = run(capsys, "explain", str(FLOW), "--with", "prepare:memory=48Gi", "--policy", str(two_caps), "-o", "json")
    assert code == 0, err
    prepare = next(item for item in json.loads(out) if item["step"] == "prepare")
    assert {f["field"]: f["shown"] for f in prepare["fields"]}["memory"] == "48Gi"


def test_2_a_looser_runtime_cap_leaves_caps_binding(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "caps: {memory: 64Gi}\nruntime: {caps: {memory: 100Gi}}\n")
    code, _, err = run(capsys, "explain", str(FLOW), "--with", "prepare:memory=80Gi", "--policy", str(policy))
    assert code == 1
    assert "exceeds the cap memory <= 64Gi (caps in policy" in err
    assert "ask for at most 64Gi, or have the policy changed" in err


def test_2_the_same_advice_through_dag_run_conf(two_caps: Path) -> None:
    from allotment import resources, spec_of

    @resources(memory="8Gi")
    def crunch() -> None: ...

    settings = load_settings(cli={"policy": str(two_caps)}, env={})
    withs, sets = parse_runtime(
        {"tasks": {"crunch": "memory=500Gi"}}, "dag_run.conf['allotment']", accepted="see the docs", steps=["crunch"]
    )
    with pytest.raises(AllotmentError) as info:
        settings.resolve(spec_of(crunch), withs=withs, sets=sets)
    assert str(info.value) == (
        "step 'crunch': memory='500Gi' from with dag_run.conf['allotment']['tasks']['crunch'] 'memory=500Gi' exceeds the cap "
        f"memory <= 48Gi (runtime.caps in policy {two_caps}); ask for at most 48Gi, or have the policy changed"
    )


# -- 3. one message, never a traceback; ALLOTMENT_DEBUG=1 shows it ------------------------------


def test_3_a_failing_user_file_is_one_message_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.py", "def boom():\n    raise RuntimeError('disk on fire')\n\nboom()\n")
    done = console("explain", str(broken))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"allotment: error: {broken} failed to import: RuntimeError: disk on fire; "
        "fix the file; run with ALLOTMENT_DEBUG=1 to see the traceback\n"
        "allotment: explain: 0 steps in 1 file, 1 error\n"
    )
    debug = console("explain", str(broken), env={"ALLOTMENT_DEBUG": "1"})
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RuntimeError: disk on fire" in debug.stderr  # the user's own exception, in the chain
    assert "in boom\n    raise RuntimeError" in debug.stderr
    assert debug.stderr.endswith(done.stderr.split("\n", 1)[1]) and done.stderr.splitlines()[0] in debug.stderr


def test_3_a_file_that_exits_while_imported_is_an_error_not_an_exit(tmp_path: Path) -> None:
    script = write(tmp_path, "script.py", "import sys\nsys.exit(3)\n")
    done = console("render", str(script), "--target", "kubernetes")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        f"allotment: error: {script} exited while it was imported (SystemExit 3); "
        "put the code that runs the file as a script under `if __name__ == '__main__':`"
    )


def test_3_a_face_failing_unexpectedly_is_one_message(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import allotment.faces

    def broken_face(paths: object, settings: object, options: object) -> list[dict[str, object]]:
        raise TypeError("'NoneType' object is not iterable")

    monkeypatch.setattr(allotment.faces, "load_target", lambda target: broken_face)
    code, out, err = run(capsys, "render", str(FLOW), "--target", "argo")
    assert (code, out) == (1, "")
    assert err == (
        "allotment: error: TypeError: 'NoneType' object is not iterable; this is a bug or an engine's error; "
        "run with ALLOTMENT_DEBUG=1 to see the traceback\n"
        "allotment: render --target argo: 1 file, 1 error\n"
    )
    monkeypatch.setenv("ALLOTMENT_DEBUG", "1")
    code, _, err = run(capsys, "render", str(FLOW), "--target", "argo")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "in broken_face" in err


def test_3_a_library_error_shows_one_exception_not_a_chain() -> None:
    code = "from allotment import resources\n@resources(memory='16gb')\ndef train(): ...\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "The above exception was the direct cause" not in done.stderr
    assert "During handling of the above exception" not in done.stderr
    assert done.stderr.count("Traceback (most recent call last)") == 1
    assert done.stderr.rstrip().endswith(
        "allotment.errors.FieldError: step 'train': memory='16gb' from @resources is not a quantity; "
        "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
    ) or done.stderr.rstrip().endswith(
        "allotment.errors.AllotmentError: step 'train': memory='16gb' from @resources is not a quantity; "
        "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
    )


# -- 4. a command that finds nothing says so and exits non-zero ---------------------------------


def test_4_render_argo_on_a_plain_file_says_what_it_found(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", str(FLOW), "--target", "argo")
    assert (code, out) == (1, "")
    assert err == (
        f"allotment: error: nothing to render for --target argo: 3 steps in {FLOW.as_posix()} (1 file): prepare, train, report; "
        "--target argo renders Hera workflows (Workflow, WorkflowTemplate, CronWorkflow); "
        "for plain steps use --target kubernetes or --target batch\n"
        "allotment: render --target argo: 0 documents, 3 steps in 1 file, 1 error\n"
    )


def test_4_explain_on_an_empty_folder_and_a_file_without_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "explain", str(empty))
    assert (code, out) == (1, "")
    assert err == (
        f"allotment: error: no Python files in {empty.as_posix()}; explain reads .py files, or folders of them\n"
        "allotment: explain: 0 steps in 0 files, 1 error\n"
    )
    plain = write(tmp_path, "plain.py", "def f():\n    return 1\n")
    code, out, err = run(capsys, "explain", str(plain))
    assert (code, out) == (1, "")
    assert err == (
        f"allotment: error: 0 steps in {plain.as_posix()} (1 file); a step is a function with @resources, @kubernetes or @batch, "
        "an Airflow task or a Hera template that carries allotment resources\n"
        "allotment: explain: 0 steps in 1 file, 1 error\n"
    )


def test_4_render_where_every_step_runs_elsewhere(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    only_batch = write(tmp_path, "jobs.py", "from allotment import batch\n\n@batch(cpu=1)\ndef report(): ...\n")
    code, out, err = run(capsys, "render", str(only_batch), "--target", "kubernetes")
    assert (code, out) == (1, "")
    assert err == (
        "allotment: step 'report' runs on batch (@batch); not rendered for kubernetes\n"
        f"allotment: error: nothing to render for --target kubernetes: 1 step in {only_batch.as_posix()}, none runs on kubernetes "
        "(they run on batch); render them with --target batch\n"
        "allotment: render --target kubernetes: 0 documents, 1 step (1 batch, not rendered) in 1 file, 1 error\n"
    )


# -- 5. absurd values warn above a sane bound, error above the hard limits -----------------------


def test_5_values_beyond_any_cloud_machine_warn(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    huge = write(
        tmp_path, "huge.py", "from allotment import resources\n\n@resources(cpu=100000, memory=10**9, gpu=1000)\ndef huge(): ...\n"
    )
    code, out, err = run(capsys, "render", str(huge), "--target", "kubernetes")
    assert code == 0
    assert yaml.safe_load(out)["resources"]["requests"]["cpu"] == "100000"
    assert err.splitlines() == [
        "allotment: warning: step 'huge': cpu=100000 from @resources is more than the largest machine a major cloud sells "
        "(1920 cores: Google Cloud x4-megamem-1920-metal); a pod or job asking for it stays Pending",
        "allotment: warning: step 'huge': memory=1000000000Mi (about 954Ti) from @resources is more than the largest machine "
        "a major cloud sells (32Ti: AWS u7in-32tb.224xlarge, Google Cloud x4-megamem-1920-metal); a pod or job asking for it stays Pending",
        "allotment: warning: step 'huge': gpu=1000 from @resources is more than the largest machine a major cloud sells "
        "(16 GPUs: Google Cloud a2-megagpu-16g, 16 A100; AWS trn1.32xlarge, 16 Trainium devices); a pod or job asking for it stays Pending",
        "allotment: render --target kubernetes: 1 document, 1 step (1 kubernetes) in 1 file, 0 errors, 3 warnings",
    ]
    # explain shows them in the step's block (and not twice)
    code, out, err = run(capsys, "explain", str(huge), "--backend", "kubernetes")
    assert code == 0
    assert "  warning: step 'huge': gpu=1000 from @resources is more than the largest machine" in out
    assert err == "allotment: explain: 1 step (1 kubernetes) in 1 file, 0 errors, 3 warnings\n"


def test_5_values_at_the_bounds_pass_quietly_and_warnings_reach_python(tmp_path: Path) -> None:
    from allotment import resources, spec_of
    from allotment.resolve import resolve

    @resources(cpu=1920, memory="32Ti", gpu=16)
    def biggest() -> None: ...

    assert resolve(spec_of(biggest)).notes == ()

    @resources(gpu=17)
    def over() -> None: ...

    with pytest.warns(AllotmentWarning, match=r"^step 'over': gpu=17 from @resources is more than the largest machine"):
        assert resolve(spec_of(over)).notes[0].startswith("warning: step 'over': gpu=17")


def test_5_values_above_the_hard_limits_are_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    beyond = write(tmp_path, "beyond.py", "from allotment import resources\n\n@resources(cpu=10**7)\ndef beyond(): ...\n")
    code, out, err = run(capsys, "explain", str(beyond))
    assert (code, out) == (1, "")
    assert err.startswith(f"allotment: error: {beyond}: step 'beyond': cpu=10000000 from @resources is more than any machine has")


# -- 6. the --with rough edges ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "kubrenetes:cpu=8",
            "from --with 'kubrenetes:cpu=8' names step 'kubrenetes', which does not exist (did you mean the backend 'kubernetes'?); "
            f"steps are prepare, report, train; {BACKENDS}\n    kubrenetes:cpu=8\n    ^^^^^^^^^^",
        ),
        (
            "kubernetes:cpu=8;batch:cpu=2",
            "from --with 'kubernetes:cpu=8;batch:cpu=2' holds ';', which separates specs only in ALLOTMENT_WITH; "
            "repeat --with for each spec: --with 'kubernetes:cpu=8' --with 'batch:cpu=2'\n"
            "    kubernetes:cpu=8;batch:cpu=2\n                    ^",
        ),
        (
            "foo",
            f"from --with 'foo' names no backend and holds no key=value; {BACKENDS}; a spec is e.g. 'kubernetes:cpu=8' or "
            "'memory=64Gi'\n    foo\n    ^^^",
        ),
    ],
)
def test_6_with_errors_say_what_to_write(capsys: pytest.CaptureFixture[str], spec: str, message: str) -> None:
    code, out, err = run(capsys, "explain", str(FLOW), "--with", spec)
    assert (code, out) == (1, "")
    assert err.startswith(f"allotment: error: {message}\nallotment: explain: ")
    assert err.count("'foo'") <= 1


def test_6_a_with_that_does_not_move_a_pinned_step_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", str(FLOW), "--with", "kubernetes")
    assert code == 0
    note = (
        "allotment: note: --with 'kubernetes' does not move 'report' (pinned to batch): a step pinned to a backend runs there "
        "whatever the deployment chooses"
    )
    assert err.splitlines() == [note, "allotment: explain: 3 steps (2 kubernetes; 1 batch) in 1 file, 0 errors"]


def test_6_the_env_form_still_takes_semicolons(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_WITH", "kubernetes:cpu=8;prepare:memory=9Gi")
    code, out, _ = run(capsys, "explain", str(FLOW), "-o", "json")
    assert code == 0
    prepare = next(item for item in json.loads(out) if item["step"] == "prepare")
    assert {f["field"]: f["shown"] for f in prepare["fields"]} == {"cpu": "8", "memory": "9Gi"}


TASK_GROUP_DAG = """\
import pendulum
from airflow.sdk import DAG, TaskGroup
from allotment.airflow import KubernetesPodOperator

with DAG(dag_id="grouped", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    with TaskGroup("etl"):
        KubernetesPodOperator(task_id="locale", image="python:3.12-slim", cmds=["true"], resources={"cpu": 1, "memory": "1Gi"})
    with TaskGroup("grp"):
        KubernetesPodOperator(task_id="batches", image="python:3.12-slim", cmds=["true"], resources={"cpu": 1})
"""


@pytest.mark.slow
def test_issue_9_task_group_ids_that_look_like_a_backend_are_step_names(tmp_path: Path) -> None:
    dag = write(tmp_path, "grouped.py", TASK_GROUP_DAG)
    done = console("explain", str(dag), "--with", "etl.locale:memory=8Gi", "--with", "grp.batches:cpu=3", "-o", "json")
    assert done.returncode == 0, done.stderr
    fields = {item["step"]: {f["field"]: f["shown"] for f in item["fields"]} for item in json.loads(done.stdout)}
    assert fields["etl.locale"]["memory"] == "8Gi"
    assert fields["grp.batches"]["cpu"] == "3"
    wrong = console("explain", str(dag), "--with", "etl.lokale:memory=8Gi")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith(
        "allotment: error: from --with 'etl.lokale:memory=8Gi' names step 'etl.lokale', which does not exist "
        "(did you mean step 'etl.locale'?); steps are etl.locale, grp.batches"
    )


def test_issue_9_a_misspelt_backend_after_a_step_still_gets_its_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", str(FLOW), "--with", "train.locale:memory=8Gi")
    assert code == 1
    assert err.startswith(
        "allotment: error: from --with 'train.locale:memory=8Gi' names step 'train.locale', which does not exist "
        "(did you mean step 'train' on the backend 'local': 'train.local'?)"
    )


# -- 7. the smaller items ------------------------------------------------------------------------

TWO_BAD_STEPS = """\
from allotment import kubernetes, resources

@resources(memory="1Gi", shared_memory="2Gi")
def shm(): ...

@resources(gpu=1, gpu_type="H100")
@kubernetes(gpu_type="A100")
def clash(): ...

@resources(cpu=2)
def fine(): ...
"""


def test_7_every_steps_error_is_reported_each_naming_its_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.py", TWO_BAD_STEPS)
    for argv in (["explain", str(bad)], ["render", str(bad), "--target", "kubernetes", "--backend", "kubernetes"]):
        code, out, err = run(capsys, *argv)
        assert code == 1
        assert "'fine'" in out or '"step": "fine"' in out or "step: fine" in out  # the good step is still shown
        lines = err.splitlines()
        assert lines[0] == (
            f"allotment: error: {bad}: step 'shm': shared_memory='2Gi' from @resources is more than memory=1Gi from @resources "
            "(shared memory is charged to the step's memory); ask for at most 1Gi of shared memory, or more memory"
        )
        assert lines[1] == (
            f"allotment: error: {bad}: step 'clash': gpu_type='H100' from @resources conflicts with gpu_type='A100' from @kubernetes; "
            "text fields must agree across sources; remove one, or replace it with a 'set' override"
        )
        assert lines[2].endswith("in 1 file, 2 errors")


def test_7_an_argo_error_names_its_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    hera = write(
        tmp_path,
        "clashing.py",
        """\
        from allotment import resources
        from hera.workflows import Resources, Steps, Workflow, script

        @resources(cpu=4)
        @script(image="python:3.12", resources=Resources(cpu_request=2))
        def train() -> None: ...

        with Workflow(generate_name="x-", entrypoint="s") as w:
            with Steps(name="s"):
                train()
        """,
    )
    code, out, err = run(capsys, "render", str(hera), "--target", "argo")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == (
        f"allotment: error: {hera.as_posix()}: step 'train': requests.cpu='2' from Script 'train''s own fields conflicts with "
        "requests.cpu='4' from allotment's spec; give this resource in one place only (allotment's spec, or the container's own resources)"
    )


def test_7_a_clash_names_the_part_that_clashed_when_the_face_names_each() -> None:
    from allotment import resources, spec_of
    from allotment.kubernetes import fit
    from allotment.profiles import get_profile
    from allotment.resolve import resolve

    @resources(cpu=4)
    def train() -> None: ...

    names = {
        "resources": "container_resources of KubernetesPodOperator",
        "volumes": "volumes of KubernetesPodOperator",
        "volumeMounts": "volume_mounts of KubernetesPodOperator",
        "nodeSelector": "node_selector of KubernetesPodOperator",
        "tolerations": "tolerations of KubernetesPodOperator",
    }
    with pytest.raises(AllotmentError) as info:
        fit(resolve(spec_of(train)), get_profile(None), {"resources": {"requests": {"cpu": "2"}}}, user_source=names)
    assert str(info.value) == (
        "step 'train': requests.cpu='2' from container_resources of KubernetesPodOperator conflicts with requests.cpu='4' "
        "from allotment's spec; give this resource in one place only (allotment's spec, or the container's own resources)"
    )


def test_7_explain_shows_no_kubernetes_column_for_local_steps_and_no_jargon(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    local = write(tmp_path, "local.py", "from allotment import resources\n\n@resources(cpu=2)\ndef prep(): ...\n")
    code, out, _ = run(capsys, "explain", str(local))
    assert code == 0
    assert out == (
        f"step 'prep' ({local.as_posix()}): runs on local\n"
        "  note: runs on local: nothing is compiled for it (the local backend runs the callable on this machine); "
        "choose another backend to see what a step becomes there (--backend kubernetes, or --with batch)\n"
        "  field   value  source              other sources\n"
        "  cpu     2      @resources          -\n"
        "  memory  4Gi    default (built in)  -\n"
    )
    code, out, _ = run(capsys, "explain", str(local), "-o", "json")
    assert json.loads(out)[0]["target"] is None


def test_7_render_batch_mentions_retry_memory_factor(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    growing = write(
        tmp_path, "grow.py", "from allotment import batch\n\n@batch(memory='4Gi', retry_memory_factor=1.5)\ndef crunch(): ...\n"
    )
    code, out, _ = run(capsys, "render", str(growing), "--target", "batch")
    assert code == 0
    assert "retry_memory_factor 1.5: memory x1.5 after each OOM kill (OutOfMemoryError; applied at submit)" in yaml.safe_load(out)["notes"]


def test_7_version_and_the_closing_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"allotment {__version__}\n"
    code, _, err = run(capsys, "render", str(FLOW), "--target", "kubernetes")
    assert code == 0
    assert err.splitlines()[-1] == (
        "allotment: render --target kubernetes: 2 documents, 3 steps (2 kubernetes; 1 batch, not rendered) in 1 file, 0 errors"
    )


# -- the LimitRange's side effect ---------------------------------------------------------------


def test_render_limitrange_says_what_it_does_to_containers_without_resources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", "--target", "limitrange", "--policy", str(ROOT / "dags" / "policy.yaml"), "--namespace", "ml")
    assert code == 0
    assert yaml.safe_load(out)["kind"] == "LimitRange"
    assert err == (
        "allotment: note: with this LimitRange applied, every container in namespace 'ml' that sets no resources of its own gets "
        "its defaults: requests cpu 1, memory 4Gi (defaultRequest) and limits cpu 32, memory 256Gi (default). That includes "
        "Argo's init and wait containers and any sidecar without resources; size Argo's own containers in the workflow "
        "controller's configuration:\n"
        "    # ConfigMap workflow-controller-configmap (Argo's controller), key executor:\n"
        "    executor: |\n"
        "      resources:\n"
        "        requests: {cpu: 100m, memory: 64Mi}\n"
        "        limits: {cpu: 500m, memory: 512Mi}\n"
        "allotment: render --target limitrange: 1 document, 0 errors\n"
    )


# -- the Argo preview: explain -p ---------------------------------------------------------------


def fields_of(out: str, step: str) -> dict[str, tuple[str, str]]:
    item = next(i for i in json.loads(out) if i["step"] == step)
    return {f["field"]: (f["shown"], f["source"]) for f in item["fields"]}


def test_p_previews_a_submit_parameter_as_a_replacement(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", str(RETRIES), "-p", "aggregate-memory=3Gi", "-p", "aggregate-cpu=6", "-o", "json")
    assert code == 0, err
    aggregate = fields_of(out, "aggregate")
    assert aggregate["memory"] == ("3Gi", "submit parameter -p aggregate-memory=3Gi")  # lower than the compiled 6Gi: it replaces
    assert aggregate["cpu"] == ("6", "submit parameter -p aggregate-cpu=6")
    assert fields_of(out, "report")["memory"] == ("3000Mi", "@resources")
    # as the Argo face reads it: a plain number is MiB, an exponent without a unit is bytes
    code, out, _ = run(capsys, "explain", str(RETRIES), "-p", "aggregate-memory=65536", "-o", "json")
    assert fields_of(out, "aggregate")["memory"][0] == "64Gi"
    code, out, _ = run(capsys, "explain", str(RETRIES), "-p", "aggregate-memory=1e9", "-o", "json")
    assert fields_of(out, "aggregate")["memory"][0] == "954Mi"


def test_p_is_runtime_input_for_the_policy(capsys: pytest.CaptureFixture[str], two_caps: Path) -> None:
    code, _, err = run(capsys, "explain", str(RETRIES), "-p", "aggregate-memory=60Gi", "--policy", str(two_caps))
    assert code == 1
    assert err.splitlines()[0] == (
        f"allotment: error: {RETRIES}: step 'aggregate': memory='60Gi' from submit parameter -p aggregate-memory=60Gi exceeds "
        f"the cap memory <= 48Gi (runtime.caps in policy {two_caps}); ask for at most 48Gi, or have the policy changed"
    )


def test_p_names_only_parameters_the_workflow_declares(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "explain", str(RETRIES), "-p", "report-memory=12Gi")
    assert code == 1
    assert err.splitlines()[0] == (
        "allotment: error: from -p report-memory=12Gi names no parameter the workflows declare (a template with overridable(False) "
        "declares none); their resource parameters are aggregate-cpu, aggregate-memory"
    )
    no_with = write(tmp_path, "policy.yaml", "runtime: {with: false}\n")
    code, _, err = run(capsys, "explain", str(RETRIES), "-p", "aggregate-memory=12Gi", "--policy", str(no_with))
    assert code == 1
    assert err.splitlines()[0] == (
        f"allotment: error: from -p aggregate-memory=12Gi names no parameter the workflows declare; policy {no_with} turns them "
        "off (runtime.with: false); their resource parameters are (none)"
    )
    code, _, err = run(capsys, "explain", str(FLOW), "-p", "train-memory=12Gi")
    assert code == 1
    assert err.splitlines()[0] == (
        f"allotment: error: from -p 'train-memory=12Gi' sets an Argo submit parameter, but no Hera template in {FLOW.as_posix()} "
        "carries allotment resources; give -p with Hera workflow files"
    )
