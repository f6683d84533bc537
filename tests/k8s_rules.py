"""Kubernetes rules the OpenAPI schema cannot express, checked on a Pod manifest (a dict).

- every request and limit is a valid quantity (:mod:`allotment.quantity`);
- a request is at most its limit;
- extended resources (``nvidia.com/gpu``, ...) are whole numbers and requests equal limits;
- memory requests equal memory limits (allotment's rule: no memory overcommit);
- a memory-backed ``emptyDir`` has a ``sizeLimit`` no larger than the memory limit of each
  container that mounts it (its pages are charged to that memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from allotment.quantity import QuantityError, parse_quantity

__all__ = ["pod_problems"]

_NATIVE = ("cpu", "memory", "ephemeral-storage", "storage")


def _quantity(value: object) -> Decimal | None:
    try:
        return parse_quantity(str(value))
    except QuantityError:
        return None


def pod_problems(pod: Mapping[str, Any], *, equal_memory: bool = True) -> list[str]:
    """Every broken rule in ``pod`` (a Pod manifest or a pod ``spec``), as sentences; empty when fine."""
    spec = pod.get("spec", pod)
    problems: list[str] = []
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        name = container.get("name", "?")
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
        for section, values in (("requests", requests), ("limits", limits)):
            for key, value in values.items():
                amount = _quantity(value)
                if amount is None:
                    problems.append(f"container {name}: {section}.{key}={value!r} is not a quantity")
                    continue
                parsed[section][key] = amount
                if key not in _NATIVE and not key.startswith("hugepages-") and amount != amount.to_integral_value():
                    problems.append(f"container {name}: {section}.{key}={value!r} is not a whole number")
        for key, request in parsed["requests"].items():
            limit = parsed["limits"].get(key)
            extended = key not in _NATIVE and not key.startswith("hugepages-")
            if extended and limit != request:
                problems.append(f"container {name}: {key} requests ({requests[key]}) != limits ({limits.get(key)})")
            elif key == "memory" and equal_memory and limit != request:
                problems.append(f"container {name}: memory requests ({requests[key]}) != limits ({limits.get(key)})")
            elif limit is not None and request > limit:
                problems.append(f"container {name}: {key} requests ({requests[key]}) > limits ({limits[key]})")
        for key in parsed["limits"]:
            if key not in _NATIVE and not key.startswith("hugepages-") and key not in parsed["requests"]:
                continue  # Kubernetes defaults the request of an extended resource to its limit
        memory_limit = parsed["limits"].get("memory")
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name"))
            if volume is None:
                problems.append(f"container {name}: mounts volume {mount.get('name')!r}, which the pod does not define")
                continue
            empty_dir = volume.get("emptyDir")
            if not isinstance(empty_dir, Mapping) or empty_dir.get("medium") != "Memory":
                continue
            size = empty_dir.get("sizeLimit")
            if size is None:
                problems.append(f"volume {volume['name']}: memory-backed emptyDir without sizeLimit")
                continue
            amount = _quantity(size)
            if amount is None:
                problems.append(f"volume {volume['name']}: sizeLimit={size!r} is not a quantity")
            elif memory_limit is None:
                problems.append(f"container {name}: mounts memory-backed {volume['name']} but has no memory limit")
            elif amount > memory_limit:
                problems.append(f"container {name}: {volume['name']} sizeLimit {size} > memory limit {limits['memory']}")
    return problems
