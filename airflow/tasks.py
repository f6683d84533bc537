"""What allotment knows about one Airflow task, and how it is resolved.

A task carries allotment resources when its callable has a spec (``@resources``,
``@kubernetes``, ``@batch``), when it is an allotment operator (``resources=``, ``step=``), or
both. Its inputs to resolution (docs/design.md §2):

==================================  ==========================================  ==============
input                               from                                        role
==================================  ==========================================  ==============
``@resources`` / ``@kubernetes`` /  the task's callable, or an operator's        step source
``@batch``                          ``step=`` (``spec_of``)
``resources=``                      an allotment operator                       step source
``retry_memory_factor=``            an allotment operator                       step source
``container_resources=``,           a pod operator (after templating, when it    step source
``volumes=`` (a sized ``/dev/shm``) runs)
the base container of a pod         ``pod_template_file`` / ``pod_template_dict``  step source
template                            / ``full_pod_spec``, the KubernetesExecutor's
                                    pod template
``default_args["allotment"]``       the DAG, task group or task ``default_args``  fills gaps
``with`` / ``set``                  env, ``[allotment]`` config, ``dag_run.conf``  runtime
==================================  ==========================================  ==============

The pod settings are read from the task when it is resolved (:mod:`allotment.airflow.pods`),
not kept here: a templated one is read only once the task runs, after templating.

``resources=`` takes an :class:`allotment.Resources`, a dict of allotment fields
(``{"cpu": 4, "memory": "16Gi"}``), or Airflow's own BaseOperator form
(``{"cpus": 4, "ram": 16384, "disk": 10240, "gpus": 1}``). Airflow documents ``ram`` and
``disk`` in MB; allotment reads those numbers as **MiB** (as AWS Batch and Docker count), so
``ram=16384`` is 16 GiB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from allotment.facade import FIELDS, TARGETS, AllotmentError, Layer, Resolved, Resources, Settings, Source, StepSpec, WithSpec

__all__ = [
    "AIRFLOW_FORM",
    "ATTR",
    "BACKEND_NAMES",
    "BATCH_WORKER",
    "DEFAULTS_KEY",
    "JOB",
    "POD",
    "WORKER",
    "TaskSpec",
    "airflow_resources",
    "defaults_from",
    "resources_from_airflow",
    "task_spec",
]

ATTR: Final = "_allotment"
"""The operator attribute holding its :class:`TaskSpec`."""

DEFAULTS_KEY: Final = "allotment"
"""``default_args[DEFAULTS_KEY]``: DAG-level allotment defaults (never ``default_args["resources"]``)."""

AIRFLOW_FORM: Final[dict[str, str]] = {str(t.airflow): name for name, t in TARGETS.items() if t.airflow}
"""Airflow's BaseOperator ``resources`` keys -> allotment fields (``ram``/``disk`` read as MiB)."""

POD: Final = "pod"
"""The spec sizes the pod the task launches (KubernetesPodOperator, ``@task.kubernetes``)."""
WORKER: Final = "worker"
"""The spec sizes the task's own worker pod on the KubernetesExecutor (``pod_override``)."""
JOB: Final = "job"
"""The spec sizes the AWS Batch job the task submits (allotment's BatchOperator)."""
BATCH_WORKER: Final = "batch-worker"
"""The spec sizes the task's own AWS Batch job on the AwsBatchExecutor (``executor_config``)."""

BACKEND_NAMES: Final[dict[str, str]] = {"kubernetes": "Kubernetes", "batch": "AWS Batch", "local": "this machine"}


