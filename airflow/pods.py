"""What a pod task's own pod settings and its pod template already ask for (docs/design.md §2, §3).

A KubernetesPodOperator (or ``@task.kubernetes``) builds its pod from a **pod template**
(``pod_template_file``, ``pod_template_dict``, ``full_pod_spec``), reconciled with the
operator's own arguments. For allotment both are step sources like any other:

* the resources of the template's base container (its first container, which the provider
  reconciles with the operator's), and a sized memory ``emptyDir`` the template mounts at
  ``/dev/shm``: source ``pod template <which one>``;
* the operator's own ``container_resources`` (after templating, when the task runs) and a
  sized ``/dev/shm`` volume among its own ``volumes``: sources ``container_resources= on <operator>``
  and ``volumes= on <operator>``.

They join the maximum with ``@resources``/``resources=``, the policy checks the result, and
``explain`` names them (:func:`allotment.facade.read_pod` reads them). What is left of the
user's settings (other resource keys, a CPU limit, other volumes and mounts, the node selector,
the tolerations) is kept and merged with what the spec adds, the operator's taking the
template's place as the provider's own reconciliation does (its lists replace the template's,
its volumes and mounts come after the template's); a real conflict is an error naming both.

The pod is then built by the provider's own ``build_pod_request_obj`` from the merged parts,
given as the operator's arguments, and the template with those parts taken out (so the
provider's reconciliation, which would drop the template's tolerations and resources whenever
the operator has its own, cannot undo the merge).

A setting that holds a Jinja template when the DAG file is parsed is read only when the task
runs, after templating; what it asks for then counts as runtime input (``runtime.caps``).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from allotment.facade import AllotmentError, PodRead, Resources, Source, is_templated, read_pod

from .kube import to_dict

__all__ = ["OWN_ATTRS", "TEMPLATE_ATTRS", "PodSettings", "pod_settings", "template_parts", "templated_attrs"]

OWN_ATTRS: Final = ("container_resources", "volumes", "volume_mounts", "node_selector", "tolerations")
"""The operator arguments that carry pod settings allotment reads and merges."""
TEMPLATE_ATTRS: Final = ("pod_template_file", "pod_template_dict", "full_pod_spec")
"""The operator arguments that name its pod template, in the order the provider reads them."""
SHM_PATH: Final = "/dev/shm"


@dataclass(frozen=True)
class PodSettings:
    """A pod task's own settings, read (see the module docs).

    ``sources``: the step sources they give; ``notes``: what ``explain`` and the task log say
    about them; ``user``: what is left of them, as plain parts for :func:`allotment.facade.fit_pod`;
    ``resources``/``claims``/``volumes``/``volume_mounts``/``node_selector``/``tolerations``: the
    same as the operator's arguments (client objects kept as the user gave them);
    ``template``: the pod template with those parts taken out, or None; ``user_source``: how a
    conflict names the user's side."""

    sources: tuple[tuple[Resources, Source], ...]
    notes: tuple[str, ...]
    user: Mapping[str, Any]
    resources: Mapping[str, Any]
    claims: Any
    volumes: tuple[Any, ...]
    volume_mounts: tuple[Any, ...]
    node_selector: Mapping[str, str]
    tolerations: tuple[Any, ...]
    template: Any
    user_source: str


def templated_attrs(task: Any) -> frozenset[str]:
    """The operator's pod-setting arguments that hold a Jinja template now."""
    found: set[str] = set()
    for attr in (*OWN_ATTRS, "pod_template_file", "pod_template_dict"):
        value = getattr(task, attr, None)
        if value is not None and is_templated(to_dict(value)):
            found.add(attr)
    return frozenset(found)


