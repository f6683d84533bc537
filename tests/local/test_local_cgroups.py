"""Memory cgroups for steps: where one can be made (v1 or v2, from /proc/self/cgroup and
mountinfo), the child really inside it with its cap, the kernel's counters read, and no cgroup left."""

from __future__ import annotations

import os
from pathlib import Path

import local_steps as steps
import pytest
from allotment.local import Host, Limits, run_step
from allotment.local.cgroups import MemoryCgroupSupport, StepCgroup, _mounts, _own_cgroups, _under, find_memory_cgroup

MIB = 1024 * 1024

MOUNTINFO = """\
24 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
28 24 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
29 24 0:27 /kubepods /sys/fs/cgroup/cpu\\040set rw,relatime shared:14 - cgroup cgroup rw,cpuset
"""
CGROUP = "12:memory:/process_api/abc\n4:cpu,cpuacct:/\n0::/user.slice/session-1.scope\n"


def _fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(MOUNTINFO)
    (proc / "self" / "cgroup").write_text(CGROUP)
    return proc


def test_own_cgroups_and_mounts_are_parsed(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    assert _own_cgroups(proc) == {"memory": "/process_api/abc", "": "/user.slice/session-1.scope"}
    mounts = _mounts(proc)
    assert ("cgroup2", "/", "/sys/fs/cgroup/unified", "rw,nsdelegate") in mounts
    assert ("cgroup", "/", "/sys/fs/cgroup/memory", "rw,memory") in mounts
    assert ("cgroup", "/kubepods", "/sys/fs/cgroup/cpu set", "rw,cpuset") in mounts  # \040 is a space


def test_a_cgroup_path_maps_into_a_mount_of_part_of_the_hierarchy() -> None:
    assert _under("/sys/fs/cgroup/memory", "/", "/process_api/abc") == Path("/sys/fs/cgroup/memory/process_api/abc")
    assert _under("/sys/fs/cgroup/memory", "/kubepods", "/kubepods/pod1") == Path("/sys/fs/cgroup/memory/pod1")
    assert _under("/sys/fs/cgroup/memory", "/kubepods", "/system.slice") is None


def test_nothing_writable_gives_no_cgroup_and_says_why(tmp_path: Path) -> None:
    support, note = find_memory_cgroup(_fake_proc(tmp_path), environ={})
    assert support is None
    assert note == (  # the fake mounts do not exist on this machine
        "this process's cgroup v2 directory is not under /sys/fs/cgroup/unified; "
        "this process's cgroup v1 memory directory is not under /sys/fs/cgroup/memory"
    )


def test_a_named_directory_that_is_not_a_cgroup_is_refused(tmp_path: Path) -> None:
    support, note = find_memory_cgroup(environ={"ALLOTMENT_LOCAL_CGROUP": str(tmp_path)})
    assert support is None
    assert note == f"ALLOTMENT_LOCAL_CGROUP={tmp_path}: cannot make a memory cgroup there"


def test_cgroup_v2_counters_are_read_from_memory_events_and_memory_peak(tmp_path: Path) -> None:
    # A plain directory standing in for cgroup2 files (this machine's cgroup2 has no memory controller).
    cgroup = StepCgroup(MemoryCgroupSupport(2, tmp_path), "train/step 1", 256 * MIB)
    assert cgroup.path.name.startswith(f"allotment-train-step-1-{os.getpid()}-")
    assert (cgroup.path / "memory.max").read_text() == str(256 * MIB)
    assert (cgroup.path / "memory.swap.max").read_text() == "0"
    assert (cgroup.path / "memory.oom.group").read_text() == "1"
    (cgroup.path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 2\noom_group_kill 1\n")
    assert cgroup.peak_bytes() is None  # before Linux 5.19 there is no memory.peak: the runner samples
    (cgroup.path / "memory.peak").write_text("268435456\n")
    assert (cgroup.oom_kills(), cgroup.peak_bytes(), cgroup.fail_count()) == (2, 256 * MIB, None)


def test_this_machine_finds_a_memory_cgroup_where_it_can_make_one(probed: Host) -> None:
    if probed.memory_cgroup is None:
        pytest.skip(f"no writable memory cgroup on this machine: {probed.cgroup_note}")
    assert probed.memory_cgroup.parent.is_dir()
    assert probed.cgroup_note.startswith(f"cgroup v{probed.memory_cgroup.version} under ")


def test_the_child_runs_inside_its_own_cgroup_with_the_asked_cap(cgroup_host: Host) -> None:
    result = run_step(Limits("inside", memory_mib=300), steps.own_memory_cgroup, host=cgroup_host, memory_cap="cgroup")
    path, cap = result.get()
    assert f"/allotment-inside-{os.getpid()}-" in path
    assert cap == 300 * MIB
    assert not (cgroup_host.memory_cgroup.parent / Path(path).name).exists()  # type: ignore[union-attr]
