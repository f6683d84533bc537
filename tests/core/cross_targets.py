"""Helpers for the cross-target tests: random specs, the same spec written as a plain flow, an
Airflow DAG (``@task.kubernetes``, so a KubernetesPodOperator pod) and a Hera workflow, and the
numbers read back out of each renderer's output by one reader per target."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from allotment.fields import PARSERS
from allotment.quantity import parse_quantity
from allotment.targets import GPU_VENDOR_KEYS

MIB = 2**20

CPU = [0.25, 0.5, "500m", 1, "1500m", 2, "2", "3333m", 4, 16]
MEMORY = [512, "600Mi", 3000, "1G", "1500Mi", "3Gi", "16Gi", 16384]
GPU_TYPES = ["H100", "L4", "A100-80GB", "T4"]
DISK = ["10Gi", 20480, "1G"]
SHARED_MEMORY = ["64Mi", 256, "512Mi", "1Gi"]
FACTORS = [1.5, 2, 1.25]


def random_spec(rng: random.Random) -> dict[str, Any]:
    """A spec every target takes (AWS Batch EC2 and EKS included): NVIDIA whole GPUs, shared
    memory within memory."""
    spec: dict[str, Any] = {}
    if rng.random() < 0.9:
        spec["cpu"] = rng.choice(CPU)
    if rng.random() < 0.9:
        spec["memory"] = rng.choice(MEMORY)
    if rng.random() < 0.5:
        spec["gpu"] = rng.choice([1, 2, 8])
        if rng.random() < 0.6:
            spec["gpu_type"] = rng.choice(GPU_TYPES)
        if rng.random() < 0.2:
            spec["gpu_vendor"] = "nvidia"
    if rng.random() < 0.4:
        spec["disk"] = rng.choice(DISK)
    memory = PARSERS["memory"](spec.get("memory", 4096))
    if rng.random() < 0.4:
        fitting = [s for s in SHARED_MEMORY if PARSERS["shared_memory"](s) <= memory]  # type: ignore[operator]
        spec["shared_memory"] = rng.choice(fitting)
    if rng.random() < 0.3:
        spec["retry_memory_factor"] = rng.choice(FACTORS)
    return spec


def _kwargs(spec: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in spec.items())


def flow_file(specs: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["from allotment import resources", ""]
    for name, spec in specs.items():
        lines += [f"@resources({_kwargs(spec)})", f"def {name}() -> None: ...", ""]
    return "\n".join(lines)


def dag_file(specs: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        "import pendulum",
        "from airflow.sdk import dag, task",
        "from allotment import resources",
        "",
        '@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)',
        "def generated() -> None:",
    ]
    for name, spec in specs.items():
        lines += [
            f"    @resources({_kwargs(spec)})",
            '    @task.kubernetes(image="python:3.12-slim", namespace="ml", do_xcom_push=False)',
            f"    def {name}() -> None: ...",
            f"    {name}()",
        ]
    return "\n".join([*lines, "", "generated()", ""])


def hera_file(specs: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["from allotment import resources", "from hera.workflows import Steps, Workflow, script", ""]
    for name, spec in specs.items():
        lines += [f"@resources({_kwargs(spec)})", '@script(image="python:3.12-slim")', f"def {name}() -> None: ...", ""]
    lines += ['with Workflow(generate_name="generated-", entrypoint="steps") as generated:', '    with Steps(name="steps"):']
    lines += [f"        {name}()" for name in specs]
    return "\n".join([*lines, ""])


# -- reading numbers back ----------------------------------------------------------------------


def _millicores(text: object) -> int:
    return int(parse_quantity(str(text)) * 1000)


def _mib(text: object) -> int:
    value = str(text)
    return int(value) if value.isdigit() else math.ceil(parse_quantity(value) / MIB)


def pod_numbers(container: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, Any]:
    """Field -> value (held units) from a container's resources and its pod's volumes, node
    selector and tolerations (a Kubernetes render, a KPO pod, an Argo template)."""
    resources = container.get("resources") or {}
    requests, limits = dict(resources.get("requests") or {}), dict(resources.get("limits") or {})
    out: dict[str, Any] = {}
    if "cpu" in requests:
        out["cpu"] = _millicores(requests["cpu"])
    if "memory" in requests:
        assert limits.get("memory") == requests["memory"]  # no memory overcommit
        out["memory"] = _mib(requests["memory"])
    if "ephemeral-storage" in requests:
        assert limits.get("ephemeral-storage") == requests["ephemeral-storage"]
        out["disk"] = _mib(requests["ephemeral-storage"])
    gpu_keys = [k for k in requests if k not in ("cpu", "memory", "ephemeral-storage")]
    if gpu_keys:
        (key,) = gpu_keys
        assert limits[key] == requests[key]
        out["gpu"] = int(requests[key])
        out["gpu_key"] = key
        assert {"key": key, "operator": "Exists", "effect": "NoSchedule"} in [
            {k: t.get(k) for k in ("key", "operator", "effect")} for t in pod.get("tolerations") or []
        ]
    for volume in pod.get("volumes") or []:
        if volume.get("name") == "dshm":
            out["shared_memory"] = _mib(volume["emptyDir"]["sizeLimit"])
            assert {"name": "dshm", "mountPath": "/dev/shm"} in container.get("volumeMounts", [])
    if pod.get("nodeSelector"):
        out["node_selector"] = dict(pod["nodeSelector"])
    return out


def kubernetes_numbers(document: Mapping[str, Any]) -> dict[str, Any]:
    """From ``render --target kubernetes``'s document of one step."""
    return pod_numbers(document, document)


