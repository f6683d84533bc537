"""Fixtures of the local executor's tests: this machine, probed once, with its own claim directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from allotment.local import Host


@pytest.fixture(scope="session")
def probed() -> Host:
    return Host.probe()


@pytest.fixture
def host(probed: Host, tmp_path: Path) -> Host:
    """This machine, claiming cores and GPUs in a directory of this test only (other test runs on
    the machine, someone else's included, must not make this one's steps share cores)."""
    return dataclasses.replace(probed, lock_dir=tmp_path / "claims")


@pytest.fixture
def cgroup_host(host: Host) -> Host:
    if host.memory_cgroup is None:
        pytest.skip(f"no writable memory cgroup on this machine: {host.cgroup_note}")
    return host
