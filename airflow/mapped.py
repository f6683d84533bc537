"""Mapped tasks (``.partial(...).expand(...)``): every map index gets the spec (issue 10, scope 4).

A mapped task is one :class:`~airflow.sdk.definitions.mappedoperator.MappedOperator` in the DAG;
each map index becomes an operator of its ``operator_class`` only when it runs (``unmap``). So
allotment's cluster policy (:func:`apply_mapped`), when the DAG file is parsed:

* makes the operator class allotment's: a mapped ``@task.kubernetes`` (or another pod operator
  with a callable) whose callable carries ``@resources`` gets allotment's subclass of its class,
  so every index's pod carries the spec;
* builds a **probe**: the operator of one map index (the first literal of each expanded
  argument, a placeholder where the values come from an upstream task), as the index would be
  built, which resolves and checks the spec as for an unmapped task. A bad spec, a policy
  violation or a clash is therefore the DAG file's import error, and ``explain``/``render``
  show the mapped task once, through the probe, with its index count unknown;
* for a plain mapped task on the KubernetesExecutor or the AwsBatchExecutor, gives the mapped
  task the probe's ``executor_config`` (``partial_kwargs``), which every index's task instance
  takes.

A run's conf entry for the task id applies to every index (they share the task id). Expanding
over ``resources=`` or ``retry_memory_factor=`` themselves is an error: the spec is one for
every index (expanding over the operator's own ``container_resources`` is fine: each index's
is read, and policy-checked, when it runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

from allotment.facade import AllotmentError, spec_of

from .tasks import ATTR, task_spec

__all__ = ["PROBE", "apply_mapped", "is_mapped", "probe_of", "probing"]

PROBE: Final = "_allotment_probe"
"""The attribute of a mapped task that holds its probe (the operator of one map index)."""

_SPEC_ARGS: Final = ("resources", "retry_memory_factor", "step")
_POD_ARGS: Final = ("container_resources", "volumes", "volume_mounts", "node_selector", "tolerations", "full_pod_spec")


_probing: ContextVar[bool] = ContextVar("allotment_probing", default=False)


@contextlib.contextmanager
def _building_probe() -> Iterator[None]:
    token = _probing.set(True)
    try:
        yield
    finally:
        _probing.reset(token)


def probing() -> bool:
    """True while allotment builds a mapped task's probe (when the DAG file is parsed); an operator
    unmapped at any other time is a map index about to run."""
    return _probing.get()


def is_mapped(task: Any) -> bool:
    """True for a mapped task (``.expand()``)."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    return isinstance(task, MappedOperator)


def probe_of(task: Any) -> Any | None:
    """The probe of a mapped task that allotment sizes, else None."""
    return getattr(task, PROBE, None) if is_mapped(task) else None


def _callable(task: Any) -> Any:
    return getattr(task, "python_callable", None) or (getattr(task, "partial_kwargs", None) or {}).get("python_callable")


def _placeholders(task: Any) -> dict[str, Any]:
    """Values for one map index, in the form ``unmap`` takes: the first literal of each expanded
    argument, a placeholder (None for pod settings) where an upstream task gives them. A mapped
    ``@task`` expands its callable's arguments (``op_kwargs``)."""
    values = _index_values(task)
    return {"op_kwargs": values} if hasattr(task, "op_kwargs_expand_input") else values


def _index_values(task: Any) -> dict[str, Any]:
    expand_input = task._get_specified_expand_input()
    value = getattr(expand_input, "value", None)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for name, values in value.items():
            if name in _POD_ARGS:
                out[name] = None  # read per index when it runs (never one index's value shown as everyone's)
            elif isinstance(values, (list, tuple)) and values:
                out[name] = values[0]
            elif isinstance(values, Mapping) and values:
                out[name] = next(iter(values.items()))
            else:
                out[name] = None if name in _POD_ARGS else f"<{name} of each map index>"
        return out
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
        return dict(value[0])
    return {}


def _expanded_names(task: Any) -> set[str]:
    value = getattr(task._get_specified_expand_input(), "value", None)
    if isinstance(value, Mapping):
        return set(value)
    if isinstance(value, (list, tuple)):
        return {key for item in value if isinstance(item, Mapping) for key in item}
    return set()


def apply_mapped(task: Any) -> None:
    """Make a mapped task allotment-aware when its operator is allotment's or its callable
    carries a spec (see the module docs); leave every other mapped task alone."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator as _KubernetesPodOperator

    from .operators import ResourcesMixin, _merged_default_args, _with_resources
    from .wiring import setup, task_target

    if getattr(task, PROBE, None) is not None:
        return
    cls = task.operator_class
    function = _callable(task)
    spec = spec_of(function) if function is not None else None
    ours = isinstance(cls, type) and issubclass(cls, ResourcesMixin)
    if not ours and spec is None:
        return
    expanded = sorted(_expanded_names(task) & set(_SPEC_ARGS))
    if expanded:
        raise AllotmentError(
            f"expands over {', '.join(expanded)}, but the spec is one for every map index",
            step=str(task.task_id),
            accepted="give resources= and retry_memory_factor= in .partial(); expand over the operator's own "
            "container_resources to size the indexes differently",
        )
    if not ours and issubclass(cls, _KubernetesPodOperator):
        cls = _with_resources(cls)
        task.operator_class = cls
        ours = True
    with _building_probe():
        probe = task.unmap(_placeholders(task))
    if ours:
        record = task_spec(probe)
        if record is None:  # built without a spec (the error was kept for the cluster policy, or none applies)
            from .failures import raise_deferred

            raise_deferred(probe)
            return
    else:
        backend, _ = task_target(probe)
        if spec is not None and spec.backend is not None and backend is not None and spec.backend != backend:
            return  # pinned to another backend than its executor's: left alone
        record = setup(probe, default_args=_merged_default_args(task), fill_airflow_resources=False, mapped=True)
        if record.target is None:
            return
        task.partial_kwargs["executor_config"] = probe.executor_config
    per_index = sorted(_expanded_names(task) & set(_POD_ARGS))
    notes = (
        (f"{', '.join(per_index)} differ per map index: each index's is read, and checked by the policy, when it runs",)
        if per_index
        else ()
    )
    record = dataclasses.replace(record, mapped=True, notes=(*record.notes, *notes))
    object.__setattr__(probe, ATTR, record)
    object.__setattr__(task, ATTR, record)
    object.__setattr__(task, PROBE, probe)
