"""``allotment run FILE`` on plain decorated functions (issue 11, item 3): every step in a child
process under its resolved spec, in file order, progress while it runs, the table at the end, the
JSON report on request, and a failure that stops the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from allotment.local import load_schema
from run_support import DATA, Ran

PLAIN = DATA / "plain_steps.py"
ROOT = Path(__file__).resolve().parents[2]
HEADER = "step        asked            used (peak)        cpu time  wall    hint"


def test_runs_each_decorated_function_in_file_order_in_a_child_under_its_spec(run: Callable[..., Ran]) -> None:
    ran = run(PLAIN)
    assert ran.status == 0, ran.err
    assert ran.steps == [("first", 1, "succeeded"), ("second", 1, "succeeded"), ("pinned", 1, "succeeded")]  # not_a_step: not called
    first, second, pinned = ran.run.results
    assert (first.limits.cpu_millicores, first.limits.memory_mib) == (1000, 256)
    assert (second.limits.cpu_millicores, second.limits.memory_mib) == (500, 300)
    assert first.value == 1  # the child saw the one core it was pinned to
    assert second.value == "second done"
    assert first.placement.memory_limit_mib == 256
    assert first.measurement.peak_memory_bytes and first.measurement.wall_time_s > 0
    assert first.placement.env["CUDA_VISIBLE_DEVICES"] == ""  # no GPU asked: none visible
    # a step pinned by @kubernetes runs here with the values it has there, and says so
    assert pinned.limits.memory_mib == 320 and pinned.value == "ran here"
    assert "pinned: pinned to kubernetes by @kubernetes; it runs here with the values it has there" in ran.err


def test_progress_and_the_steps_output_go_to_stderr_and_the_table_to_stdout(run: Callable[..., Ran]) -> None:
    ran = run(PLAIN, steps=("first",))
    lines = ran.err.splitlines()
    start = lines.index("allotment run: first: starting (1 cpu, 256Mi)")
    assert "  first | first writes to stdout" in lines[start:]
    assert "  first ! first writes to stderr" in lines[start:]
    assert any(line.startswith("allotment run: first: succeeded in ") and line.endswith(", returned 1") for line in lines)
    table = ran.out.splitlines()
    assert table[0] == HEADER
    assert table[1].startswith("first       1 cpu, 256Mi ")
    assert len(table) == 2


def test_step_option_runs_only_the_named_steps(run: Callable[..., Ran]) -> None:
    ran = run(PLAIN, steps=("second", "pinned"))
    assert ran.status == 0
    assert [s for s, _, _ in ran.steps] == ["second", "pinned"]


def test_a_step_option_naming_no_step_is_an_error_before_anything_runs(run: Callable[..., Ran]) -> None:
    ran = run(PLAIN, steps=("frist",))
    assert ran.status is None and ran.steps == []
    assert str(ran.error) == f"--step 'frist' names no step of {PLAIN.as_posix()}; steps are first, pinned, second"


def test_with_raises_the_floor_of_local_steps_and_a_kubernetes_with_only_the_pinned_one(run: Callable[..., Ran]) -> None:
    ran = run(PLAIN, cli={"with": ["memory=400Mi"]})
    assert [r.limits.memory_mib for r in ran.run.results] == [400, 400, 400]
    assert ran.result("first").limits.source_of("memory") == "with --with 'memory=400Mi'"
    ran = run(PLAIN, cli={"with": ["kubernetes:memory=1Gi"]})
    assert [r.limits.memory_mib for r in ran.run.results] == [256, 300, 1024]
    assert "the backend kubernetes (from with) does not apply here: allotment run runs every step on this machine" in ran.err


def test_set_lowers_a_value_and_the_policy_checks_it(run: Callable[..., Ran], tmp_path: Path) -> None:
    ran = run(PLAIN, steps=("first",), cli={"set": ["first:memory=200Mi"]})
    assert ran.result("first").limits.memory_mib == 200
    policy = tmp_path / "policy.yaml"
    policy.write_text("caps:\n  memory: 280Mi\n")
    ran = run(PLAIN, cli={"policy": str(policy)})
    assert ran.steps == [("first", 1, "succeeded")]  # second (300Mi) is refused before it starts
    assert ran.status is None
    assert "step 'second': memory='300Mi' from @resources exceeds the cap memory <= 280Mi" in str(ran.error)
    assert ran.out.splitlines()[0] == HEADER  # the table of what ran still prints


def test_a_failing_step_stops_the_run_and_the_exit_status_is_1(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "failing_steps.py")
    assert ran.status == 1
    assert ran.steps == [("ok_step", 1, "succeeded"), ("broken", 1, "failed")]  # never: not run
    assert ran.result("broken").reason == "raised ValueError: the data is bad"
    assert "failed (ValueError)" in ran.out
    assert "allotment run: broken: failed: raised ValueError: the data is bad" in ran.err
    assert "allotment run: failed: broken; the steps after it did not run" in ran.err


def test_an_oom_kill_is_retried_with_more_memory(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "oom_steps.py", retries=1)
    assert ran.status == 0, ran.err
    assert ran.steps == [("hungry", 1, "oom_killed"), ("hungry", 2, "succeeded")]
    first, second = ran.run.results
    assert (first.limits.memory_mib, second.limits.memory_mib) == (96, 192)
    assert second.limits.source_of("memory") == "retry: try 2, 96Mi x 2^1 (earlier OOM kills)"
    assert second.value == 160
    assert "hungry (try 2)" in ran.out and "memory: OOM-killed at 96Mi — ask for more" in ran.out


def test_without_retries_an_oom_kill_fails_the_run(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "oom_steps.py")
    assert ran.status == 1
    assert ran.steps == [("hungry", 1, "oom_killed")]
    assert "allotment run: hungry: oom-killed: OOMKilled: " in ran.err


def test_the_json_report_validates_against_its_schema(run: Callable[..., Ran], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    ran = run(DATA / "oom_steps.py", retries=1, report=str(report))
    document = json.loads(report.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(document)
    assert [(s["step"], s["try"], s["outcome"]) for s in document["steps"]] == ran.steps
    assert [s["spec"]["memory_mib"] for s in document["steps"]] == [96, 192]
    assert f"allotment run: report written to {report}" in ran.err


def test_a_step_with_required_parameters_is_refused(run: Callable[..., Ran]) -> None:
    ran = run(DATA / "needs_arguments.py")
    assert ran.steps == []
    assert str(ran.error) == (
        "step 'wants': takes parameters without defaults (path); allotment run calls each step without arguments; "
        "give the parameters defaults, or run the step from your own script with allotment.local.run_step"
    )


def test_a_file_without_steps_says_so_and_exits_1(run: Callable[..., Ran], tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    ran = run(empty)
    assert ran.status == 1
    assert ran.out == "no step ran\n"
    assert f"allotment run: found no step to run in {empty.as_posix()}" in ran.err


def test_the_command_line_runs_the_steps_and_writes_the_report(tmp_path: Path) -> None:
    """The real entry point, in a process of its own: stdout holds the table only."""
    report = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOTMENT_")}
    out = subprocess.run(
        [sys.executable, "-m", "allotment", "run", str(PLAIN), "--step", "first", "--step", "second", "--report", str(report)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == HEADER
    assert [line.split()[0] for line in lines[1:]] == ["first", "second"]
    assert "  first | first writes to stdout" in out.stderr
    jsonschema.Draft202012Validator(load_schema()).validate(json.loads(report.read_text()))


def test_the_command_line_reports_a_bad_spec_as_one_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from allotment import resources\n\n@resources(memory='16gb')\ndef x():\n    pass\n")
    argv = [sys.executable, "-m", "allotment", "run", str(bad)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("allotment: error: ")
    assert "memory='16gb' from @resources is not a quantity" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("argv", [["run"], ["run", "--help"]])
def test_run_is_a_subcommand(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from allotment.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    text = capsys.readouterr()
    if argv == ["run"]:
        assert stopped.value.code == 2 and "run: give at least one PATH" in text.err
    else:
        assert stopped.value.code == 0 and "--report FILE" in text.out and "--step NAME" in text.out


def test_run_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from allotment.cli import build_parser, main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in action.choices["run"]._actions if not isinstance(a, argparse._HelpAction)]
    assert {o for a in options for o in a.option_strings} >= {"--with", "--set", "--policy", "--step", "--report", "--retries"}
    for option in options:
        assert option.help and " ".join(option.help.split()) in help_text, option.dest


def test_a_step_that_cannot_start_is_an_error_after_the_table(run: Callable[..., Ran], tmp_path: Path) -> None:
    from allotment.local import Host

    if Host.probe().gpus:
        pytest.skip("this machine has GPUs: the step would start")
    file = tmp_path / "gpu.py"
    file.write_text(
        "from allotment import resources\n\n@resources(memory=128)\ndef a():\n    return 1\n\n@resources(gpu=1)\ndef b():\n    return 2\n"
    )
    ran = run(file)
    assert ran.steps == [("a", 1, "succeeded")]
    assert "allotment run: b: could not start" in ran.err
    assert str(ran.error).startswith("step 'b': gpu=1 from @resources asks for 1 GPU(s) but this machine has none")
    assert ran.out.splitlines()[1].startswith("a ")
