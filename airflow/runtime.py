"""Runtime overrides from ``dag_run.conf["allotment"]`` (DESIGN §6, §7), and retries.

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
from dataclasses import replace
from typing import Any, Final

from allotment.airflow.tasks import TaskSpec
from allotment.errors import AllotmentError
from allotment.model import Resources
from allotment.resolve import Resolved
from allotment.settings import Settings
from allotment.withspec import WITH_KEYS, WithSpec, check_steps, parse_with, parse_withs

__all__ = ["CONF_KEY", "CONF_KEYS", "conf_specs", "describe", "resolve_for_run"]

CONF_KEY: Final = "allotment"
CONF_KEYS: Final = ("with", "set", "tasks")

_ACCEPTED: Final = (
    'use {"allotment": {"with": "kubernetes:memory=64Gi"}} for every task or '
    '{"allotment": {"tasks": {"<task_id>": "memory=64Gi"}}} for one; only resource fields '
    f"({', '.join(WITH_KEYS)}) can be changed at run time"
)


def _texts(value: Any, origin: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise AllotmentError(
        f"is a {type(value).__name__}, not a spec",
        field=origin,
        value=value,
        accepted="use a string such as 'memory=64Gi' or a list of them",
    )


def _specs(value: Any, origin: str, kind: str) -> tuple[WithSpec, ...]:
    specs: list[WithSpec] = []
    for text in _texts(value, origin):
        specs += parse_withs(text, origin, kind=kind)
    return tuple(specs)


def _task_specs(task_id: str, value: Any, origin: str) -> tuple[WithSpec, ...]:
    if isinstance(value, Mapping):
        unknown = [key for key in value if key not in WITH_KEYS]
        if unknown:
            raise AllotmentError(f"has key {unknown[0]!r}, which is no resource field", field=origin, has_value=False, accepted=_ACCEPTED)
        resources = Resources.from_input(value, step=task_id, source=origin)
        text = ",".join(f"{k}={v}" for k, v in value.items())
        return (WithSpec(text, origin, "with", task_id, None, resources),)
    out: list[WithSpec] = []
    for text in _texts(value, origin):
        spec = parse_with(text, origin)
        if spec.step is not None:
            raise AllotmentError(
                f"names step {spec.step!r} inside the entry for task {task_id!r}",
                source=f"{origin} {text!r}",
                accepted="write the fields only, e.g. 'memory=64Gi' or 'kubernetes:memory=64Gi'",
            )
        out.append(replace(spec, step=task_id))
    return tuple(out)


def conf_specs(conf: Any, *, task_ids: Collection[str] | None = None) -> tuple[tuple[WithSpec, ...], tuple[WithSpec, ...]]:
    """The ``with`` and ``set`` specs of a run's ``dag_run.conf``; raises on anything but resource fields.

    ``task_ids``: the DAG's tasks, to reject an entry for a task that does not exist."""
    if conf is None:
        return (), ()
    if not isinstance(conf, Mapping):
        raise AllotmentError(f"is a {type(conf).__name__}, not a mapping", field="dag_run.conf", value=conf, accepted=_ACCEPTED)
    if CONF_KEY not in conf:
        return (), ()
    block = conf[CONF_KEY]
    origin = f"dag_run.conf[{CONF_KEY!r}]"
    if not isinstance(block, Mapping):
        raise AllotmentError(f"is a {type(block).__name__}, not a mapping", field=origin, value=block, accepted=_ACCEPTED)
    unknown = [key for key in block if key not in CONF_KEYS]
    if unknown:
        raise AllotmentError(
            f"has key {unknown[0]!r}; it takes only {', '.join(CONF_KEYS)}", field=origin, has_value=False, accepted=_ACCEPTED
        )
    withs = list(_specs(block["with"], f"{origin}['with']", "with")) if "with" in block else []
    sets = list(_specs(block["set"], f"{origin}['set']", "set")) if "set" in block else []
    tasks = block.get("tasks") or {}
    if not isinstance(tasks, Mapping):
        raise AllotmentError(
            f"is a {type(tasks).__name__}, not a mapping of task_id to spec", field=f"{origin}['tasks']", value=tasks, accepted=_ACCEPTED
        )
    for task_id, value in tasks.items():
        where = f"{origin}['tasks'][{task_id!r}]"
        if task_ids is not None and task_id not in task_ids:
            raise AllotmentError(
                f"names task {task_id!r}, which this DAG does not have",
                field=where,
                has_value=False,
                accepted=f"tasks are {', '.join(sorted(task_ids))}",
            )
        withs += _task_specs(str(task_id), value, where)
    if task_ids is not None:
        check_steps([*withs, *sets], task_ids)
    return tuple(withs), tuple(sets)


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
    from allotment.model import describe_value

    lines = [
        f"allotment: task {resolved.step!r} on {resolved.backend}: "
        + ", ".join(f"{name}={describe_value(name, won.value)}" for name, won in resolved.winners.items())
    ]
    lines += [f"allotment:   {name} {describe_value(name, won.value)} from {won.source}" for name, won in resolved.winners.items()]
    lines += [f"allotment: note: {note}" for note in resolved.notes]
    return lines
