"""Runtime overrides from ``dag_run.conf["allotment"]`` (docs/design.md §6, §7), and memory growth after OOM kills.

::

    {"allotment": {"with": "kubernetes:memory=65536"}}                 # every task (same grammar as --with)
    {"allotment": {"with": ["memory=64Gi", "train:gpu=2"]}}            # several specs
    {"allotment": {"tasks": {"train": "memory=65536"}}}                # one task, by task_id
    {"allotment": {"tasks": {"train": {"memory": "64Gi", "cpu": 8}}}}  # the same, as fields
    {"allotment": {"set": "train:memory=2048"}}                        # replace (lower), if the policy allows

``with`` specs raise floors (maximum), ``set`` specs replace values; both are checked by the
policy (``[allotment] policy`` / ``ALLOTMENT_POLICY``: runtime allowed?, runtime caps). Only
resource fields are accepted, each through the core's validator: a run's conf can never reach
the image, command, arguments, env, volumes, service account, security context, node name,
namespace or labels, so any other key fails the task for good before any pod request or
AWS Batch call, with the reason in the task log. Values are data, never templates: allotment
reads a run's conf after Airflow rendered the task, and renders nothing itself, so a
``{{ ... }}`` in a value is just an invalid quantity. The whole conf is checked by every task
that reads it, so nothing applies partially; an error in a task's own entry names that task.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from allotment.facade import AllotmentError, Resolved, Resources, Settings, Source, WithSpec, describe_value, parse_runtime

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
    block = conf[CONF_KEY]
    origin = f"dag_run.conf[{CONF_KEY!r}]"
    tasks = block.get("tasks") if isinstance(block, Mapping) else None
    if isinstance(tasks, Mapping):
        for step, entry in tasks.items():  # an error in the entry of one of the DAG's tasks names that task
            try:
                parse_runtime({"tasks": {step: entry}}, origin, accepted=_ACCEPTED, steps=task_ids)
            except AllotmentError as e:
                if task_ids is not None and step not in task_ids:
                    raise
                raise e.with_context(step=str(step)) from e
    return parse_runtime(block, origin, accepted=_ACCEPTED, steps=task_ids)


def resolve_for_run(
    spec: TaskSpec,
    settings: Settings,
    *,
    conf: Any = None,
    try_number: int = 1,
    oom_kills: int = 0,
    task_ids: Collection[str] | None = None,
    more: Sequence[tuple[Resources, Source]] = (),
) -> Resolved:
    """The task's spec for one try of one run: the run's conf overrides, then the memory growth
    of ``retry_memory_factor`` after the ``oom_kills`` earlier tries of the task instance that
    ended in an OOM kill (the core's rule, capped by the policy; :mod:`allotment.airflow.tries`
    counts them). ``try_number`` names the try in the notes. ``more``: step sources read from
    the task's own pod settings now."""
    withs, sets = conf_specs(conf, task_ids=task_ids)
    resolved = spec.resolve(settings, withs=withs, sets=sets, more=more)
    return resolved.with_memory_after(oom_kills, settings.policy, try_number=max(1, int(try_number or 1)))


def describe(resolved: Resolved) -> list[str]:
    """Lines for the task log: each value, where it came from, and any note (retry growth)."""
    lines = [
        f"allotment: task {resolved.step!r} on {resolved.backend}: "
        + ", ".join(f"{name}={describe_value(name, won.value)}" for name, won in resolved.winners.items())
    ]
    lines += [f"allotment:   {name} {describe_value(name, won.value)} from {won.source}" for name, won in resolved.winners.items()]
    lines += [f"allotment: note: {note}" for note in resolved.notes]
    return lines
