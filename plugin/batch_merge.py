"""Merging allotment's AWS Batch overrides with the user's own (DESIGN §2.3, §5, §7b).

A face that submits (the Airflow BatchOperator) or that hands a SubmitJob fragment to an
executor (the AwsBatchExecutor's ``executor_config``) has the user's own overrides too:
``containerOverrides`` (``command``, ``environment``, ``resourceRequirements``, ...) or an
``eksPropertiesOverride``. The rules, the same as for Kubernetes pods
(:func:`allotment.k8s.merge_parts`):

* the user's entries are kept; allotment adds its own;
* a value that only a default decided (the workflow's defaults or the seed defaults) yields
  to the user's own entry for that resource;
* the same value twice is kept once; two different values for one resource are an error
  naming both.

``resourceRequirements`` entries are compared by ``type`` (``VCPU``, ``MEMORY``, ``GPU``),
values as numbers (``"4"`` equals ``"4.0"``). The deprecated ``containerOverrides.vcpus`` and
``.memory`` count as the user's VCPU and MEMORY.

For the AwsBatchExecutor, :func:`executor_config` builds the camelCase SubmitJob fragment the
executor merges into its ``[aws_batch_executor]`` SubmitJob kwargs with Airflow's
``merge_dicts``, which replaces lists instead of joining them: so the fragment always carries
the **complete** ``resourceRequirements`` list (VCPU and MEMORY at least), completed from the
executor's own configured list where allotment sets no value or only a default.

Engine-free: plain dicts in, plain dicts out; nothing here calls AWS.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from .awsbatch import BatchPlan
from .errors import AllotmentError
from .k8s import merge_parts
from .k8s_user import DEFAULT_KINDS, yield_defaults
from .model import describe_value
from .resolve import Resolved

__all__ = [
    "DEPRECATED_KEYS",
    "REQUIREMENT_FIELDS",
    "SNAKE_CASE_KEYS",
    "executor_config",
    "merge_container_overrides",
    "merge_eks_properties_override",
    "merge_requirements",
    "merge_submit_overrides",
]

REQUIREMENT_FIELDS: Final[Mapping[str, str]] = {"VCPU": "cpu", "MEMORY": "memory", "GPU": "gpu"}
"""``resourceRequirements`` type -> the allotment field it carries."""

DEPRECATED_KEYS: Final[Mapping[str, str]] = {"vcpus": "VCPU", "memory": "MEMORY"}
"""Deprecated ``containerOverrides`` members -> the requirement type they set."""

SNAKE_CASE_KEYS: Final[Mapping[str, str]] = {
    "container_overrides": "containerOverrides",
    "eks_properties_override": "eksPropertiesOverride",
    "ecs_properties_override": "ecsPropertiesOverride",
    "node_overrides": "nodeOverrides",
    "retry_strategy": "retryStrategy",
    "share_identifier": "shareIdentifier",
    "scheduling_priority_override": "schedulingPriorityOverride",
    "array_properties": "arrayProperties",
    "propagate_tags": "propagateTags",
}
"""snake_case keys a user may write in ``executor_config`` -> the SubmitJob member meant. The
AwsBatchExecutor passes ``executor_config`` to SubmitJob unchanged (no camelizing), so a
snake_case key would be an unknown parameter there."""

_ORDER: Final = ("VCPU", "MEMORY", "GPU")
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
    """allotment's ``resourceRequirements`` (``ours``, from a :class:`~allotment.awsbatch.BatchPlan`)
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
    Kubernetes (:func:`allotment.k8s.merge_parts`): defaults yield, conflicts are errors.
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
    mine = yield_defaults({"resources": entry["resources"]}, resolved, {"resources": target.get("resources") or {}})
    merged = merge_parts(
        mine,
        {"resources": target.get("resources") or {}},
        step=resolved.step,
        user_source=f"{user_source} (eksPropertiesOverride container {target.get('name') or 0!r})",
    )
    target["resources"] = {section: values for section, values in (merged.get("resources") or {}).items() if values}
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


def executor_config(
    plan: BatchPlan,
    resolved: Resolved,
    user_config: Mapping[str, Any] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    user_source: str = "executor_config",
) -> dict[str, Any]:
    """The ``executor_config`` of a task on the AwsBatchExecutor: the user's own, with
    ``containerOverrides.resourceRequirements`` set to the complete list the spec asks for.

    ``base``: the executor's SubmitJob kwargs (``[aws_batch_executor]``), whose own
    ``containerOverrides.resourceRequirements`` the result replaces; its entries stand where
    allotment sets nothing or only a default. The executor submits every task with the one
    job definition of its configuration and runs no EKS jobs, so a spec needing a
    job-definition revision (shared memory; disk on Fargate) or platform ``eks`` is an error.
    """
    step = resolved.step
    config: dict[str, Any] = copy.deepcopy(dict(user_config or {}))
    for key, camel in SNAKE_CASE_KEYS.items():
        if key in config:
            raise AllotmentError(
                f"{user_source} has the key {key!r}; the AwsBatchExecutor passes executor_config to SubmitJob as it is",
                step=step,
                accepted=f"write SubmitJob's camelCase name {camel!r}",
            )
    if plan.platform == "eks":
        raise AllotmentError(
            "runs on the AwsBatchExecutor, which submits no EKS jobs (platform 'eks')",
            step=step,
            field="platform",
            value=plan.platform,
            source=plan.platform_source,
            accepted="use platform 'ec2' or 'fargate', or allotment's BatchOperator for an EKS-backed queue",
        )
    if plan.needs_job_definition:
        fields = ", ".join(_paths(plan.job_definition_fields))
        raise AllotmentError(
            f"needs a job-definition revision ({fields}), which the AwsBatchExecutor cannot use: it submits every task "
            "with the job definition of its [aws_batch_executor] configuration",
            step=step,
            accepted="run this step with allotment's BatchOperator (it registers the revision when the task runs), "
            "or drop the field and size it in the executor's job definition",
        )
    config["containerOverrides"] = merge_container_overrides(
        plan.submit_overrides["containerOverrides"],
        config.get("containerOverrides"),
        resolved,
        user_source=user_source,
        base=(base or {}).get("containerOverrides"),
    )
    return config


def _paths(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in fields.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _paths(value, f"{path}.")
        else:
            out.append(path)
    return out
