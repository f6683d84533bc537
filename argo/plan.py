"""What one resourced Argo template gets, as plain data (no Hera here).

The values come from the core: :func:`allotment.k8s.kubernetes_parts` compiles the resolved
spec, :func:`allotment.k8s_user.yield_defaults` drops what only a default decided where the
template names that resource itself, and :func:`allotment.k8s.merge_parts` merges the rest
with what the template already had (a real conflict is an error). This module only decides
where each compiled value goes in an Argo template:

- the container's ``resources``, ``volumes``, ``volumeMounts``, ``nodeSelector`` and
  ``tolerations`` hold the **compiled values** (literal quantities: Argo's controller decodes
  ``resources`` and ``emptyDir.sizeLimit`` as Kubernetes quantities and rejects
  ``{{...}}`` there, argoproj/argo-workflows#6939, #7839);
- when the template is overridable, each compiled field also becomes a workflow parameter
  (``<template>-cpu``, ``-memory``, ``-gpu``, ``-disk``, ``-shared-memory``) whose default is
  the compiled value, and the template's ``podSpecPatch`` sets the main container's
  resources (and the ``dshm`` volume's ``sizeLimit``) from the parameter — Argo's documented
  way to parameterise resources — so ``argo submit -p train-memory=64Gi`` takes effect. A
  parameter never reaches the patch as text (it is hostile input, DESIGN §7c): each goes
  through :func:`allotment.argo.retry.parameter_value`, an expression that validates it and
  gives a whole number of its unit (a plain memory number is MiB, ``-p train-memory=65536`` is
  64 GiB), or fails the node, up to :func:`allotment.argo.retry.parameter_bound`;
- with ``retry_memory_factor`` the patch's memory grows with ``{{retries}}``
  (:mod:`allotment.argo.retry`) and the template gets a ``retryStrategy`` unless it has one.
  Growth is held to the policy's memory cap for runtime input
  (``Policy.memory_cap(runtime=True)``, the stricter of ``caps`` and ``runtime.caps``) when
  the memory can come from a submit parameter (the template is overridable) or came from a
  runtime ``with``/``set``; otherwise to ``caps.memory`` (``memory_cap(runtime=False)``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from allotment.errors import AllotmentError
from allotment.k8s import DSHM, gpu_key, kubernetes_parts, merge_parts
from allotment.k8s_user import yield_defaults
from allotment.model import describe_value
from allotment.policy import Policy
from allotment.profiles import Profile
from allotment.resolve import Resolved

from .names import parameter_name
from .retry import DEFAULT_RETRY, accepted, memory_expression, parameter_bound, parameter_value

__all__ = ["MAIN", "PARAMETER_FIELDS", "TemplatePlan", "merge_pod_spec_patch", "plan_template"]

MAIN: Final = "main"
"""Argo's name for the main container of a Container or Script template."""

PARAMETER_FIELDS: Final = ("cpu", "memory", "gpu", "disk", "shared_memory")
"""Fields that become submit-time parameters, in this order (those the template has)."""

MIB_FIELDS: Final = ("memory", "disk", "shared_memory")
"""Parameters whose plain numbers are MiB (:func:`allotment.argo.retry.parameter_value`)."""


@dataclass(frozen=True)
class TemplatePlan:
    """One template's share of the output.

    ``parts``: the merged container/pod parts (literal values). ``added``: the volumes,
    volume mounts and tolerations allotment adds to the template's own. ``parameters``: the
    workflow parameters (``name``, ``value``, ``description``). ``pod_spec_patch``: the
    template's new ``podSpecPatch`` (None: leave it). ``retry_strategy``: a ``retryStrategy``
    to set (None: leave it).
    """

    template: str
    resolved: Resolved
    parts: Mapping[str, Any]
    added: Mapping[str, list[dict[str, Any]]]
    parameters: tuple[dict[str, str], ...] = ()
    pod_spec_patch: str | None = None
    retry_strategy: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())


def _key_field(key: str, gpu: str | None) -> str | None:
    return {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "disk"}.get(key) or ("gpu" if key == gpu else None)


