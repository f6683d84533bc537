"""Merging allotment's AWS Batch overrides with the user's own (docs/design.md, "Sources and
precedence" and "AWS Batch").

A face that submits (the Airflow BatchOperator) or that hands a SubmitJob fragment to an
executor (the AwsBatchExecutor's ``executor_config``) has the user's own overrides too:
``containerOverrides`` (``command``, ``environment``, ``resourceRequirements``, ...) or an
``eksPropertiesOverride``. The rules, the same as for Kubernetes pods
(:func:`allotment.kubernetes.fit`):

* the user's entries are kept; allotment adds its own;
* a value that only a default decided (the workflow's defaults or the seed defaults) yields
  to the user's own entry for that resource;
* the same value twice is kept once; two different values for one resource are an error
  naming both.

``resourceRequirements`` entries are compared by ``type`` (``VCPU``, ``MEMORY``, ``GPU``),
values as numbers (``"4"`` equals ``"4.0"``). The deprecated ``containerOverrides.vcpus`` and
``.memory`` count as the user's VCPU and MEMORY.

A caller whose result will *replace* a configured list rather than join it (the Airflow
face's AwsBatchExecutor config) passes that list as ``base``: its entries complete the result
where allotment sets no value or only a default.

Engine-free: plain dicts in, plain dicts out; nothing here calls AWS.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from ..errors import AllotmentError
from ..kubernetes import DEFAULT_KINDS, PodParts, fit
from ..model import describe_value
from ..resolve import Resolved
from ..targets import TARGETS
from .compile import BatchPlan

__all__ = [
    "DEPRECATED_KEYS",
    "REQUIREMENT_FIELDS",
    "merge_container_overrides",
    "merge_eks_properties_override",
    "merge_requirements",
    "merge_submit_overrides",
]

REQUIREMENT_FIELDS: Final[Mapping[str, str]] = {str(t.batch): name for name, t in TARGETS.items() if t.batch}
"""``resourceRequirements`` type -> the allotment field it carries."""

DEPRECATED_KEYS: Final[Mapping[str, str]] = {"vcpus": "VCPU", "memory": "MEMORY"}
"""Deprecated ``containerOverrides`` members -> the requirement type they set."""

_ORDER: Final = tuple(REQUIREMENT_FIELDS)
_ALLOTMENT_SPEC: Final = "allotment's spec"


def _same(a: object, b: object) -> bool:
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except InvalidOperation:
        return str(a) == str(b)


def _from_default(resolved: Resolved, field: str | None) -> bool:
    if field is None:
        return False
    won = resolved.winners.get(field)
    return won is not None and won.source.kind in DEFAULT_KINDS


def _ours(resolved: Resolved, kind: str, value: str) -> str:
    """``MEMORY '16384' from allotment's spec (memory 16Gi from @batch)``."""
    field = REQUIREMENT_FIELDS.get(kind)
    won = resolved.winners.get(field) if field else None
    detail = f" ({field} {describe_value(field, won.value)} from {won.source})" if field and won is not None else ""
    return f"{kind} {value!r} from {_ALLOTMENT_SPEC}{detail}"


