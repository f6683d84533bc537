"""Cross-target consistency and determinism (issue 9, scope 6), through the real renderers.

* ``allotment render --target kubernetes|airflow|argo|batch`` and ``explain -o json`` run in
  fresh processes on generated files (random specs, a fixed seed): two processes with different
  ``PYTHONHASHSEED`` print identical bytes for every target, and the Kubernetes container, the
  KubernetesPodOperator pod, the Argo template, the Batch request and ``explain`` carry the same
  resolved numbers, field by field.
* In process, a property test over random specs compares the numbers of the Kubernetes render,
  the Argo template, the Batch request on EC2 and EKS, and ``explain``; a field the user set never
  disappears without an error, a note or a warning.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from allotment import AllotmentError
from allotment.errors import AllotmentWarning
from allotment.settings import Settings
from cross_targets import (
    argo_numbers,
    batch_numbers,
    dag_file,
    expected_gpu_key,
    explain_numbers,
    flow_file,
    hera_file,
    kpo_numbers,
    kubernetes_numbers,
    random_spec,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
ALLOTMENT = Path(sys.executable).parent / "allotment"
STEPS = 10


def _environment(seed: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOTMENT_", "AIRFLOW__ALLOTMENT__"))}
    (ROOT / ".airflow").mkdir(exist_ok=True)
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
    return env | {"PYTHONHASHSEED": seed}


def _run(argv: list[str], cwd: Path, seed: str) -> str:
    done = subprocess.run([str(ALLOTMENT), *argv], cwd=cwd, env=_environment(seed), capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("cross")
    rng = random.Random(20269)  # fixed: the same specs every run
    specs = {f"s{i}": random_spec(rng) for i in range(STEPS)}
    (folder / "flow.py").write_text(flow_file(specs))
    (folder / "dag.py").write_text(dag_file(specs))
    (folder / "wf.py").write_text(hera_file(specs))
    return folder, specs


RENDERS: dict[str, list[str]] = {
    "kubernetes": ["render", "flow.py", "--target", "kubernetes", "--backend", "kubernetes"],
    "airflow": ["render", "dag.py", "--target", "airflow"],
    "argo": ["render", "wf.py", "--target", "argo"],
    "batch": ["render", "flow.py", "--target", "batch", "--backend", "batch"],
}


@pytest.fixture(scope="module")
def rendered(generated: tuple[Path, dict[str, dict[str, Any]]]) -> dict[str, str]:
    folder, _ = generated
    out = {target: _run(argv, folder, "0") for target, argv in RENDERS.items()}
    out["batch-eks"] = _run([*RENDERS["batch"], "--platform", "eks"], folder, "0")
    out["explain"] = _run(["explain", "flow.py", "--backend", "kubernetes", "-o", "json"], folder, "0")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(RENDERS))
def test_two_processes_with_different_hash_seeds_render_the_same_bytes(
    generated: tuple[Path, dict[str, dict[str, Any]]], rendered: dict[str, str], target: str
) -> None:
    folder, _ = generated
    again = _run(RENDERS[target], folder, "12345")
    assert again == rendered[target]
    assert again.count("\n") > STEPS  # something was rendered


@pytest.mark.slow
def test_every_target_carries_the_same_numbers(generated: tuple[Path, dict[str, dict[str, Any]]], rendered: dict[str, str]) -> None:
    _, specs = generated
    explained = {item["step"]: explain_numbers(item) for item in json.loads(rendered["explain"])}
    kubernetes = {d["step"]: kubernetes_numbers(d) for d in yaml.safe_load_all(rendered["kubernetes"])}
    kpo = {d["task_id"]: kpo_numbers(d) for d in yaml.safe_load_all(rendered["airflow"])}
    (workflow,) = yaml.safe_load_all(rendered["argo"])
    argo = {name: argo_numbers(workflow, name) for name in specs}
    ec2 = {d["step"]: batch_numbers(d) for d in yaml.safe_load_all(rendered["batch"])}
    eks = {d["step"]: batch_numbers(d) for d in yaml.safe_load_all(rendered["batch-eks"])}
    assert set(explained) == set(kubernetes) == set(kpo) == set(argo) == set(ec2) == set(eks) == set(specs)
    for name in specs:
        check_numbers(explained[name], kubernetes[name], argo[name], ec2[name], eks[name], kpo=kpo[name])


def check_numbers(
    explained: Mapping[str, Any],
    kubernetes: Mapping[str, Any],
    argo: Mapping[str, Any],
    ec2: Mapping[str, Any],
    eks: Mapping[str, Any],
    *,
    kpo: Mapping[str, Any] | None = None,
) -> None:
    """The resolved numbers (``explain``) against every target's, field by field."""
    pod_fields = ("cpu", "memory", "gpu", "disk", "shared_memory")
    want = {f: explained[f] for f in pod_fields if explained.get(f)}
    for got in (kubernetes, argo, *([kpo] if kpo is not None else [])):
        assert {f: got[f] for f in pod_fields if f in got} == want, (got, explained)
        if explained.get("gpu"):
            assert got["gpu_key"] == expected_gpu_key(explained)
        assert got.get("node_selector") == kubernetes.get("node_selector")
        if explained.get("gpu_type"):
            assert got["node_selector"], got  # the GPU type selects nodes
    # AWS Batch on EC2: whole vCPUs (rounded up, with a note), MiB as resolved, GPUs.
    assert ec2["vcpu"] == math.ceil(explained["cpu"] / 1000)
    if explained["cpu"] % 1000:
        assert any(note.startswith(f"cpu {kubernetes_cpu(explained['cpu'])} rounded up to VCPU") for note in ec2["notes"])
    assert ec2["memory"] == max(explained["memory"], 4)
    assert ec2.get("gpu", 0) == (explained.get("gpu") or 0)
    assert ec2.get("shared_memory") == explained.get("shared_memory")
    if explained.get("disk"):  # EC2 disks are the launch template's: an explicit warning, never silence
        assert any("disk=" in w and "is not applied on AWS Batch EC2" in w for w in ec2["warnings"]), ec2["warnings"]
    if explained.get("gpu_type"):
        assert any(note.startswith(f"gpu_type {explained['gpu_type']!r}") for note in ec2["notes"])
    # EKS-backed Batch: cpu in quarters of a core (rounded up), everything else as resolved.
    assert eks["cpu"] == math.ceil(explained["cpu"] / 250) * 250
    assert {f: eks[f] for f in ("memory", "gpu", "disk", "shared_memory") if f in eks} == {f: want[f] for f in want if f != "cpu"}
    # Memory that grows after OOM kills: Argo's retry strategy reads the factor and the last
    # attempt's end; explain says it.
    factor = explained.get("retry_memory_factor")
    if factor and factor != 1:
        assert "retry" in argo and f"* {factor:g} ** (lastRetry.status == 'Failed'" in argo["memory_expression"]
        assert explained["effects"]["retry_memory_factor"] == f"memory x{factor} after each OOM kill"
    else:
        assert "retry" not in argo