def plan_template(
    template: str,
    resolved: Resolved,
    profile: Profile,
    user: Mapping[str, Any],
    *,
    user_source: str,
    overridable: bool = True,
    policy: Policy | None = None,
    user_pod_spec_patch: str | None = None,
    user_retry: Mapping[str, Any] | None = None,
) -> TemplatePlan:
    """Plan one template. ``user``: the template's own parts (``resources``, ``volumes``,
    ``volumeMounts``, ``nodeSelector``, ``tolerations``) as plain dicts; ``user_retry``: its own
    ``retryStrategy`` (None: it has none)."""
    step = resolved.step
    # A value only a default decided yields to the template's own (the core's rule for every face).
    ours = yield_defaults(kubernetes_parts(resolved, profile), resolved, user)
    merged = merge_parts(ours, user, step=step, user_source=user_source)
    added = {
        "volumes": [v for v in merged.get("volumes", []) if v.get("name") not in {u.get("name") for u in user.get("volumes") or []}],
        "volumeMounts": [m for m in merged.get("volumeMounts", []) if m not in [dict(u) for u in user.get("volumeMounts") or []]],
        "tolerations": [t for t in merged.get("tolerations", []) if t not in [dict(u) for u in user.get("tolerations") or []]],
    }

    key = gpu_key(resolved.value("gpu_vendor"), resolved.value("gpu_type")) if resolved.value("gpu") else None
    values: dict[str, str] = {}
    for section in ("requests", "limits"):
        for name, value in ours["resources"][section].items():
            owner = _key_field(name, key)
            if owner is not None:
                values.setdefault(owner, value)
    if ours.get("volumes"):
        values["shared_memory"] = ours["volumes"][0]["emptyDir"]["sizeLimit"]

    parameters: list[dict[str, str]] = []
    refs: dict[str, str] = {}
    if overridable:
        for name in PARAMETER_FIELDS:
            if name not in values:
                continue
            pname = parameter_name(template, name)
            won = resolved.winners[name]
            bound = parameter_bound(name, int(resolved.value(name)), policy)
            refs[name] = parameter_value(name, pname, bound)
            unit = "; a plain number is MiB" if name in MIB_FIELDS else ""
            parameters.append(
                {
                    "name": pname,
                    "value": values[name],
                    "description": f"allotment: {name} of template {template} "
                    f"(compiled {describe_value(name, won.value)} from {won.source}); {accepted(name, bound)}{unit}",
                }
            )

    factor = resolved.value("retry_memory_factor")
    grows = bool(factor) and factor != 1
    memory_value: str | None = None
    notes: list[str] = []
    if grows and "memory" not in ours["resources"].get("limits", {}):
        raise AllotmentError(
            "has retry_memory_factor, but its memory comes from the template's own resources",
            step=step,
            field="retry_memory_factor",
            value=factor,
            source=str(resolved.winners["retry_memory_factor"].source),
            accepted="give memory in the spec (e.g. @resources(memory=...)) so that allotment can grow it",
        )
    if grows:
        # A memory that a submit parameter can set is runtime input, and so is one from a `with`/`set`.
        runtime = overridable or resolved.winners["memory"].source.is_runtime
        cap = policy.memory_cap(runtime=runtime) if policy is not None else None
        base: int | str = parameter_name(template, "memory") if overridable else int(resolved.value("memory"))
        memory_bound = parameter_bound("memory", int(resolved.value("memory")), policy) if overridable else None
        memory_value = memory_expression(base, float(factor), cap, memory_bound)
        notes.append(f"memory x{factor} per retry" + (f", up to the policy cap {describe_value('memory', cap)}" if cap else ""))
    elif "memory" in refs:
        memory_value = refs["memory"]

    patch: dict[str, Any] = {}
    container: dict[str, Any] = {}
    for section in ("limits", "requests"):
        entries: dict[str, str] = {}
        for name in ours["resources"][section]:
            owner = _key_field(name, key)
            if owner == "memory" and memory_value is not None:
                entries[name] = memory_value
            elif owner is not None and owner in refs:
                entries[name] = refs[owner]
        if entries:
            container.setdefault("resources", {})[section] = entries
    if container:
        patch["containers"] = [{"name": MAIN, **container}]
    if "shared_memory" in refs:
        patch["volumes"] = [{"name": DSHM, "emptyDir": {"medium": "Memory", "sizeLimit": refs["shared_memory"]}}]

    pod_spec_patch: str | None = None
    if patch:
        combined = patch
        if user_pod_spec_patch:
            combined = merge_pod_spec_patch(_parse_patch(user_pod_spec_patch, step), patch, step=step)
        pod_spec_patch = json.dumps(combined, separators=(",", ":"))
    retry = None if (not grows or user_retry is not None) else dict(DEFAULT_RETRY)
    return TemplatePlan(template, resolved, merged, added, tuple(parameters), pod_spec_patch, retry, tuple(notes))


def _parse_patch(text: str, step: str) -> dict[str, Any]:
    import yaml

    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise AllotmentError(
            f"the template's own podSpecPatch cannot be read ({e.__class__.__name__})",
            step=step,
            accepted="write podSpecPatch as JSON or YAML, so that allotment can add its resources to it",
        ) from e
    if not isinstance(parsed, dict):
        raise AllotmentError(
            "the template's own podSpecPatch is not a mapping", step=step, accepted="write podSpecPatch as a JSON or YAML object"
        )
    return parsed


_BY_NAME: Final = ("containers", "initContainers", "volumes")


def merge_pod_spec_patch(user: Mapping[str, Any], ours: Mapping[str, Any], *, step: str, path: str = "") -> dict[str, Any]:
    """Merge allotment's pod-spec patch into the template's own, as a strategic merge would:
    mappings merge, ``containers``/``initContainers``/``volumes`` merge by ``name``; the same
    leaf with two values is an error."""
    out: dict[str, Any] = {k: v for k, v in user.items()}
    for key, value in ours.items():
        where = f"{path}.{key}" if path else key
        if key not in out:
            out[key] = value
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = merge_pod_spec_patch(out[key], value, step=step, path=where)
        elif key in _BY_NAME and isinstance(out[key], Sequence) and isinstance(value, Sequence):
            items = [dict(i) for i in out[key]]
            for item in value:
                same = next((i for i in items if i.get("name") == item.get("name")), None)
                if same is None:
                    items.append(dict(item))
                else:
                    items[items.index(same)] = merge_pod_spec_patch(same, item, step=step, path=f"{where}[{item.get('name')}]")
            out[key] = items
        elif out[key] != value:
            raise AllotmentError(
                f"the template's own podSpecPatch sets {where}={out[key]!r}, which allotment sets to {value!r}",
                step=step,
                accepted="leave that field to allotment's spec (or set overridable(False) and drop retry_memory_factor)",
            )
    return out
