"""The `allotment` command: explain and render on the example flow, errors without tracebacks,
and help for every option."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from allotment.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "tests" / "data" / "flows" / "train.py"
ALLOTMENT = Path(sys.executable).parent / "allotment"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALLOTMENT_WITH", "ALLOTMENT_SET", "ALLOTMENT_BACKEND", "ALLOTMENT_POLICY", "ALLOTMENT_PROFILE"):
        monkeypatch.delenv(var, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(text: str, step: str) -> dict[str, list[str]]:
    """field -> the cells of its row, from the block of ``step`` in explain's table."""
    block = text.split(f"step {step!r}", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[1:]:
        cells = [c for c in line.strip().split("  ") if c]
        if cells and not cells[0].startswith("note:"):
            rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


def test_explain_console_script_shows_each_field_value_and_source() -> None:
    done = subprocess.run([str(ALLOTMENT), "explain", str(FLOW), "--with", "kubernetes:cpu=8"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"step 'train' ({FLOW.as_posix()}): runs on kubernetes, pinned by @kubernetes" in out
    assert "note: qos guaranteed" in out
    train = table_rows(out, "train")
    assert train["field"][:3] == ["value", "source", "other sources"]
    assert train["cpu"][:3] == ["8", "with --with 'kubernetes:cpu=8'", "@resources 4; @kubernetes 2"]
    assert train["cpu"][3] == "requests.cpu 8, limits.cpu 8"
    assert train["memory"][:3] == ["32Gi", "@kubernetes", "@resources 16Gi"]
    assert train["gpu"][:2] == ["1", "@resources"]
    assert train["gpu_type"][:2] == ["H100", "@resources"]
    assert "nodeSelector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 (profile nvidia-gfd)" in train["gpu_type"][-1]
    assert train["shared_memory"][:2] == ["8Gi", "@resources"]
    assert train["shared_memory"][-1] == "emptyDir dshm (Memory, 8Gi) at /dev/shm"
    prepare = table_rows(out, "prepare")
    assert prepare["cpu"][:3] == ["8", "with --with 'kubernetes:cpu=8'", "@resources 2"]
    assert prepare["memory"][:2] == ["8Gi", "@resources"]
    report = table_rows(out, "report")
    assert report["cpu"][:2] == ["1", "@batch"]  # pinned to batch: the kubernetes with does not apply
    assert report["memory"][:2] == ["2Gi", "@batch"]


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", str(FLOW), "--with", "kubernetes:cpu=8", "-o", "json")
    assert code == 0
    assert err.splitlines()[-1] == "allotment: explain: 3 steps (2 kubernetes; 1 batch) in 1 file, 0 errors"
    steps = {item["step"]: item for item in json.loads(out)}
    assert list(steps) == ["prepare", "train", "report"]
    train = steps["train"]
    assert (train["backend"], train["pinned_by"], train["target"]) == ("kubernetes", "@kubernetes", "kubernetes")
    fields = {f["field"]: f for f in train["fields"]}
    assert {name: (f["value"], f["source"]) for name, f in fields.items()} == {
        "cpu": (8000, "with --with 'kubernetes:cpu=8'"),
        "memory": (32768, "@kubernetes"),
        "gpu": (1, "@resources"),
        "gpu_type": ("H100", "@resources"),
        "shared_memory": (8192, "@resources"),
    }
    assert fields["cpu"]["others"] == ["@resources 4", "@kubernetes 2"]
    assert train["notes"] == ["qos guaranteed"]
    assert steps["prepare"]["backend"] == "kubernetes"
    assert {f["field"]: f["source"] for f in steps["report"]["fields"]} == {"cpu": "@batch", "memory": "@batch"}


def test_explain_defaults_and_set(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", str(FLOW), "--set", "prepare:memory=1Gi", "-o", "json")
    assert code == 0
    prepare = next(item for item in json.loads(out) if item["step"] == "prepare")
    assert prepare["backend"] == "local"
    assert {f["field"]: (f["value"], f["source"]) for f in prepare["fields"]} == {
        "cpu": (2000, "@resources"),
        "memory": (1024, "set --set 'prepare:memory=1Gi'"),
    }


EXPECTED_TRAIN = {
    "step": "train",
    "file": FLOW.as_posix(),
    "resources": {
        "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
    },
    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
EXPECTED_PREPARE = {
    "step": "prepare",
    "file": FLOW.as_posix(),
    "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}},
}


def test_render_kubernetes_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", str(FLOW), "--target", "kubernetes")
    assert code == 0
    assert list(yaml.safe_load_all(out)) == [EXPECTED_PREPARE, EXPECTED_TRAIN]
    assert "step 'report' runs on batch (@batch); not rendered for kubernetes" in err
    assert out.count("\n---\n") == 1


def test_render_kubernetes_json_is_the_same_data(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", str(FLOW), "--target", "kubernetes", "-o", "json")
    assert code == 0
    assert json.loads(out) == [EXPECTED_PREPARE, EXPECTED_TRAIN]
    code, out_yaml, _ = run(capsys, "render", str(FLOW), "--target", "kubernetes", "-o", "yaml")
    assert list(yaml.safe_load_all(out_yaml)) == json.loads(out)


def test_render_with_profile_and_with(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "render", str(FLOW), "--target", "kubernetes", "--profile", "gke", "--with", "train:memory=64Gi", "-o", "json"
    )
    assert code == 0
    train = json.loads(out)[1]
    assert train["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert train["resources"]["limits"]["memory"] == "64Gi"


def test_render_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", str(FLOW.parent), "--target", "kubernetes", "-o", "json")
    assert code == 0
    assert [d["step"] for d in json.loads(out)] == ["prepare", "train"]


BAD_FLOW = """\
from allotment import resources


@resources(cpu=2, memory="16gb")
def train():
    pass
"""


def test_bad_spec_file_exits_1_with_the_error_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad_flow.py"
    bad.write_text(BAD_FLOW)
    for command in (["explain", str(bad)], ["render", str(bad), "--target", "kubernetes"]):
        done = subprocess.run([str(ALLOTMENT), *command], capture_output=True, text=True, check=False)
        assert done.returncode == 1
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        summary = {
            "explain": "allotment: explain: 0 steps in 1 file, 1 error",
            "render": "allotment: render --target kubernetes: 0 documents, 0 steps in 1 file, 1 error",
        }[command[0]]
        assert done.stderr == (
            f"allotment: error: {bad}: step 'train': memory='16gb' from @resources is not a quantity; "
            "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'\n"
            f"{summary}\n"
        )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("kubernetes:cpus=8", "allotment: error: from --with 'kubernetes:cpus=8' unknown key 'cpus'; keys are cpu, memory"),
        (
            "train.kubernets:cpu=1",
            "allotment: error: from --with 'train.kubernets:cpu=1' names step 'train.kubernets', which does not exist "
            "(did you mean step 'train' on the backend 'kubernetes': 'train.kubernetes'?)",
        ),
        (
            "trian:cpu=1",
            "allotment: error: from --with 'trian:cpu=1' names step 'trian', which does not exist (did you mean step 'train'?); "
            "steps are prepare, report, train",
        ),
        ("kubernetes:memory=16gb", "allotment: error: memory='16gb' from --with 'kubernetes:memory=16gb' is not a quantity"),
    ],
)
def test_bad_with_exits_1(capsys: pytest.CaptureFixture[str], spec: str, expected: str) -> None:
    code, out, err = run(capsys, "explain", str(FLOW), "--with", spec)
    assert code == 1
    assert out == ""
    assert err.startswith(expected)
    assert "Traceback" not in err


def test_bad_with_from_the_console_script(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ALLOTMENT), "render", str(FLOW), "--target", "kubernetes", "--with", "kubernetes:"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "has no key=value after ':'" in done.stderr
    assert "    kubernetes:\n               ^" in done.stderr


def test_policy_cap_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("caps: {memory: 16Gi}\n")
    code, _, err = run(capsys, "explain", str(FLOW), "--policy", str(policy))
    assert code == 1
    assert err == (
        f"allotment: error: {FLOW}: step 'train': memory='32Gi' from @kubernetes exceeds the cap memory <= 16Gi (caps in policy {policy}); "
        "ask for at most 16Gi, or have the policy changed\n"
        "allotment: explain: 3 steps (1 local; 1 batch) in 1 file, 1 error\n"
    )


def test_missing_path_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "explain", str(tmp_path / "nope.py"))
    assert code == 1
    assert (
        err == f"allotment: error: path='{tmp_path / 'nope.py'}' does not exist; name a .py file or a folder\nallotment: explain: 1 error\n"
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["render", str(FLOW)])
    assert info.value.code == 2
    assert "the following arguments are required: --target" in capsys.readouterr().err


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_exists() -> None:
    assert set(subcommands()) == {"explain", "render", "run"}


@pytest.mark.parametrize("command", ["explain", "render"])
def test_help_mentions_and_explains_every_option(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    parser = subcommands()[command]
    options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert {o for a in options for o in a.option_strings} >= {"--with", "--set", "--backend", "--policy", "--profile", "-o", "--output"}
    for action in options:
        assert action.help and len(action.help) > 10, action.dest
        for flag in action.option_strings:
            assert flag in help_text
        assert " ".join(action.help.split()) in help_text
        for choice in action.choices or ():
            assert str(choice) in help_text
    assert "ALLOTMENT_WITH" in help_text and "ALLOTMENT_POLICY" in help_text


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "explain" in out and "render" in out
    assert "memory, disk and shared_memory in MiB" in out


def test_a_file_that_fails_to_import_is_an_error_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("import does_not_exist_anywhere\n")
    result = subprocess.run([str(ALLOTMENT), "explain", str(bad)], check=False, capture_output=True, text=True)
    assert result.returncode == 1
    assert "failed to import: ModuleNotFoundError: No module named 'does_not_exist_anywhere'" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_shows_the_memory_ladder_per_step(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Issue 12, scope 4: the first try's memory, then one rung per OOM kill, up to the policy cap;
    other failures keep the memory. An Argo template says how Argo counts, under its cap."""
    flow = tmp_path / "grow_flow.py"
    flow.write_text(
        "from allotment import resources\n\n"
        "@resources(memory='16Gi', retry_memory_factor=1.5)\ndef train():\n    pass\n\n"
        "@resources(memory='1Gi')\ndef fixed():\n    pass\n"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("caps: {memory: 32Gi}\n")
    code, out, _ = run(capsys, "explain", str(flow), "--backend", "kubernetes", "--policy", str(policy))
    assert code == 0
    ladder = (
        "  note: memory on retries: try 1: 16Gi; after an OOM kill: 24Gi; then 32Gi (held by the cap 32Gi of policy "
        f"{policy}; 36Gi without it); any other failure retries with the memory it had\n"
    )
    assert ladder in out.split("step 'fixed'")[0]
    assert "memory on retries" not in out.split("step 'fixed'")[1]
    assert table_rows(out, "train")["retry_memory_factor"][-1] == "memory x1.5 after each OOM kill"
    code, out, _ = run(capsys, "explain", str(flow), "--backend", "kubernetes", "-o", "json")
    (train,) = [item for item in json.loads(out) if item["step"] == "train"]
    assert (
        "memory on retries: try 1: 16Gi; after an OOM kill: 24Gi; then 36Gi; then 54Gi; x1.5 after each further OOM kill, up to 1Ei; "
        "any other failure retries with the memory it had"
    ) in train["notes"]


def test_explain_of_an_argo_template_shows_argos_ladder_under_the_runtime_cap(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A submit parameter can set an Argo template's memory, so the runtime cap holds its growth, as
    in the template's podSpecPatch; and Argo counts OOM kills its own way (docs/design.md §7.3)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("caps: {memory: 256Gi}\nruntime: {caps: {memory: 64Gi}}\n")
    code, out, _ = run(capsys, "explain", str(ROOT / "workflows" / "nightly_training.py"), "--policy", str(policy), "-o", "json")
    assert code == 0
    (train,) = [item for item in json.loads(out) if item["step"] == "train"]
    (note,) = [n for n in train["notes"] if n.startswith("memory on retries: ")]
    held = f"held by the runtime cap 64Gi of policy {policy}; 96Gi without it"
    assert note.startswith(f"memory on retries: try 1: 64Gi; after an OOM kill: 64Gi ({held})")
    assert note.endswith("on Argo, which shows an attempt only the one before it, an attempt after any other failure counts every retry "
                         "before it but one as an OOM kill (x factor^(retries-1); docs/design.md §7.3)")  # fmt: skip
