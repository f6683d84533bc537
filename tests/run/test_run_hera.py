"""``allotment run FILE`` on Hera workflows (issue 11, item 3): script templates in DAG and Steps
order, each through the local executor under its spec, with input parameters, ``outputs.result``
and output parameters passed on as Argo passes them; container templates skipped with a note;
what is not covered refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from allotment.local import load_schema
from run_support import DATA, Ran

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "workflows" / "training_pipeline.py"


def echoed(ran: Ran, step: str) -> list[str]:
    """What ``step`` wrote to stdout, as the run echoed it."""
    prefix = f"  {step} | "
    return [line[len(prefix) :] for line in ran.err.splitlines() if line.startswith(prefix)]


@pytest.fixture
def count_file() -> Iterator[Path]:
    path = Path("/tmp/allotment-test-run-hera-count")
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_dag_runs_scripts_in_order_and_passes_results_parameters_and_fan_outs(run: Callable[..., Ran], count_file: Path) -> None:
    ran = run(DATA / "hera_dag.py")
    assert ran.status == 0, ran.err
    assert ran.steps == [
        ("make", 1, "succeeded"),
        ("double(0:1)", 1, "succeeded"),  # withParam over make's result, named as Argo names the nodes
        ("double(1:2)", 1, "succeeded"),
        ("double(2:3)", 1, "succeeded"),
        ("total", 1, "succeeded"),
    ]
    assert echoed(ran, "make") == ["[1, 2, 3]"]
    assert echoed(ran, "double(1:2)") == ['{"label": "part-2", "doubled": 4}']  # {{item}} in two arguments
    # the aggregated JSON list of the fan-out's results, the output parameter read from its file,
    # and a workflow parameter
    assert echoed(ran, "total") == ["hello: 12 from 3 parts"]
    assert count_file.read_text() == "3"
    assert "lister: skipped, a container template 'lister': it needs its image; allotment run runs script templates only" in ran.err
    make = ran.result("make")
    assert (make.limits.cpu_millicores, make.limits.memory_mib) == (1000, 200)
    assert ran.result("total").limits.memory_mib == 150


def test_steps_groups_run_in_order_and_see_earlier_outputs(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "hera_steps.py")
    assert ran.status == 0, ran.err
    assert [s for s, _, _ in ran.steps] == ["left", "right", "join"]
    assert echoed(ran, "join") == ["L+R"]


def test_step_option_runs_the_named_task_and_what_it_waits_for(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "hera_branches.py", steps=("b",))
    assert ran.status == 0, ran.err
    assert [s for s, _, _ in ran.steps] == ["a", "b"]  # c: not needed by b
    assert echoed(ran, "b") == ["B after A"]
    assert [s for s, _, _ in run(DATA / "hera_branches.py", steps=("c",)).steps] == ["a", "c"]


def test_a_step_option_naming_nothing_in_the_workflow_is_an_error(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "hera_branches.py", steps=("d",))
    assert ran.steps == []
    assert str(ran.error).endswith("; steps are a, b, c, main")


def test_with_and_workflow_defaults_apply_to_script_templates(run: Callable[..., Ran], tmp_path: Path) -> None:
    ran = run(DATA / "hera_branches.py", steps=("a",), cli={"with": ["a:memory=300Mi"]})
    assert ran.result("a").limits.memory_mib == 300
    workflow = tmp_path / "defaults.py"
    workflow.write_text(
        "from allotment import resources\n"
        "from allotment.argo import defaults\n"
        "from hera.workflows import DAG, Workflow, script\n\n"
        "@resources(cpu='500m')\n@script()\ndef hello() -> None:\n    print('hi')\n\n"
        "with Workflow(name='d', entrypoint='main') as wf:\n    with DAG(name='main'):\n        hello()\n\n"
        "defaults(wf, memory='192Mi')\n"
    )
    ran = run(workflow)
    assert ran.status == 0, ran.err
    hello = ran.result("hello")
    assert (hello.limits.cpu_millicores, hello.limits.memory_mib) == (500, 192)
    assert hello.limits.source_of("memory") == "workflow default allotment.argo.defaults(d)"


def test_what_is_not_covered_is_refused_before_anything_runs(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "hera_when.py")
    assert ran.steps == [] and "starting" not in ran.err
    assert str(ran.error) == (
        "Workflow conditional template 'main' task 'heads' uses when, which allotment run does not cover; "
        "see docs/run.md for what it covers"
    )


def test_reading_the_output_of_a_skipped_container_fails_with_the_reason(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "hera_skipped_output.py")
    assert ran.steps == []
    assert str(ran.error) == (
        "show argument 'text' reads {{tasks.produce.outputs.result}}, which has no value here: that node did not run "
        "(container template 'produce': it needs its image); run the workflow on Argo"
    )


def test_the_retry_strategy_gives_the_retries(run: Callable[..., Ran]) -> None:
    marker = Path(tempfile.gettempdir()) / "allotment-test-run-hera-flaky"
    marker.unlink(missing_ok=True)
    try:
        ran = run(DATA / "hera_retry.py")
    finally:
        marker.unlink(missing_ok=True)
    assert ran.status == 0, ran.err
    assert ran.steps == [("flaky", 1, "failed"), ("flaky", 2, "succeeded")]
    assert ran.result("flaky").reason == "raised allotment.run.ScriptExit: python flaky exited with status 3"
    assert "allotment run: flaky: starting (1 cpu, 150Mi, up to 2 retries)" in ran.err


def test_an_output_file_the_script_did_not_write_fails_the_node(run: Callable[..., Ran]) -> None:
    Path("/tmp/allotment-test-run-hera-never-written").unlink(missing_ok=True)
    ran = run(DATA / "hera_missing_output.py")
    assert ran.steps == [("forgetful", 1, "succeeded")]
    assert (
        "step 'forgetful': output parameter 'out' reads /tmp/allotment-test-run-hera-never-written, which the script did not write"
    ) in str(ran.error)


def test_an_output_file_left_by_an_earlier_run_does_not_count(run: Callable[..., Ran]) -> None:
    stale = Path("/tmp/allotment-test-run-hera-never-written")
    stale.write_text("old")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    try:
        ran = run(DATA / "hera_missing_output.py")
    finally:
        stale.unlink(missing_ok=True)
    assert "which the script did not write" in str(ran.error)


def test_the_example_pipeline_runs_its_scripts_in_order_with_their_outputs(tmp_path: Path) -> None:
    """The acceptance run: ``allotment run workflows/training_pipeline.py --report FILE``, the real command."""
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOTMENT_")}
    out = subprocess.run(
        [sys.executable, "-m", "allotment", "run", str(EXAMPLE), "--report", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["step", "prep", "train", "evaluate"]
    lines = out.stderr.splitlines()
    prep = json.loads(next(line for line in lines if line.startswith("  prep | "))[len("  prep | ") :])
    assert prep == {"rows": 1000000, "seed": 7, "mean_y": prep["mean_y"]}
    # train got prep's result (a JSON object) and its output parameter (the row count)
    assert "  train | " + json.dumps({"slope": 3.0, "intercept": 2.0, "rows": 1000000}) in lines
    assert "  evaluate | mean absolute error 0.0000 on 100000 fresh points" in lines
    document = json.loads(report.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(document)
    assert [(s["step"], s["spec"]["cpu_millicores"], s["spec"]["memory_mib"], s["outcome"]) for s in document["steps"]] == [
        ("prep", 1000, 512, "succeeded"),
        ("train", 2000, 1024, "succeeded"),
        ("evaluate", 1000, 512, "succeeded"),
    ]
    train = document["steps"][1]
    assert train["placement"]["memory_cap"]["limit_mib"] == 1024
    assert train["measurements"]["cpu_time_s"] > 0 and train["measurements"]["peak_memory_bytes"] > 0


def test_runner_scripts_and_expressions_are_refused(run: Callable[..., Ran], tmp_path: Path) -> None:
    workflow = tmp_path / "runner.py"
    workflow.write_text(
        "from allotment import resources\n"
        "from hera.workflows import DAG, Workflow, script\n\n"
        "@resources(memory='128Mi')\n@script(constructor='runner')\ndef hello() -> None:\n    print('hi')\n\n"
        "with Workflow(name='r', entrypoint='main') as wf:\n    with DAG(name='main'):\n        hello()\n"
    )
    ran = run(workflow)
    assert ran.steps == []
    assert "has script args (a Hera runner script, constructor='runner'), which allotment run does not cover" in str(ran.error)
    expression = tmp_path / "expression.py"
    expression.write_text(
        "from allotment import resources\n"
        "from hera.workflows import DAG, Workflow, script\n\n"
        "@resources(memory='128Mi')\n@script()\ndef show(x: str) -> None:\n    print(x)\n\n"
        "with Workflow(name='e', entrypoint='main') as wf:\n    with DAG(name='main'):\n"
        "        show(arguments={'x': \"{{=asInt('1') + 1}}\"})\n"
    )
    ran = run(expression)
    assert ran.steps == []
    assert str(ran.error) == (
        "show argument 'x' has the expression \"{{=asInt('1') + 1}}\", which allotment run does not evaluate; use plain {{...}} variables"
    )


def test_a_fan_out_whose_results_are_not_json_cannot_be_aggregated(run: Callable[..., Ran], tmp_path: Path) -> None:
    workflow = tmp_path / "aggregate.py"
    workflow.write_text(
        "from allotment import resources\n"
        "from hera.workflows import DAG, Workflow, script\n\n"
        "@resources(memory='128Mi')\n@script()\ndef word(w: str) -> None:\n    print('word ' + w)\n\n"
        "@resources(memory='128Mi')\n@script()\ndef show(x: str) -> None:\n    print(x)\n\n"
        "with Workflow(name='agg', entrypoint='main') as wf:\n    with DAG(name='main'):\n"
        "        a = word(arguments={'w': '{{item}}'}, with_items=['x', 'y'])\n"
        "        b = show(arguments={'x': a.result})\n        a >> b\n"
    )
    ran = run(workflow)
    assert [s for s, _, _ in ran.steps] == ["word(0:x)", "word(1:y)"]
    assert str(ran.error) == (
        "show argument 'x' reads {{tasks.word.outputs.result}}, which has no value here: its nodes' results are not all JSON, "
        "and Argo aggregates the results of a fanned-out task as a JSON list (it fails the workflow the same way); run the workflow on Argo"
    )
