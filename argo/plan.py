"""What one resourced Argo template gets, as plain data (no Hera here).

The values come from the core: :func:`allotment.facade.fit_pod` compiles the resolved spec and
fits it into what the template already has (a value only a default decided yields to the
template's own; a real conflict is an error), and :meth:`allotment.facade.Resolved.retry_growth`
says how memory grows after OOM kills. This module only decides where each compiled value goes in
an Argo template:

- the container's ``resources``, ``volumes``, ``volumeMounts``, ``nodeSelector`` and
  ``tolerations`` hold the **compiled values** (literal quantities: Argo's controller decodes
  ``resources`` and ``emptyDir.sizeLimit`` as Kubernetes quantities and rejects
  ``{{...}}`` there, argoproj/argo-workflows#6939, #7839);
- when the template is overridable, each compiled field also becomes a workflow parameter
  (``<template>-cpu``, ``-memory``, ``-gpu``, ``-disk``, ``-shared-memory``) whose default is
  the compiled value, and the template's ``podSpecPatch`` sets the main container's
  resources (and the shared-memory volume's ``sizeLimit``) from the parameter — Argo's documented
  way to parameterise resources — so ``argo submit -p train-memory=64Gi`` takes effect. A
  parameter never reaches the patch as text (it is hostile input, docs/design.md §7.2): each goes
  through :func:`allotment.argo.retry.parameter_value`, an expression that validates it and
  gives a whole number of its unit (a plain memory number is MiB, ``-p train-memory=65536`` is
  64 GiB), or fails the node, up to :func:`allotment.argo.retry.parameter_bound`;
- with ``retry_memory_factor`` the patch's memory grows after OOM kills, from ``retries`` and
  ``lastRetry.*`` (:mod:`allotment.argo.retry`: the closest count Argo allows, which never loses
  growth) and the template gets a ``retryStrategy`` unless it has one.
  The growth and its cap are the core's rule; a memory that a submit parameter can set is
  runtime input (``runtime_input=overridable``), so the stricter cap for runtime input holds it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from allotment.facade import SHM_VOLUME, AllotmentError, PodFit, PodParts, Resolved, Settings, describe_value, fit_pod

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

    ``fit``: the spec fitted into the template's own fields (``fit.merged`` holds the literal
    values, ``fit.added`` what allotment adds to the template's own volumes, volume mounts and
    tolerations). ``parameters``: the workflow parameters (``name``, ``value``,
    ``description``). ``pod_spec_patch``: the template's new ``podSpecPatch`` (None: leave it).
    ``retry_strategy``: a ``retryStrategy`` to set (None: leave it).
    """

    template: str
    resolved: Resolved
    fit: PodFit
    parameters: tuple[dict[str, str], ...] = ()
    pod_spec_patch: str | None = None
    retry_strategy: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())


def plan_template(
    template: str,
    resolved: Resolved,
    settings: Settings,
    user: PodParts,
    *,
    user_source: str,
    overridable: bool = True,
    user_pod_spec_patch: str | None = None,
    user_retry: Mapping[str, Any] | None = None,
) -> TemplatePlan:
    """Plan one template. ``user``: the template's own parts; ``user_retry``: its own
    ``retryStrategy`` (None: it has none)."""
    step = resolved.step
    fitted = fit_pod(resolved, settings.profile, user, user_source=user_source, owner="the template's own resources")
    values = {name: value for name in PARAMETER_FIELDS if (value := fitted.value(name)) is not None}

    parameters: list[dict[str, str]] = []
    refs: dict[str, str] = {}
    if overridable:
        for name, value in values.items():
            pname = parameter_name(template, name)
            won = resolved.winners[name]
            bound = parameter_bound(name, int(resolved.value(name)), settings)
            refs[name] = parameter_value(name, pname, bound)
            unit = "; a plain number is MiB" if name in MIB_FIELDS else ""
            parameters.append(
                {
                    "name": pname,
                    "value": value,
                    "description": f"allotment: {name} of template {template} "
                    f"(compiled {describe_value(name, won.value)} from {won.source}); {accepted(name, bound)}{unit}",
                }
            )

    growth = resolved.retry_growth(settings.policy, runtime_input=overridable)
    memory_value: str | None = None
    notes: list[str] = []
    if growth is not None:
        base: int | str = parameter_name(template, "memory") if overridable else growth.memory
        memory_bound = parameter_bound("memory", growth.memory, settings) if overridable else None
        # the cap, or the core's hard maximum without one; the expression never goes below the first try's memory
        held = growth.cap if growth.cap is not None else growth.maximum
        memory_value = memory_expression(base, growth.factor, held, memory_bound)
        cap = f", up to the policy cap {describe_value('memory', growth.cap)}" if growth.cap else ""
        factor = resolved.value("retry_memory_factor")
        notes.append(
            f"memory x{factor}^retries after an OOM-killed attempt, x{factor}^(retries-1) after any other failure{cap} "
            "(Argo shows an attempt only the last one before it: the closest count of OOM kills that never loses growth; "
            "docs/design.md §7.3)"
        )
    elif "memory" in refs:
        memory_value = refs["memory"]

    patch: dict[str, Any] = {}
    container: dict[str, Any] = {}
    ours = fitted.ours.resources
    for section in ("limits", "requests"):
        entries: dict[str, str] = {}
        for key in getattr(ours, section) if ours is not None else ():
            owner = fitted.field_of(key)
            if owner == "memory" and memory_value is not None:
                entries[key] = memory_value
            elif owner is not None and owner in refs:
                entries[key] = refs[owner]
        if entries:
            container.setdefault("resources", {})[section] = entries
    if container:
        patch["containers"] = [{"name": MAIN, **container}]
    if "shared_memory" in refs:
        patch["volumes"] = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": refs["shared_memory"]}}]

    pod_spec_patch: str | None = None
    if patch:
        combined = patch
        if user_pod_spec_patch:
            combined = merge_pod_spec_patch(_parse_patch(user_pod_spec_patch, step), patch, step=step)
        pod_spec_patch = json.dumps(combined, separators=(",", ":"))
    retry = None if (growth is None or user_retry is not None) else dict(DEFAULT_RETRY)
    return TemplatePlan(template, resolved, fitted, tuple(parameters), pod_spec_patch, retry, tuple(notes))


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