def _get(obj: Any, snake: str, camel: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(camel, obj.get(snake))
    return getattr(obj, snake, None)


def _without_shm(items: Sequence[Any], read: PodRead, *, mounts: bool) -> list[Any]:
    if read.shm_volume is None:
        return list(items)
    if mounts:
        return [m for m in items if not (_get(m, "name", "name") == read.shm_volume and _get(m, "mount_path", "mountPath") == SHM_PATH)]
    return [v for v in items if _get(v, "name", "name") != read.shm_volume]


def _load_template(task: Any, step: str, kind: str, running: bool, templated: frozenset[str]) -> tuple[Any, str | None, list[str]]:
    """The pod template the provider starts from, as it loads it: ``pod_template_file``, else
    ``pod_template_dict``, each reconciled with ``full_pod_spec``, else ``full_pod_spec``."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    path, data, full = (getattr(task, attr, None) for attr in TEMPLATE_ATTRS)
    notes: list[str] = []
    if not path and not data:
        return (copy.deepcopy(full), f"full_pod_spec on {kind}", notes) if full is not None else (None, None, notes)
    attr = "pod_template_file" if path else "pod_template_dict"
    label = f"pod_template_file {path!r} on {kind}" if path else f"pod_template_dict on {kind}"
    if full is not None:
        label += " (with its full_pod_spec)"
    if not running and attr in templated:
        notes.append(f"{attr} on {kind} holds a Jinja template: the resources of its pod template are read when the task runs")
        return None, None, notes
    if path:
        if not os.path.isfile(str(path)):
            if running:
                raise AllotmentError(
                    f"names pod_template_file {path!r}, which does not exist here",
                    step=step,
                    accepted="give the path of a pod template YAML file the worker can read",
                )
            notes.append(f"pod_template_file {path!r} on {kind} does not exist here: its resources are read when the task runs")
            return None, None, notes
        template = PodGenerator.deserialize_model_file(str(path))
    else:
        template = PodGenerator.deserialize_model_dict(copy.deepcopy(dict(data or {})))
    if full is not None:
        template = PodGenerator.reconcile_pods(template, full)
    return template, label, notes


def template_parts(template: Any) -> dict[str, Any]:
    """The parts of a pod template that allotment reads and merges, as plain camelCase data:
    its first container's ``resources`` and ``volumeMounts``, its ``volumes``, ``nodeSelector``
    and ``tolerations`` (the provider reconciles containers by position)."""
    data = to_dict(template) or {}
    spec = data.get("spec") or {}
    containers = spec.get("containers") or []
    base = containers[0] if containers else {}
    parts = {
        "resources": base.get("resources"),
        "volumes": spec.get("volumes"),
        "volumeMounts": base.get("volumeMounts"),
        "nodeSelector": spec.get("nodeSelector"),
        "tolerations": spec.get("tolerations"),
    }
    return {key: value for key, value in parts.items() if value}


def _stripped(template: Any) -> Any:
    """``template`` without what allotment now gives as the operator's arguments."""
    out = copy.deepcopy(template)
    spec = getattr(out, "spec", None)
    if spec is None:
        return out
    if spec.containers:
        spec.containers[0].resources = None
        spec.containers[0].volume_mounts = None
    spec.volumes = None
    spec.node_selector = None
    spec.tolerations = None
    return out


def _sources(read: PodRead, resources_source: Source, shm_source: Source) -> list[tuple[Resources, Source]]:
    out: list[tuple[Resources, Source]] = []
    if not read.resources.is_empty():
        out.append((read.resources, resources_source))
    if not read.shared_memory.is_empty():
        out.append((read.shared_memory, shm_source))
    return out


def _still_templated(read: PodRead, step: str, source: str) -> None:
    """A value that holds a template marker once the task runs is hostile input, never rendered."""
    if read.templated:
        where, raw = read.templated[0]
        raise AllotmentError(
            "holds a Jinja template marker after templating (allotment never renders a value twice)",
            step=step,
            field=where,
            value=raw,
            source=source,
            accepted="render the value to a quantity such as '16Gi' or '4'",
        )


def _templated_note(read: PodRead, source: str) -> list[str]:
    if not read.templated:
        return []
    shown = ", ".join(f"{where} {raw!r}" for where, raw in read.templated)
    return [f"{source}: {shown} held a Jinja template when the DAG file was parsed; read when the task runs, after templating"]


_read_once: ContextVar[dict[tuple[int, bool, frozenset[str]], PodSettings] | None] = ContextVar("allotment_pod_settings", default=None)


@contextlib.contextmanager
def read_once() -> Iterator[None]:
    """Within the block, :func:`pod_settings` reads each task's settings once: the DAG-file parse
    (:func:`allotment.airflow.wiring.setup`) reads them to resolve and again to check the pod, and
    nothing changes them in between."""
    token = _read_once.set({})
    try:
        yield
    finally:
        _read_once.reset(token)


def pod_settings(task: Any, step: str, *, running: bool, templated: frozenset[str] = frozenset()) -> PodSettings:
    """Read a pod task's own settings and its pod template (see the module docs).

    ``running``: the task is running and its template fields are rendered (else it is being
    parsed or rendered offline, and templated settings are left for later). ``templated``: the
    settings that held a template at parse time (their values count as runtime input)."""
    memo = _read_once.get()
    key = (id(task), running, templated)
    if memo is not None and key in memo:
        return memo[key]
    found = _pod_settings(task, step, running=running, templated=templated)
    if memo is not None:
        memo[key] = found
    return found


def _pod_settings(task: Any, step: str, *, running: bool, templated: frozenset[str]) -> PodSettings:
    kind = type(task).__name__
    notes: list[str] = []
    sources: list[tuple[Resources, Source]] = []

    own_resources = getattr(task, "container_resources", None)
    own_volumes = list(getattr(task, "volumes", None) or [])
    own_mounts = list(getattr(task, "volume_mounts", None) or [])
    own_selector = dict(getattr(task, "node_selector", None) or {})
    own_tolerations = list(getattr(task, "tolerations", None) or [])
    own_data: dict[str, Any] = {
        "resources": to_dict(own_resources) if own_resources is not None else None,
        "volumes": to_dict(own_volumes),
        "volumeMounts": to_dict(own_mounts),
    }
    own_label = f"container_resources= on {kind}"
    own = read_pod({k: v for k, v in own_data.items() if v}, step=step, source=own_label)
    if running:
        _still_templated(own, step, own_label)
    notes += _templated_note(own, own_label)
    notes += list(own.notes)
    runtime = running and bool(templated & {"container_resources"})
    sources += _sources(
        own,
        Source("container_resources=", f"on {kind}" + (" (templated)" if runtime else ""), runtime=runtime),
        Source(
            "volumes=",
            f"on {kind} (volume {own.shm_volume!r} at {SHM_PATH})",
            runtime=running and bool(templated & {"volumes", "volume_mounts"}),
        ),
    )

    template, label, template_notes = _load_template(task, step, kind, running, templated)
    notes += template_notes
    template_rest: dict[str, Any] = {}
    template_volumes: list[Any] = []
    template_mounts: list[Any] = []
    template_selector: dict[str, str] = {}
    template_tolerations: list[Any] = []
    template_clash = False
    if template is not None and label is not None:
        read = read_pod(template_parts(template), step=step, source=label)
        if running:
            _still_templated(read, step, label)
        notes += _templated_note(read, label) + list(read.notes)
        runtime = running and bool(templated & {"pod_template_file", "pod_template_dict"})
        detail = label + (" (templated)" if runtime else "")
        sources += _sources(
            read,
            Source("pod template", detail, runtime=runtime),
            Source("pod template", f"{detail} (volume {read.shm_volume!r} at {SHM_PATH})", runtime=runtime),
        )
        spec = template.spec
        base = spec.containers[0] if spec is not None and spec.containers else None
        template_volumes = _without_shm(list(spec.volumes or []) if spec is not None else [], read, mounts=False)
        template_mounts = _without_shm(list(base.volume_mounts or []) if base is not None else [], read, mounts=True)
        template_selector = dict(spec.node_selector or {}) if spec is not None else {}
        template_tolerations = list(spec.tolerations or []) if spec is not None else []
        if read.rest.resources is not None:
            template_rest = read.rest.resources.to_dict()
        rest = read.rest.to_dict()
        template_clash = bool(
            rest.get("resources")
            or (rest.get("nodeSelector") and not own_selector)
            or (rest.get("tolerations") and not own_tolerations)
            or any(m.get("mountPath") == SHM_PATH for m in rest.get("volumeMounts") or [])
        )

    # What is left, the operator's own in the template's place (as the provider reconciles them).
    resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        resources[section].update(template_rest.get(section) or {})
        if own.rest.resources is not None:
            resources[section].update(getattr(own.rest.resources, section))
    volumes = [*template_volumes, *_without_shm(own_volumes, own, mounts=False)]
    mounts = [*template_mounts, *_without_shm(own_mounts, own, mounts=True)]
    selector = own_selector or template_selector
    tolerations = own_tolerations or template_tolerations
    user = {
        "resources": resources if resources["requests"] or resources["limits"] else None,
        "volumes": to_dict(volumes),
        "volumeMounts": to_dict(mounts),
        "nodeSelector": selector,
        "tolerations": to_dict(tolerations),
    }
    user_source = f"the {kind}'s own container_resources/volumes/volume_mounts/node_selector/tolerations"
    if template_clash and label is not None:
        user_source += f" or its {label.removesuffix(f' on {kind}')}"
    return PodSettings(
        tuple(sources),
        tuple(notes),
        {key: value for key, value in user.items() if value},
        resources,
        getattr(own_resources, "claims", None) if own_resources is not None and not isinstance(own_resources, Mapping) else None,
        tuple(volumes),
        tuple(mounts),
        selector,
        tuple(tolerations),
        _stripped(template) if template is not None else None,
        user_source,
    )
