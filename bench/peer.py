"""The peer: Metaflow's ``argo-workflows create --only-json``, run from its own venv.

Metaflow needs an S3 datastore to create an Argo workflow (it uploads the code package), so
:class:`MetaflowPeer` starts a moto server on ``127.0.0.1`` (from this venv's ``moto[server]``,
a dev dependency), makes a bucket with dummy credentials, and points Metaflow at it. The venv
with Metaflow is the user's (``--metaflow-venv``): e.g.::

    python3 -m venv /work/bench-venvs/metaflow
    /work/bench-venvs/metaflow/bin/pip install --upgrade pip
    /work/bench-venvs/metaflow/bin/pip install 'metaflow==2.19.39' 'python-dateutil<3' boto3 kubernetes

It is never a dependency of allotment and never runs in CI.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import workloads
from harness import BenchError

BUCKET = "allotment-bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MetaflowPeer:
    """A moto S3 server on 127.0.0.1 and the environment Metaflow runs with, for a ``with`` block."""

    def __init__(self, venv: Path, folder: Path, base_env: Mapping[str, str], log: Callable[[str], None]) -> None:
        self.venv = venv
        self.folder = folder
        self.log = log
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        self.server_env = {**base_env, **credentials}
        self.env = {
            **credentials,
            "METAFLOW_HOME": str(folder / "home"),  # no user config of this machine leaks in
            "METAFLOW_USER": "bench",  # Metaflow refuses root
            "USER": "bench",
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
            "METAFLOW_S3_ENDPOINT_URL": self.endpoint,
            "METAFLOW_DEFAULT_METADATA": "local",
            "METAFLOW_KUBERNETES_NAMESPACE": "default",
        }
        self.server: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MetaflowPeer:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "home").mkdir(exist_ok=True)
        log = (self.folder / "moto.log").open("wb")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], env=self.server_env, stdout=log, stderr=log
        )
        import boto3

        deadline = time.monotonic() + 60
        while True:
            try:
                boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials()).create_bucket(Bucket=BUCKET)
                break
            except Exception as e:  # the server is not up yet
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise BenchError(f"the moto server on {self.endpoint} did not start: {e}") from e
                time.sleep(0.3)
        self.log(f"  moto S3 on {self.endpoint}, bucket {BUCKET}")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()

    def flow(self, steps: int) -> Path:
        """A flow file of ``steps`` steps (:func:`bench.workloads.metaflow_flow`)."""
        return workloads.write(self.folder / f"flow_{steps}", "bench_chain_flow.py", workloads.metaflow_flow(steps))

    def argv(self, flow: Path) -> list[str]:
        """Metaflow's command that prints the Argo WorkflowTemplate of ``flow`` as JSON."""
        return [str(self.venv / "bin" / "python"), str(flow), "--no-pylint", "argo-workflows", "create", "--only-json"]


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _first_json(text: str) -> Any:
    """The first JSON document in ``text`` (Metaflow prints its template after a few lines of log on stderr)."""
    start = text.find("{")
    if start < 0:
        raise BenchError("no JSON in Metaflow's output")
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    return value


def compare_resources(metaflow_out: str, allotment_json: str) -> list[str]:
    """A Markdown table: what step 0 (``cpu=4, memory=16384, gpu=1, shared_memory=8192``) asks
    Kubernetes for in Metaflow's template and in allotment's."""
    asked = workloads.spec(0)
    mf = _first_json(metaflow_out)
    ours = json.loads(allotment_json)[0]
    mf_t = next(t for t in mf["spec"]["templates"] if t["name"] == "start")
    our_t = next(t for t in ours["spec"]["templates"] if t["name"] == "step-00000")
    mf_c, our_c = mf_t["container"], our_t["script"]

    def get(d: Any, *path: str) -> str:
        for p in path:
            d = (d or {}).get(p) if isinstance(d, dict) else None
        return "—" if d in (None, {}, []) else f"`{d}`"

    def shm(template: Any) -> str:
        sizes = [
            v.get("emptyDir", {}).get("sizeLimit") for v in template.get("volumes") or [] if v.get("emptyDir", {}).get("medium") == "Memory"
        ]
        return f"`{sizes[0]}`" if sizes and sizes[0] else "—"

    def toleration(template: Any) -> str:
        keys = [t.get("key") for t in template.get("tolerations") or []]
        return ", ".join(f"`{k}`" for k in keys) or "—"

    memory_mf = mf_c.get("resources", {}).get("requests", {}).get("memory", "")
    note = ""
    if memory_mf.endswith("M") and not memory_mf.endswith("Mi"):
        mib = float(memory_mf[:-1]) * 1e6 / 2**20
        note = f" ({mib:.0f} MiB: {100 * (1 - mib / asked.memory):.1f}% less than asked)"
    rows = [
        ("cpu request", f"{asked.cpu:g} cores", get(mf_c, "resources", "requests", "cpu"), get(our_c, "resources", "requests", "cpu")),
        (
            "memory request",
            f"{asked.memory} MiB",
            get(mf_c, "resources", "requests", "memory") + note,
            get(our_c, "resources", "requests", "memory"),
        ),
        ("memory limit", f"{asked.memory} MiB", get(mf_c, "resources", "limits", "memory"), get(our_c, "resources", "limits", "memory")),
        (
            "GPU request / limit",
            str(asked.gpu),
            f"{get(mf_c, 'resources', 'requests', 'nvidia.com/gpu')} / {get(mf_c, 'resources', 'limits', 'nvidia.com/gpu')}",
            f"{get(our_c, 'resources', 'requests', 'nvidia.com/gpu')} / {get(our_c, 'resources', 'limits', 'nvidia.com/gpu')}",
        ),
        ("GPU toleration", "(DESIGN §3)", toleration(mf_t), toleration(our_t)),
        ("/dev/shm size", f"{asked.shared_memory} MiB", shm(mf_t), shm(our_t)),
        (
            "ephemeral-storage",
            "not asked",
            get(mf_c, "resources", "requests", "ephemeral-storage"),
            get(our_c, "resources", "requests", "ephemeral-storage"),
        ),
        (
            "submit-time parameters",
            "-",
            str(len((mf["spec"].get("arguments") or {}).get("parameters") or [])),
            str(len((ours["spec"].get("arguments") or {}).get("parameters") or [])),
        ),
    ]
    lines = [
        "What the first step (asked: `cpu=4, memory=16384, gpu=1, shared_memory=8192`) gets in each output:",
        "",
        "| field | asked | Metaflow | allotment |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    ]
    return lines