@dataclass(frozen=True)
class TaskSpec:
    """Everything allotment resolves one task from.

    ``target``: :data:`POD` when the spec sizes a pod the task launches (KubernetesPodOperator,
    ``@task.kubernetes``), :data:`WORKER` when it sizes the task's own worker (a plain task on the
    KubernetesExecutor, through ``executor_config["pod_override"]``), :data:`JOB` when it sizes
    the AWS Batch job the task submits (allotment's BatchOperator), :data:`BATCH_WORKER` when it
    sizes the task's own job on the AwsBatchExecutor (``executor_config["containerOverrides"]``),
    ``None`` when the task runs where no allotment backend acts (Local/Celery executors).
    ``backend``: the backend ``target`` implies (``kubernetes``, ``batch``), or None.
    ``user_executor_config``: the task's ``executor_config`` as the user gave it, before
    allotment filled it. ``templated``: the operator's pod settings (``container_resources``,
    ``pod_template_file``, ...) that held a Jinja template when the DAG file was parsed: what
    they ask for is read when the task runs, and counts as runtime input (``runtime.caps``).
    ``mapped``: the task is mapped (``.expand()``): every map index gets this spec. ``notes``:
    what ``explain`` and the task log say about the task besides its values.

    Immutable and shared between copies of an operator (Airflow deep-copies operators).
    """

    task_id: str
    spec: StepSpec | None
    backend: str | None
    target: str | None
    defaults: tuple[tuple[Resources, Source], ...] = ()
    extra: tuple[tuple[Resources, Source], ...] = ()
    user_executor_config: Mapping[str, Any] | None = None
    templated: frozenset[str] = frozenset()
    mapped: bool = False
    notes: tuple[str, ...] = ()

    def __copy__(self) -> TaskSpec:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TaskSpec:
        return self

    def resolve(
        self,
        settings: Settings,
        *,
        withs: Sequence[WithSpec] = (),
        sets: Sequence[WithSpec] = (),
        more: Sequence[tuple[Resources, Source]] = (),
    ) -> Resolved:
        """Resolve under ``settings`` plus runtime ``withs``/``sets`` (a run's ``dag_run.conf``);
        ``more``: the step sources read from the task's pod settings now (:mod:`allotment.airflow.pods`)."""
        resolved = settings.resolve(
            self.spec,
            step=self.task_id,
            backend=self.backend,
            defaults=self.defaults,
            extra=(*self.extra, *more),
            withs=withs,
            sets=sets,
        )
        if self.backend is not None and resolved.backend != self.backend:
            pinned = self.spec.backend if self.spec else resolved.backend
            raise AllotmentError(
                f"is pinned to {resolved.backend} by @{pinned} but runs on {BACKEND_NAMES.get(self.backend, self.backend)} here",
                step=self.task_id,
                accepted="drop the other backend decorator, or run the step with that backend's operator",
            )
        return resolved

    def to_data(self) -> dict[str, Any]:
        """This spec as plain JSON data (resource values in held units, no user objects), so the
        scheduler can resolve it for a run (:mod:`allotment.airflow.worker`); see :meth:`from_data`."""
        spec = None
        if self.spec is not None:
            spec = {
                "name": self.spec.name,
                "layers": [
                    {"decorator": layer.decorator, "resources": _resources_data(layer.resources), "options": _plain(layer.options)}
                    for layer in self.spec.layers
                ],
            }
        return {
            "task_id": self.task_id,
            "backend": self.backend,
            "target": self.target,
            "spec": spec,
            "defaults": [_sourced_data(r, s) for r, s in self.defaults],
            "extra": [_sourced_data(r, s) for r, s in self.extra],
            "mapped": self.mapped,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TaskSpec:
        """The spec :meth:`to_data` wrote."""
        spec = None
        if data.get("spec") is not None:
            layers = tuple(
                Layer(str(layer["decorator"]), Resources.normalized(**layer["resources"]), _options(layer.get("options") or {}))
                for layer in data["spec"]["layers"]
            )
            spec = StepSpec(str(data["spec"]["name"]), layers)
        return cls(
            str(data["task_id"]),
            spec,
            data.get("backend"),
            data.get("target"),
            tuple(_sourced(item) for item in data.get("defaults") or ()),
            tuple(_sourced(item) for item in data.get("extra") or ()),
            mapped=bool(data.get("mapped")),
        )


def _resources_data(resources: Resources) -> dict[str, Any]:
    return dict(resources.items())


def _sourced_data(resources: Resources, source: Source) -> dict[str, Any]:
    return {"resources": _resources_data(resources), "kind": source.kind, "detail": source.detail, "runtime": source.runtime}


def _sourced(item: Mapping[str, Any]) -> tuple[Resources, Source]:
    source = Source(str(item["kind"]), str(item.get("detail") or ""), runtime=bool(item.get("runtime")))
    return Resources.normalized(**item["resources"]), source


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "node_selector":
            value = MappingProxyType(dict(value))
        elif name == "tolerations":
            value = tuple(MappingProxyType(dict(t)) for t in value)
        out[name] = value
    return MappingProxyType(out)


def resources_from_airflow(value: Any, *, step: str | None = None, source: str = "resources=") -> Resources:
    """``resources=`` as allotment :class:`~allotment.Resources`: a ``Resources``, a dict of
    allotment fields, or Airflow's ``{"cpus", "ram", "disk", "gpus"}`` (``ram``/``disk`` in MiB)."""
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    accepted = (
        "use allotment.Resources, a dict of allotment fields such as {'cpu': 4, 'memory': '16Gi'}, "
        "or Airflow's form {'cpus': 4, 'ram': 16384, 'disk': 10240, 'gpus': 1} (ram and disk in MiB)"
    )
    if not isinstance(value, Mapping):
        raise AllotmentError(f"got a {type(value).__name__} ({value!r})", step=step, source=source, accepted=accepted)
    keys = set(value)
    if keys and keys <= set(AIRFLOW_FORM):
        fields = {AIRFLOW_FORM[key]: raw for key, raw in value.items()}
        return Resources.from_input(fields, step=step, source=f"{source} (Airflow form; ram and disk read as MiB)")
    # "disk" is a key of both forms (MiB in both): only Airflow's own keys make a dict Airflow's form.
    mixed = sorted(keys & (set(AIRFLOW_FORM) - set(FIELDS)))
    ours = sorted(keys & (set(FIELDS) - set(AIRFLOW_FORM)))
    if mixed and ours:
        raise AllotmentError(
            f"mixes Airflow's keys ({', '.join(mixed)}) with allotment's ({', '.join(ours)})",
            step=step,
            source=source,
            accepted=accepted,
        )
    unknown = sorted(keys - set(FIELDS))
    if unknown:
        raise AllotmentError(f"unknown field {unknown[0]!r}", step=step, source=source, accepted=accepted)
    return Resources.from_input(value, step=step, source=source)


def defaults_from(default_args: Mapping[str, Any] | None, *, step: str) -> tuple[tuple[Resources, Source], ...]:
    """The workflow defaults in ``default_args["allotment"]`` (a dict of fields or a Resources)."""
    raw = (default_args or {}).get(DEFAULTS_KEY)
    if raw is None:
        return ()
    source = Source("workflow default", f"default_args[{DEFAULTS_KEY!r}]")
    resources = Resources.from_input(raw, step=step, source=str(source))
    return ((resources, source),) if not resources.is_empty() else ()


def airflow_resources(resolved: Resolved) -> dict[str, int | float]:
    """Airflow's own BaseOperator ``resources`` (``cpus`` in cores, ``ram``/``disk`` in MiB, ``gpus``)
    for a resolved spec, so serialization and the UI show what the task asks for."""
    out: dict[str, int | float] = {}
    for key, field in AIRFLOW_FORM.items():
        value = resolved.value(field)
        if value is None:
            continue
        if field == "cpu":
            out[key] = value // 1000 if value % 1000 == 0 else value / 1000
        else:
            out[key] = int(value)
    return out


def task_spec(task: Any) -> TaskSpec | None:
    """The allotment spec of an Airflow task, if it has one."""
    found = getattr(task, ATTR, None)
    return found if isinstance(found, TaskSpec) else None
