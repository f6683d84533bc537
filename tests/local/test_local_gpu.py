"""GPUs on the local backend: found without a GPU library, handed out as CUDA_VISIBLE_DEVICES,
checked against gpu_type, claimed so that steps running at once get different GPUs, and (on a
machine with NVIDIA GPUs) compared with what nvidia-smi and CUDA itself report."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import local_steps as steps
import pytest
from allotment import AllotmentError
from allotment.local import Gpu, Host, Limits, place, run_step
from allotment.local.host import find_gpus
from allotment.local.placement import gpu_model_matches

UUIDS = ["GPU-11111111-2222-3333-4444-555555555555", "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "GPU-99999999-8888-7777-6666-555555555555"]


def _driver_tree(tmp_path: Path, gpus: list[dict[str, str]], nodes: list[int]) -> tuple[Path, Path]:
    """A /proc/driver/nvidia/gpus and a /dev as the NVIDIA driver lays them out."""
    proc, dev = tmp_path / "proc", tmp_path / "dev"
    dev.mkdir()
    for n in nodes:
        (dev / f"nvidia{n}").touch()
    (dev / "nvidiactl").touch()
    for info in gpus:
        d = proc / "driver" / "nvidia" / "gpus" / info["bus"]
        d.mkdir(parents=True)
        lines = [f"Model: \t\t {info['model']}", "IRQ:   \t\t 42", f"GPU UUID: \t {info['uuid']}", f"Bus Location: \t {info['bus']}"]
        lines += [f"Device Minor: \t {info['minor']}", f"GPU Excluded:\t {info.get('excluded', 'No')}"]
        (d / "information").write_text("\n".join(lines) + "\n")
    return proc, dev


def _gpu(bus: str, minor: int, uuid: str, model: str = "NVIDIA H100 80GB HBM3", excluded: str = "No") -> dict[str, str]:
    return {"bus": bus, "minor": str(minor), "uuid": uuid, "model": model, "excluded": excluded}


# -- finding GPUs --------------------------------------------------------------------------------


def test_gpus_are_read_from_the_driver_in_pci_bus_order_with_models_and_uuids(tmp_path: Path) -> None:
    proc, dev = _driver_tree(tmp_path, [_gpu("0000:c1:00.0", 1, UUIDS[1]), _gpu("0000:3b:00.0", 0, UUIDS[0])], [0, 1])
    gpus, source = find_gpus({}, proc, dev)
    assert source == "/proc/driver/nvidia/gpus"
    assert gpus == (
        Gpu(UUIDS[0], "NVIDIA H100 80GB HBM3", "0000:3b:00.0", UUIDS[0]),
        Gpu(UUIDS[1], "NVIDIA H100 80GB HBM3", "0000:c1:00.0", UUIDS[1]),
    )


def test_excluded_gpus_and_gpus_without_a_device_node_are_left_out(tmp_path: Path) -> None:
    listed = [_gpu("0000:01:00.0", 0, UUIDS[0]), _gpu("0000:02:00.0", 1, UUIDS[1], excluded="Yes"), _gpu("0000:03:00.0", 2, UUIDS[2])]
    proc, dev = _driver_tree(tmp_path, listed, [0, 1])  # a container exposing minors 0 and 1 only
    gpus, _ = find_gpus({}, proc, dev)
    assert [g.ident for g in gpus] == [UUIDS[0]]


def test_unknown_uuids_fall_back_to_indices_in_pci_bus_order(tmp_path: Path) -> None:
    unknown = "GPU-????????-????-????-????-????????????"
    proc, dev = _driver_tree(tmp_path, [_gpu("0000:01:00.0", 0, unknown), _gpu("0000:02:00.0", 1, UUIDS[1])], [0, 1])
    gpus, _ = find_gpus({}, proc, dev)
    assert [g.ident for g in gpus] == ["0", "1"]


def test_device_nodes_alone_give_indices(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (dev / name).touch()
    gpus, source = find_gpus({}, tmp_path / "proc", dev)
    assert ([g.ident for g in gpus], source) == (["0", "1"], "/dev/nvidia<N>")


def test_an_inherited_cuda_visible_devices_is_all_there_is(tmp_path: Path) -> None:
    proc, dev = _driver_tree(tmp_path, [_gpu("0000:01:00.0", 0, UUIDS[0]), _gpu("0000:02:00.0", 1, UUIDS[1])], [0, 1])
    gpus, source = find_gpus({"CUDA_VISIBLE_DEVICES": f"{UUIDS[1]}"}, proc, dev)
    assert [(g.ident, g.model) for g in gpus] == [(UUIDS[1], "NVIDIA H100 80GB HBM3")]
    assert source.startswith("CUDA_VISIBLE_DEVICES=")
    assert [g.ident for g in find_gpus({"CUDA_VISIBLE_DEVICES": "1,0"}, proc, dev)[0]] == ["1", "0"]
    assert find_gpus({"CUDA_VISIBLE_DEVICES": ""}, proc, dev)[0] == ()
    assert find_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, proc, dev)[0] == ()


@pytest.mark.parametrize(
    ("gpu_type", "model", "matches"),
    [
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("A100-80GB", "NVIDIA A100-SXM4-80GB", True),
        ("A100-80GB", "NVIDIA A100-SXM4-40GB", False),
        ("L4", "NVIDIA L4", True),
        ("L4", "NVIDIA L40S", False),
        ("h200", "NVIDIA H200", True),
    ],
)
def test_gpu_type_matches_whole_tokens_of_the_model(gpu_type: str, model: str, matches: bool) -> None:
    assert gpu_model_matches(gpu_type, model) is matches


# -- handing GPUs out ----------------------------------------------------------------------------


@pytest.fixture
def two_gpus(host: Host) -> Host:
    gpus = (Gpu(UUIDS[0], "NVIDIA H100 80GB HBM3", uuid=UUIDS[0]), Gpu(UUIDS[1], "NVIDIA H100 80GB HBM3", uuid=UUIDS[1]))
    return dataclasses.replace(host, gpus=gpus, gpu_source="test")


def test_steps_running_at_once_get_different_gpus_then_share_with_a_note(two_gpus: Host) -> None:
    with place(Limits("a", gpu=1), two_gpus) as a, place(Limits("b", gpu=1), two_gpus) as b, place(Limits("c", gpu=1), two_gpus) as c:
        assert (a.env["CUDA_VISIBLE_DEVICES"], b.env["CUDA_VISIBLE_DEVICES"]) == (UUIDS[0], UUIDS[1])
        assert "CUDA_DEVICE_ORDER" not in a.env  # UUIDs need no ordering
        assert c.env["CUDA_VISIBLE_DEVICES"] == UUIDS[0]
        assert f"shares GPU(s) {UUIDS[0]} with other steps running now" in c.notes
    with place(Limits("d", gpu=2), two_gpus) as d:  # released: both free again
        assert d.env["CUDA_VISIBLE_DEVICES"] == ",".join(UUIDS[:2]) and not d.notes


def test_index_gpus_come_with_pci_bus_order(host: Host) -> None:
    indexed = dataclasses.replace(host, gpus=(Gpu("0"), Gpu("1")), gpu_source="/dev/nvidia<N>")
    with place(Limits("a", gpu=1), indexed) as a:
        assert dict(a.env) == {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_a_step_without_gpus_sees_none_and_is_told_so(two_gpus: Host) -> None:
    with place(Limits("cpu-only"), two_gpus) as p:
        assert p.env["CUDA_VISIBLE_DEVICES"] == ""
        assert "the machine's 2 GPU(s) are hidden (CUDA_VISIBLE_DEVICES='') since the step asks for none" in p.notes


def test_the_child_gets_cuda_visible_devices(two_gpus: Host) -> None:
    result = run_step(Limits("train", gpu=2), steps.affinity_and_gpus, host=two_gpus)
    assert result.value[1] == f"{UUIDS[0]},{UUIDS[1]}"


def test_too_few_gpus_of_the_asked_type_is_an_error_listing_the_models(two_gpus: Host) -> None:
    with pytest.raises(AllotmentError) as info:
        place(Limits("train", gpu=1, gpu_type="A100-80GB", sources={"gpu_type": "@resources"}), two_gpus)
    assert str(info.value) == (
        "step 'train': gpu_type='A100-80GB' from @resources with gpu=1 needs 1 GPU(s) of that type; this machine has 0 "
        "(its GPUs: NVIDIA H100 80GB HBM3); run it where such GPUs are (e.g. --with kubernetes), or use a gpu_type this machine has"
    )
    with place(Limits("train", gpu=2, gpu_type="H100"), two_gpus) as p:
        assert len(p.gpus) == 2


def test_a_mig_profile_or_another_vendor_cannot_be_honoured_locally(two_gpus: Host) -> None:
    with pytest.raises(AllotmentError, match=r"gpu_type='1g\.10gb' is a MIG profile, which the local backend cannot hand out"):
        place(Limits("train", gpu=1, gpu_type="1g.10gb"), two_gpus)
    with pytest.raises(AllotmentError, match="gpu_vendor='amd' cannot be honoured by the local backend"):
        place(Limits("train", gpu=1, gpu_vendor="amd"), two_gpus)


def test_gpu_type_cannot_be_checked_where_models_are_unknown(host: Host) -> None:
    indexed = dataclasses.replace(host, gpus=(Gpu("0"),), gpu_source="/dev/nvidia<N>")
    with pytest.raises(AllotmentError, match="cannot be checked here: the GPU models of this machine are unknown"):
        place(Limits("train", gpu=1, gpu_type="H100"), indexed)


# -- a real GPU machine ----------------------------------------------------------------------------


def _nvidia_smi() -> list[tuple[str, str]]:
    """(uuid, name) of every GPU as nvidia-smi lists them, in its (PCI bus) order."""
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no nvidia-smi on this machine (no NVIDIA GPU): the real-GPU check runs on a GPU machine")
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=uuid,name", "--format=csv,noheader"], check=False, capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0 or not out.stdout.strip():
        pytest.skip(f"nvidia-smi lists no GPU here (exit {out.returncode}: {out.stderr.strip()[:200]})")
    return [tuple(part.strip() for part in line.split(",", 1)) for line in out.stdout.strip().splitlines()]  # type: ignore[misc]


def test_real_gpus_match_nvidia_smi_and_cuda_in_the_child(host: Host) -> None:
    smi = _nvidia_smi()
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        pytest.skip("this process already has CUDA_VISIBLE_DEVICES; the check compares against every GPU nvidia-smi lists")
    assert [g.uuid for g in host.gpus] == [uuid for uuid, _ in smi]  # found without a GPU library, same order
    assert [g.model for g in host.gpus] == [name for _, name in smi]
    one = run_step(Limits("one", gpu=1), steps.cuda_devices, host=host)
    visible, count, uuids = one.get()
    assert (visible, count, uuids) == (smi[0][0], 1, [smi[0][0]])
    every = run_step(Limits("all", gpu=len(smi)), steps.cuda_devices, host=host)
    assert every.get() == (",".join(u for u, _ in smi), len(smi), [u for u, _ in smi])
    none = run_step(Limits("none"), steps.cuda_devices, host=host)
    assert none.get()[:2] == ("", 0)
    with pytest.raises(AllotmentError, match=f"asks for {len(smi) + 1} GPU\\(s\\) but this machine has only {len(smi)}"):
        run_step(Limits("too-many", gpu=len(smi) + 1), steps.cuda_devices, host=host)