def kpo_numbers(document: Mapping[str, Any]) -> dict[str, Any]:
    """From ``render --target airflow``'s document of one task: its pod's ``base`` container."""
    spec = document["pod"]["spec"]
    (base,) = [c for c in spec["containers"] if c["name"] == "base"]
    return pod_numbers(base, spec)


def argo_numbers(workflow: Mapping[str, Any], template_name: str) -> dict[str, Any]:
    """From ``render --target argo``: a script template's compiled resources, and the submit
    parameters defaulting to them (which must agree)."""
    (template,) = [t for t in workflow["spec"]["templates"] if t["name"] == template_name]
    out = pod_numbers(template["script"], template)
    parameters = {p["name"]: p["value"] for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
    for field, read in (("cpu", _millicores), ("memory", _mib), ("disk", _mib), ("shared_memory", _mib), ("gpu", int)):
        name = f"{template_name}-{field.replace('_', '-')}"
        if name in parameters:
            assert read(parameters[name]) == out[field], (name, parameters[name], out)
    if "retryStrategy" in template:
        out["retry"] = template["retryStrategy"]
        out["memory_expression"] = template.get("podSpecPatch", "")
    return out


def batch_numbers(document: Mapping[str, Any]) -> dict[str, Any]:
    """From ``render --target batch``'s document of one step (EC2 or EKS)."""
    out: dict[str, Any] = {
        "platform": document["platform"],
        "notes": list(document.get("notes", [])),
        "warnings": list(document.get("warnings", [])),
    }
    submit = document["submitJob"]
    fields = document.get("jobDefinitionFields") or {}
    if document["platform"] == "eks":
        (container,) = submit["eksPropertiesOverride"]["podProperties"]["containers"]
        pod = {"volumes": fields.get("eksProperties", {}).get("podProperties", {}).get("volumes", [])}
        mounts = fields.get("eksProperties", {}).get("podProperties", {}).get("containers", [{}])[0].get("volumeMounts", [])
        numbers = pod_numbers(
            {**container, "volumeMounts": mounts},
            {
                **pod,
                "tolerations": [
                    {"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in container["resources"].get("requests", {})
                ],
            },
        )
        out.update(numbers)
        return out
    for requirement in submit["containerOverrides"]["resourceRequirements"]:
        out[{"VCPU": "vcpu", "MEMORY": "memory", "GPU": "gpu"}[requirement["type"]]] = Decimal(requirement["value"])
    size = fields.get("containerProperties", {}).get("linuxParameters", {}).get("sharedMemorySize")
    if size is not None:
        out["shared_memory"] = int(size)
    return out


def explain_numbers(item: Mapping[str, Any]) -> dict[str, Any]:
    """From ``explain -o json``: field -> resolved value, and field -> effect."""
    return {row["field"]: row["value"] for row in item["fields"]} | {"effects": {row["field"]: row["effect"] for row in item["fields"]}}


def expected_gpu_key(resolved: Mapping[str, Any]) -> str:
    vendor = resolved.get("gpu_vendor") or "nvidia"
    gpu_type = resolved.get("gpu_type")
    if gpu_type and "g." in str(gpu_type):
        return f"nvidia.com/mig-{gpu_type}"
    return GPU_VENDOR_KEYS.get(vendor, vendor)
