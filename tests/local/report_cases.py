"""Step results built by hand (no child process), for the report tests: the issue's example table."""

from __future__ import annotations

from pathlib import Path

from allotment.local import Host, Limits, Measurement, Placement, StepResult

MIB = 1024 * 1024

HOST = Host(cores=(0, 1), gpu_source="no NVIDIA GPU", cgroup_note="cgroup v1 under /sys/fs/cgroup/memory/x", hostname="box", kernel="6.1")


def result(
    step: str,
    cpu_millicores: int,
    memory_mib: int,
    cpu_time_s: float,
    wall_s: float,
    peak_bytes: int | None,
    outcome: str = "succeeded",
    try_number: int = 1,
) -> StepResult:
    limits = Limits(step, cpu_millicores=cpu_millicores, memory_mib=memory_mib, sources={"memory": "@resources"})
    placement = Placement(cores=(0,), gpus=(), env={"CUDA_VISIBLE_DEVICES": ""}, memory_method="cgroup-v1", memory_limit_mib=memory_mib)
    measurement = Measurement(
        wall_time_s=wall_s,
        user_time_s=cpu_time_s * 0.75,
        system_time_s=cpu_time_s * 0.25,
        peak_memory_bytes=peak_bytes,
        peak_method="cgroup-v1",
        sample_interval_s=None,
        max_rss_bytes=peak_bytes,
    )
    reason = None if outcome == "succeeded" else f"OOMKilled: the step used {memory_mib}Mi (its peak) of the {memory_mib}Mi asked"
    return StepResult(step, try_number, limits, placement, outcome, measurement, value=None, reason=reason)  # type: ignore[arg-type]


def example() -> list[StepResult]:
    """The issue's two rows (prep, train), an OOM-killed first try and its successful retry."""
    return [
        result("prep", 2000, 6144, 3.1, 7.9, 310 * MIB),
        result("train", 4000, 16384, 41, 22, int(3.1 * 1024 * MIB)),
        result("eval", 1000, 1024, 0.9, 1.0, 700 * MIB, outcome="oom_killed"),
        result("eval", 1000, 1536, 0.9, 1.0, 1200 * MIB, try_number=2),
    ]


if __name__ == "__main__":
    import sys

    from allotment.local.report import write_report

    write_report(Path(sys.argv[1]), example(), HOST)