def kubernetes_cpu(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


# -- in process: a property over random specs -----------------------------------------------------

_DIR = Path(tempfile.mkdtemp(prefix="allotment-cross-"))
_COUNTER = itertools.count()


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    return random_spec(random.Random(draw(st.integers(0, 2**32))))


def _render(target: str, path: Path, options: dict[str, Any] | None = None, backend: str | None = None) -> list[dict[str, Any]]:
    import warnings

    from allotment.faces import load_target
    from allotment.settings import load_settings, using_settings

    current = load_settings(cli={"backend": backend}, env={}) if backend else Settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AllotmentWarning)
        with using_settings(current):
            return load_target(target)([path], current, {"namespace": None, "platform": None, **(options or {})})


@given(specs())
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_numbers_agree_across_targets_in_process(spec: dict[str, Any]) -> None:
    from allotment.discover import iter_steps
    from allotment.explain import explain
    from allotment.settings import load_settings

    number = next(_COUNTER)
    flow = _DIR / f"flow{number}.py"
    flow.write_text(flow_file({"s": spec}))
    hera = _DIR / f"wf{number}.py"
    hera.write_text(hera_file({"s": spec}))
    kube_settings = load_settings(cli={"backend": "kubernetes"}, env={})
    (step,) = iter_steps([flow])
    explained_item = explain(
        kube_settings.resolve(step.spec, step=step.name, backend="kubernetes"), kube_settings.profile, file=flow.as_posix()
    )
    explained = explain_numbers(explained_item.as_dict())
    (kube_doc,) = _render("kubernetes", flow, backend="kubernetes")
    (workflow,) = _render("argo", hera)
    (ec2_doc,) = _render("batch", flow, backend="batch")
    (eks_doc,) = _render("batch", flow, {"platform": "eks"}, backend="batch")
    # Nothing the user set disappears silently: each field is resolved (explain), and check_numbers
    # finds each resolved field applied, noted or warned about on every target.
    assert set(spec) <= set(explained)
    check_numbers(explained, kubernetes_numbers(kube_doc), argo_numbers(workflow, "s"), batch_numbers(ec2_doc), batch_numbers(eks_doc))


@pytest.mark.parametrize("target", ["kubernetes", "batch"])
def test_render_says_that_memory_grows_on_retries(target: str) -> None:
    flow = _DIR / f"retry-{target}.py"
    flow.write_text(flow_file({"s": {"memory": "1Gi", "retry_memory_factor": 1.5}}))
    (document,) = _render(target, flow, backend=target)
    assert "1.5" in json.dumps(document)


def test_a_spec_a_target_cannot_carry_is_an_error_there() -> None:
    """The other half of "nothing disappears": GPUs on Fargate are an error, not dropped."""
    flow = _DIR / "fargate.py"
    flow.write_text(flow_file({"s": {"gpu": 1}}))
    with pytest.raises(AllotmentError, match="Fargate"):
        _render("batch", flow, {"platform": "fargate"}, backend="batch")
