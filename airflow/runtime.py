"""Runtime overrides from ``dag_run.conf["allotment"]`` (docs/design.md §6, §7), and retries.

::

    {"allotment": {"with": "kubernetes:memory=65536"}}                 # every task (same grammar as --with)
    {"allotment": {"with": ["memory=64Gi", "train:gpu=2"]}}            # several specs
    {"allotment": {"tasks": {"train": "memory=65536"}}}                # one task, by task_id
    {"allotment": {"tasks": {"train": {"memory": "64Gi", "cpu": 8}}}}  # the same, as fields
    {"allotment": {"set": "train:memory=2048"}}                        # replace (lower), if the policy allows

``with`` specs raise floors (maximum), ``set`` specs replace values; both are checked by the
policy (``[allotment] policy`` / ``ALLOTMENT_POLICY``: runtime allowed?, runtime caps). Only
resource fields are accepted: a run's conf can never reach the image, command, volumes or
service account, so any other key fails the task before any pod request, with the reason in
the task log. The whole conf is checked by every task that reads it, so nothing applies partially.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from allotment.facade import AllotmentError, Resolved, Settings, WithSpec, describe_value, parse_runtime

from .tasks import TaskSpec

__all__ = ["CONF_KEY", "conf_specs", "describe", "resolve_for_run"]

CONF_KEY: Final = "allotment"

_ACCEPTED: Final = (
    'use {"allotment": {"with": "kubernetes:memory=64Gi"}} for every task or {"allotment": {"tasks": {"<task_id>": "memory=64Gi"}}} for one'
)


def conf_specs(conf: Any, *, task_ids: Collection[str] | None = None) -> tuple[tuple[WithSpec, ...], tuple[WithSpec, ...]]:
    """The ``with`` and ``set`` specs of a run's ``dag_run.conf`` (its ``"allotment"`` block, read by
    the core's :func:`~allotment.facade.parse_runtime`); raises on anything but resource fields.

    ``task_ids``: the DAG's tasks, to reject an entry for a task that does not exist."""
    if conf is None:
        return (), ()
    if not isinstance(conf, Mapping):
        raise AllotmentError(f"is a {type(conf).__name__}, not a mapping", field="dag_run.conf", value=conf, accepted=_ACCEPTED)
    if CONF_KEY not in conf:
        return (), ()
    return parse_runtime(conf[CONF_KEY], f"dag_run.conf[{CONF_KEY!r}]", accepted=_ACCEPTED, steps=task_ids)


def resolve_for_run(
    spec: TaskSpec, settings: Settings, *, conf: Any = None, try_number: int = 1, task_ids: Collection[str] | None = None
) -> Resolved:
    """The task's spec for one try of one run: the run's conf overrides, then the memory growth
    of ``retry_memory_factor`` for try ``try_number`` (capped by the policy)."""
    withs, sets = conf_specs(conf, task_ids=task_ids)
    resolved = spec.resolve(settings, withs=withs, sets=sets)
    return resolved.with_memory_for_try(max(1, int(try_number or 1)), settings.policy)


def describe(resolved: Resolved) -> list[str]:
    """Lines for the task log: each value, where it came from, and any note (retry growth)."""
    lines = [
        f"allotment: task {resolved.step!r} on {resolved.backend}: "
        + ", ".join(f"{name}={describe_value(name, won.value)}" for name, won in resolved.winners.items())
    ]
    lines += [f"allotment:   {name} {describe_value(name, won.value)} from {won.source}" for name, won in resolved.winners.items()]
    lines += [f"allotment: note: {note}" for note in resolved.notes]
    return lines
