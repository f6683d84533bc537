"""Fuzz: the CLI, ``allotment.cli.main([...])``, on generated Python files (decorated steps with
any literal keyword values, or no valid Python at all) with generated policy and profile files
and ``--with``/``--set`` specs. The exit status is 0 (and the output parses) or 1 with one
``allotment: error:`` message; nothing else escapes."""

from __future__ import annotations

import contextlib
import io
import json
import keyword
import warnings
from typing import Any

import yaml
from allotment.cli import main
from allotment.errors import MAX_MESSAGE, AllotmentWarning
from allotment.fields import FIELDS
from fuzz_support import examples, file_bytes, policies, profiles, spec_strings, texts, write_file
from hypothesis import event, given
from hypothesis import strategies as st

identifiers = st.one_of(
    st.sampled_from(["train", "prepare", "etl", "step_1"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n)),
)
literals = st.one_of(
    texts.map(repr),
    st.integers(-(2**70), 2**70).map(repr),
    st.floats().map(lambda f: f"float({str(f)!r})"),
    st.sampled_from(["True", "None", "10**5000", "-10**5000", "Decimal('1E+999999')", "Decimal('0.0010000000000000000000000000001')"]),
    st.sampled_from(["[]", "{}", "{'pool': 'gpu'}", "[{'key': 'x', 'operator': 'Exists'}]", "'burstable'", "'guaranteed'", "'fargate'"]),
)
_OPTIONS = {
    "resources": (),
    "kubernetes": ("qos", "namespace", "image", "node_selector", "tolerations"),
    "batch": ("queue", "job_definition", "platform"),
}


_GOOD: dict[str, list[object]] = {
    "cpu": [1, 2, 0.5, "500m", "2", 16, 0.25, "1500m"],
    "memory": [4096, "16Gi", "1G", 8192, "600Mi", "30Gi", 512],
    "gpu": [0, 1, 2, 8],
    "gpu_type": ["H100", "L4", "A100-80GB", "1g.10gb", "T4"],
    "gpu_vendor": ["nvidia", "amd", "example.com/fpga"],
    "disk": ["10Gi", 20480, "100Gi", "30Gi"],
    "shared_memory": ["1Gi", 512, "64Mi", "8Gi"],
    "retry_memory_factor": [1, 1.5, 2, 16],
    "qos": ["burstable", "guaranteed"],
    "namespace": ["ml", "default"],
    "image": ["python:3.12"],
    "node_selector": [{"pool": "gpu"}, {}],
    "tolerations": [[{"key": "x", "operator": "Exists"}]],
    "queue": ["q"],
    "job_definition": ["trainer"],
    "platform": ["ec2", "fargate", "eks"],
}
"""Values each keyword takes, so most generated steps get as far as rendering."""


@st.composite
def decorator_lines(draw: st.DrawFn, junk: bool) -> str:
    decorator = draw(st.sampled_from(sorted(_OPTIONS)))
    known = st.sampled_from([*FIELDS, *_OPTIONS[decorator]])
    names = draw(st.lists(st.one_of(known, identifiers) if junk else known, max_size=4, unique=True))
    values = []
    for name in names:
        good = _GOOD.get(name)
        hostile = (junk and draw(st.integers(0, 3)) == 0) or good is None
        values.append(f"{name}={draw(literals) if hostile else repr(draw(st.sampled_from(good or [None])))}")
    return f"@{decorator}(" + ", ".join(values) + ")"


@st.composite
def python_files(draw: st.DrawFn, junk: bool) -> str:
    lines = ["from decimal import Decimal", "from allotment import batch, kubernetes, resources", ""]
    for name in draw(st.lists(identifiers, min_size=1, max_size=3)):
        lines += draw(st.lists(decorator_lines(junk), max_size=3))
        lines += [f"def {name}() -> None: ...", ""]
    if junk and draw(st.integers(0, 4)) == 0:  # now and then, not Python at all
        lines.append(draw(st.sampled_from(["def (:", "raise RuntimeError('boom')", "import nonexistent_module_xyz", "x = 1 +"])))
    return "\n".join(lines)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    junk = draw(st.booleans())  # half the inputs hostile throughout, half well-formed (they reach the renderers)
    path = str(write_file(".py", draw(python_files(junk)).encode()))
    command = draw(st.sampled_from(["explain", "render"]))
    argv = [command, path]
    if command == "render":
        target = draw(st.sampled_from(["kubernetes", "batch"]))
        argv += ["--target", target, "-o", draw(st.sampled_from(["yaml", "json"]))]
        if target == "batch" and draw(st.booleans()):
            argv.append(f"--platform={draw(st.sampled_from(['ec2', 'fargate', 'eks']))}")
    else:
        argv += ["-o", draw(st.sampled_from(["table", "json"]))]
    good = {
        "--with": st.sampled_from(["kubernetes", "batch", "memory=32Gi", "kubernetes:cpu=8", "train:gpu=2", "train.batch:disk=50Gi"]),
        "--set": st.sampled_from(["cpu=1", "train:memory=2048", "memory=8Gi", "batch:gpu=0"]),
    }
    for option in ("--with", "--set"):
        count = draw(st.sampled_from([0, 0, 0, 1, 2]))
        argv += [f"{option}={draw(st.one_of(good[option], spec_strings) if junk else good[option])}" for _ in range(count)]
    if draw(st.booleans()):
        argv.append(f"--backend={draw(st.sampled_from(['kubernetes', 'batch', 'local']))}")
    policy = draw(st.integers(0, 3))
    if policy == 1 and junk:
        argv.append(f"--policy={write_file(*draw(file_bytes(policies)))}")
    elif policy == 2:
        argv.append(f"--policy={write_file('.yaml', yaml.safe_dump(draw(policies)).encode())}")
    if draw(st.booleans()):
        builtin = st.sampled_from(["nvidia-gfd", "gke", "eks-karpenter", "nope"])
        profile = draw(st.one_of(builtin, file_bytes(profiles).map(lambda f: str(write_file(*f)))) if junk else builtin)
        argv.append(f"--profile={profile}")
    return argv


def run_cli(argv: list[str]) -> tuple[int, str, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        code = main(argv)
    for warning in caught:  # the only warnings allotment gives are its own, about values a backend leaves out
        assert issubclass(warning.category, AllotmentWarning), warning
    return code, out.getvalue(), err.getvalue(), [str(w.message) for w in caught]


@given(command_lines())
@examples(150)
def test_cli_on_generated_files(argv: list[str]) -> None:
    code, out, err, _ = run_cli(argv)
    assert code in (0, 1), (code, err)
    event(f"exit {code}")
    lines = err.splitlines()
    # Every line is allotment's own (notes, warnings, errors, the closing summary), never a traceback.
    assert err.endswith("\n") and all(line.startswith(("allotment: ", "    ")) for line in lines), err  # "    ": a caret pointer
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith("allotment: error: ")]
    assert all(len(line) <= MAX_MESSAGE + 40 for line in errors), err
    if code == 1:
        assert errors, err  # a failure says why
        return
    assert not errors, err
    output = argv[argv.index("-o") + 1]
    parsed: Any = json.loads(out) if output == "json" else (list(yaml.safe_load_all(out)) if output == "yaml" else out)
    assert parsed is not None or out.strip() == ""
