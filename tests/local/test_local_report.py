"""Issue 11, item 2: the report, printed per step and written as JSON with a documented schema
(spec, measurements, host) for a later recommender; the hint rule is stated and applied."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import local_steps as steps
import pytest
import report_cases as cases
from allotment.local import Host, Limits, run_step
from allotment.local.hints import hint_for
from allotment.local.report import SCHEMA_ID, format_table, load_schema, report_document, write_report

MIB = 1024 * 1024


def test_table_matches_the_issue_layout_with_the_stated_hint_rule() -> None:
    assert format_table(cases.example()[:2]) == (
        "step        asked            used (peak)        cpu time  wall    hint\n"
        "prep        2 cpu, 6Gi       0.4 cpu, 310Mi     3.1 s     7.9 s   memory: 6Gi asked, 310Mi used — try 512Mi\n"
        # The issue's sketch shows "ok" here, but 3.1Gi is below 50% of 16Gi, so the stated rule hints.
        "train       4 cpu, 16Gi      1.9 cpu, 3.1Gi     41 s      22 s    memory: 16Gi asked, 3.1Gi used — try 4Gi\n"
    )


def test_table_has_a_row_per_try_and_widens_columns_for_long_cells() -> None:
    assert format_table(cases.example()[2:]) == (
        "step          asked            used (peak)        cpu time  wall    hint\n"
        "eval          1 cpu, 1Gi       0.9 cpu, 700Mi     0.9 s     1.0 s   memory: OOM-killed at 1Gi — ask for more\n"
        "eval (try 2)  1 cpu, 1536Mi    0.9 cpu, 1.2Gi     0.9 s     1.0 s   ok\n"
    )


@pytest.mark.parametrize(
    ("outcome", "asked", "peak_mib", "text", "suggested"),
    [
        ("succeeded", 6144, 310, "memory: 6Gi asked, 310Mi used — try 512Mi", 512),
        ("succeeded", 4096, 2047, "memory: 4Gi asked, 2.0Gi used — try 2560Mi", 2560),  # just below half
        ("succeeded", 4096, 2048, "ok", None),  # half is not below half
        ("succeeded", 512, 200, "memory: 512Mi asked, 200Mi used — try 256Mi", 256),  # 250Mi rounds up to 256Mi
        ("oom_killed", 1000, 1000, "memory: OOM-killed at 1000Mi — ask for more", 1536),
        ("failed", 4096, 10, "failed (ValueError)", None),
    ],
)
def test_hint_rule(outcome: str, asked: int, peak_mib: int, text: str, suggested: int | None) -> None:
    hint = hint_for(outcome, asked, peak_mib * MIB, "ValueError" if outcome == "failed" else None)
    assert (hint.text, hint.suggested_mib) == (text, suggested)


def test_no_hint_when_the_suggestion_would_not_be_below_the_ask() -> None:
    assert hint_for("succeeded", 256, 100 * MIB).text == "ok"  # 125Mi rounds up to 256Mi, the ask itself


def test_json_report_of_hand_built_results_validates_against_its_schema() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    document = report_document(cases.example(), cases.HOST)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["schema"] == SCHEMA_ID == schema["$id"]
    first = document["steps"][0]
    assert first["spec"]["memory_mib"] == 6144 and first["measurements"]["peak_memory_bytes"] == 310 * MIB
    assert first["hint"] == {"text": "memory: 6Gi asked, 310Mi used — try 512Mi", "field": "memory", "suggested_mib": 512}
    assert document["hint_rule"]["memory_under_use_below"] == 0.5


def test_json_report_of_real_runs_validates_against_its_schema(host: Host, tmp_path: Path) -> None:
    results = [
        run_step(Limits("ok", cpu_millicores=500, memory_mib=256), steps.touch_mib, (16,), host=host),
        run_step(Limits("bad", memory_mib=256), steps.fail_with_value_error, ("y",), host=host),
        run_step(Limits("hog", memory_mib=128), steps.touch_mib, (256,), host=host),
        run_step(Limits("quit"), steps.exit_hard, (2,), host=host),
    ]
    path = tmp_path / "report.json"
    write_report(path, results, host)
    document = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(load_schema()).validate(document)
    assert [s["outcome"] for s in document["steps"]] == ["succeeded", "failed", "oom_killed", "failed"]
    assert document["steps"][1]["error"]["type"] == "ValueError"
    assert "in _deeper" in document["steps"][1]["error"]["traceback"]
    assert document["steps"][2]["oom_killed"] is True
    assert document["steps"][2]["placement"]["memory_cap"]["limit_mib"] == 128
    assert document["host"]["cores"] == list(host.cores or [])


def test_json_report_is_byte_identical_across_processes(tmp_path: Path) -> None:
    outputs = []
    for n in range(2):
        path = tmp_path / f"r{n}.json"
        subprocess.run([sys.executable, str(Path(cases.__file__)), str(path)], check=True, cwd=tmp_path)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].endswith(b"\n") and "—".encode() in outputs[0]