def _entries(value: Any, where: str, step: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise AllotmentError(
            f"{where} is a {type(value).__name__}, not a list",
            step=step,
            accepted="write resourceRequirements as a list of {'type': 'VCPU'|'MEMORY'|'GPU', 'value': '<string>'}",
        )
    out: list[dict[str, str]] = []
    for entry in value:
        if not isinstance(entry, Mapping) or "type" not in entry or "value" not in entry:
            raise AllotmentError(
                f"{where} has the entry {entry!r}, which is no {{'type': ..., 'value': ...}}",
                step=step,
                accepted="write each entry as {'type': 'VCPU'|'MEMORY'|'GPU', 'value': '<string>'}",
            )
        out.append({str(k): v for k, v in entry.items()})
    return out


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(item: tuple[int, dict[str, Any]]) -> tuple[int, int]:
        index, entry = item
        kind = str(entry.get("type"))
        return (_ORDER.index(kind) if kind in _ORDER else len(_ORDER), index)

    return [entry for _, entry in sorted(enumerate(entries), key=key)]


def merge_requirements(
    ours: Sequence[Mapping[str, str]],
    user: Any,
    resolved: Resolved,
    *,
    user_source: str,
    user_deprecated: Mapping[str, Any] | None = None,
    base: Any = None,
    where: str = "containerOverrides.resourceRequirements",
) -> list[dict[str, Any]]:
    """allotment's ``resourceRequirements`` (``ours``, from a :class:`~allotment.batch.compile.BatchPlan`)
    merged with the user's (``user``, a list; ``user_deprecated``: the deprecated ``vcpus`` /
    ``memory`` members beside it), in the order VCPU, MEMORY, GPU, then any other type.

    ``base``: a list that the result will *replace* rather than join (the AwsBatchExecutor's
    configured ``resourceRequirements``): its entries complete the result for the types
    allotment leaves out, and stand where allotment's value came only from a default. An
    explicit ``gpu=0`` drops the base's GPU entry. The user's entries win over the base's.
    """
    step = resolved.step
    theirs = _entries(user, f"{where} from {user_source}", step)
    given: dict[str, Any] = {str(e["type"]): e["value"] for e in theirs}
    for key, kind in (user_deprecated or {}).items():
        if key in DEPRECATED_KEYS and kind is not None:
            given.setdefault(DEPRECATED_KEYS[key], kind)

    # allotment's entries, each marked strong (a step source, with or set decided it) or weak (a default)
    candidates: list[tuple[dict[str, Any], bool]] = []
    base_entries = {str(e["type"]): e for e in _entries(base, f"{where} of the executor's configuration", step)}
    for entry in ours:
        kind = str(entry["type"])
        weak = _from_default(resolved, REQUIREMENT_FIELDS.get(kind))
        if weak and kind in base_entries:
            candidates.append((dict(base_entries[kind]), False))
        else:
            candidates.append((dict(entry), not weak))
    named = {str(entry["type"]) for entry, _ in candidates}
    gpu_zero = resolved.value("gpu") == 0 and not _from_default(resolved, "gpu")
    for kind, entry in base_entries.items():
        if kind not in named and not (kind == "GPU" and gpu_zero):
            candidates.append((dict(entry), False))

    merged: list[dict[str, Any]] = [dict(e) for e in theirs]
    for entry, strong in candidates:
        kind = str(entry["type"])
        if kind not in given:
            merged.append(entry)
            continue
        if not strong or _same(given[kind], entry["value"]):
            continue  # the user's own entry stands
        deprecated = next((k for k, v in DEPRECATED_KEYS.items() if v == kind and k in (user_deprecated or {})), None)
        shown = f"containerOverrides.{deprecated}" if deprecated and kind not in {str(e["type"]) for e in theirs} else f"{where} {kind}"
        raise AllotmentError(
            f"{shown} {given[kind]!r} from {user_source} conflicts with {_ours(resolved, kind, str(entry['value']))}",
            step=step,
            accepted="give this resource in one place only (allotment's resources, or your own resourceRequirements)",
        )
    return _sorted(merged)


def merge_container_overrides(
    ours: Mapping[str, Any], user: Any, resolved: Resolved, *, user_source: str, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """allotment's ``containerOverrides`` merged with the user's own: every member of theirs is
    kept (``command``, ``environment``, ``instanceType``...), ``resourceRequirements`` merged by
    :func:`merge_requirements`. ``base``: the executor's configured ``containerOverrides``."""
    if user is not None and not isinstance(user, Mapping):
        raise AllotmentError(
            f"containerOverrides from {user_source} is a {type(user).__name__}, not a mapping",
            step=resolved.step,
            accepted="write containerOverrides as a dict in SubmitJob's syntax",
        )
    out: dict[str, Any] = copy.deepcopy(dict(user or {}))
    requirements = merge_requirements(
        list(ours.get("resourceRequirements") or []),
        out.get("resourceRequirements"),
        resolved,
        user_source=user_source,
        user_deprecated={k: out[k] for k in DEPRECATED_KEYS if out.get(k) is not None},
        base=(base or {}).get("resourceRequirements"),
    )
    if requirements:
        out["resourceRequirements"] = requirements
    return out


def merge_eks_properties_override(ours: Mapping[str, Any], user: Any, resolved: Resolved, *, user_source: str) -> dict[str, Any]:
    """allotment's ``eksPropertiesOverride`` merged with the user's own.

    allotment's container entry applies to the user's entry with the same ``name`` (when
    allotment names one, from the operator's ``eks_container``), else to the user's first
    entry; a user without container entries gets allotment's. Its ``resources`` merge as on
    Kubernetes (:func:`allotment.kubernetes.fit`): defaults yield, conflicts are errors.
    Everything else of the user's (pod metadata, other containers, env, command) is kept.
    """
    if user is not None and not isinstance(user, Mapping):
        raise AllotmentError(
            f"eksPropertiesOverride from {user_source} is a {type(user).__name__}, not a mapping",
            step=resolved.step,
            accepted="write eksPropertiesOverride as a dict in SubmitJob's syntax",
        )
    out: dict[str, Any] = copy.deepcopy(dict(user or {}))
    (entry,) = ours["podProperties"]["containers"]
    pod = out.setdefault("podProperties", {})
    containers = pod.setdefault("containers", [])
    name = entry.get("name")
    target = next((c for c in containers if c.get("name") == name), None) if name else (containers[0] if containers else None)
    if target is None:
        containers.append(copy.deepcopy(dict(entry)))
        return out
    fitted = fit(
        resolved,
        None,
        {"resources": target.get("resources") or {}},
        user_source=f"{user_source} (eksPropertiesOverride container {target.get('name') or 0!r})",
        ours=PodParts.from_dict({"resources": entry["resources"]}),
    )
    resources = fitted.merged.resources
    target["resources"] = {section: values for section, values in (resources.to_dict() if resources else {}).items() if values}
    return out


def merge_submit_overrides(
    plan: BatchPlan,
    resolved: Resolved,
    *,
    container_overrides: Any = None,
    eks_properties_override: Any = None,
    user_source: str,
) -> dict[str, Any]:
    """The SubmitJob override members to send: ``containerOverrides`` (ec2, fargate) or
    ``eksPropertiesOverride`` (eks) of ``plan`` merged with the user's own; the other member,
    when the user gave it, is returned unchanged."""
    out: dict[str, Any] = {}
    if "containerOverrides" in plan.submit_overrides:
        out["containerOverrides"] = merge_container_overrides(
            plan.submit_overrides["containerOverrides"], container_overrides, resolved, user_source=user_source
        )
        if eks_properties_override is not None:
            out["eksPropertiesOverride"] = copy.deepcopy(eks_properties_override)
    else:
        out["eksPropertiesOverride"] = merge_eks_properties_override(
            plan.submit_overrides["eksPropertiesOverride"], eks_properties_override, resolved, user_source=user_source
        )
        if container_overrides is not None:
            out["containerOverrides"] = copy.deepcopy(container_overrides)
    return out
