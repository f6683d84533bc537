"""Executors (issue 3b): a plain task on the KubernetesExecutor or the AwsBatchExecutor gets its spec.

A task runs on the KubernetesExecutor when its own ``executor=`` names it, or when it names no
executor and the KubernetesExecutor is the default (the first entry of ``[core] executor``).
For such a task whose callable carries ``@resources`` (or an allotment operator that is not a
pod operator), allotment fills ``executor_config["pod_override"]``: the ``base`` container's
resources and the shared-memory mount, the pod's shared-memory volume, GPU tolerations and node selector,
merged with the user's own ``pod_override`` (kept; a conflict is an error naming both).

Under the LocalExecutor or CeleryExecutor nothing is sent to Kubernetes and ``executor_config``
is left alone. A KubernetesPodOperator task is different: its spec sizes the pod it launches,
not the worker that launches it, so its ``executor_config`` is left alone as well.

On the **AwsBatchExecutor** (issue 5, 3b) the same task gets the camelCase SubmitJob fragment
the executor merges into its ``[aws_batch_executor]`` SubmitJob kwargs:
``executor_config["containerOverrides"]["resourceRequirements"]``, the complete list (the
executor's ``merge_dicts`` replaces lists, so a partial list would drop the configured
MEMORY or VCPU), completed from the executor's own configured list where the spec sets nothing
or only a default. The user's own ``executor_config`` is kept (a conflicting
``resourceRequirements`` entry is an error naming both). The platform is ``@batch(platform=...)``,
else ``ec2``; the executor runs no EKS jobs and submits every task with the one job definition
of its configuration, so ``platform="eks"``, ``shared_memory`` and disk on Fargate are errors
there (allotment's BatchOperator registers the job-definition revision they need). Disk on EC2
is a warning (:class:`allotment.awsbatch.AllotmentWarning`), as everywhere on Batch.

The KubernetesExecutor's pod template (``executor_config["pod_template_file"]``, else
``[kubernetes_executor] pod_template_file``) is read as the executor reads it: its base
container's resources are a step source, its tolerations and node selector are kept (the
executor lets ``pod_override``'s replace them, so the override carries them merged).

The ``pod_override`` is filled when the DAG is parsed; a run's ``dag_run.conf`` and the memory
growth of a retry reach the worker pod through the scheduler's hooks
(:mod:`allotment.airflow.worker`). The AwsBatchExecutor's ``executor_config`` stays the parsed
one: conf overrides and retry growth on Batch apply to allotment's BatchOperator.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from allotment.facade import (
    SHM_VOLUME,
    AllotmentError,
    BatchPlan,
    PodParts,
    PodRead,
    Resolved,
    Resources,
    Source,
    compile_batch,
    describe_value,
    fit_pod,
    merge_container_overrides,
    read_pod,
)

from .kube import pod_from_dict, to_dict

__all__ = [
    "AWS_BATCH_EXECUTOR",
    "KUBERNETES_EXECUTOR",
    "SNAKE_CASE_KEYS",
    "WorkerTemplate",
    "batch_executor_base",
    "batch_executor_config",
    "configured_executors",
    "executor_class",
    "executor_config",
    "executor_template_path",
    "on_batch_executor",
    "on_kubernetes_executor",
    "pod_override_config",
    "worker_pod",
    "worker_template",
]

KUBERNETES_EXECUTOR: Final = "KubernetesExecutor"
AWS_BATCH_EXECUTOR: Final = "AwsBatchExecutor"
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

WORKER_ARGS: Final = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "<workload>"]
"""Placeholder worker command in rendered worker pods (the executor puts the real workload there)."""


def configured_executors() -> list[str]:
    """``[core] executor`` as a list; the first entry is the default executor."""
    from airflow.providers.common.compat.sdk import conf

    raw = conf.get("core", "executor", fallback="LocalExecutor") or "LocalExecutor"
    return [part.strip() for part in str(raw).split(",") if part.strip()]


def executor_class(name: str | None, configured: list[str] | None = None) -> str:
    """The class name of an executor named by alias, class name or module path (None: the default)."""
    configured = configured_executors() if configured is None else configured
    if name is None:
        name = configured[0] if configured else "LocalExecutor"
    for entry in configured:
        alias, sep, path = entry.partition(":")
        if sep and name == alias:
            name = path
            break
    _, _, path = name.rpartition(":")
    return path.rsplit(".", 1)[-1]


def on_kubernetes_executor(task: Any) -> bool:
    """True when ``task`` runs on the KubernetesExecutor (its own ``executor=`` or the default)."""
    return executor_class(getattr(task, "executor", None)) == KUBERNETES_EXECUTOR


def on_batch_executor(task: Any) -> bool:
    """True when ``task`` runs on the AwsBatchExecutor (its own ``executor=`` or the default)."""
    return executor_class(getattr(task, "executor", None)) == AWS_BATCH_EXECUTOR


def batch_executor_base() -> dict[str, Any]:
    """The SubmitJob kwargs the AwsBatchExecutor is configured with (``[aws_batch_executor]``), read
    the way the executor reads them; empty when the configuration names none or cannot be read
    (the executor itself reports that)."""
    from airflow.providers.common.compat.sdk import conf

    try:
        from airflow.providers.amazon.aws.executors.batch.batch_executor_config import build_submit_kwargs

        return dict(build_submit_kwargs(conf))
    except (ImportError, KeyError, ValueError):
        return {}


def batch_executor_config(
    resolved: Resolved, user_config: Mapping[str, Any] | None, *, platform: str | None = None, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``executor_config`` for a task on the AwsBatchExecutor: the user's own with the complete
    ``containerOverrides.resourceRequirements`` (:func:`executor_config`).
    ``base``: the executor's SubmitJob kwargs (default: read from the Airflow config now)."""
    plan = compile_batch(resolved, platform)
    return executor_config(plan, resolved, user_config, base=batch_executor_base() if base is None else base)


@dataclass(frozen=True)
class WorkerTemplate:
    """The pod template the KubernetesExecutor starts a task's worker pod from, read.

    ``label`` names it; ``sources``: what its base container asks for (step sources, docs/design.md
    §2); ``read``: the core's reading (what is left of it, the ``/dev/shm`` volume it sizes)."""

    label: str
    sources: tuple[tuple[Resources, Source], ...]
    read: PodRead | None
    notes: tuple[str, ...] = ()


def executor_template_path(user_config: Mapping[str, Any] | None) -> str | None:
    """The pod template file the KubernetesExecutor starts a task's worker pod from:
    ``executor_config["pod_template_file"]``, else ``[kubernetes_executor] pod_template_file``;
    None when neither is set (the executor then starts from an empty pod)."""
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig

    chosen = (user_config or {}).get("pod_template_file") or KubeConfig().pod_template_file
    return str(chosen) if chosen else None


def worker_template(step: str, user_config: Mapping[str, Any] | None) -> WorkerTemplate:
    """Read the KubernetesExecutor's pod template for a task (see :class:`WorkerTemplate`)."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    from .pods import template_parts

    path = executor_template_path(user_config)
    if path is None:
        return WorkerTemplate("", (), None)
    where = (
        "executor_config['pod_template_file']"
        if (user_config or {}).get("pod_template_file")
        else "the KubernetesExecutor's pod_template_file"
    )
    label = f"{where} {path!r}"
    if not Path(path).is_file():
        raise AllotmentError(
            f"runs on the KubernetesExecutor, whose pod template {path!r} ({where}) does not exist here",
            step=step,
            accepted="point [kubernetes_executor] pod_template_file (or executor_config['pod_template_file']) at a readable pod template",
        )
    template = PodGenerator.deserialize_model_file(path)
    read = read_pod(template_parts(template), step=step, source=label)
    sources: list[tuple[Resources, Source]] = []
    if not read.resources.is_empty():
        sources.append((read.resources, Source("pod template", label)))
    if not read.shared_memory.is_empty():
        sources.append((read.shared_memory, Source("pod template", f"{label} (volume {read.shm_volume!r} at /dev/shm)")))
    notes = list(read.notes)
    if read.templated:
        notes.append(f"{label}: {', '.join(w for w, _ in read.templated)} hold a Jinja template, which the executor does not render")
    return WorkerTemplate(label, tuple(sources), read, tuple(notes))


def _user_pod(resolved: Resolved, user_config: Mapping[str, Any] | None) -> Any:
    from kubernetes.client import models as k8s

    user_pod = (user_config or {}).get("pod_override")
    if user_pod is not None and not isinstance(user_pod, k8s.V1Pod):
        raise AllotmentError(
            f"executor_config['pod_override'] is a {type(user_pod).__name__}, not a V1Pod",
            step=resolved.step,
            accepted="use kubernetes.client.models.V1Pod (the KubernetesExecutor accepts nothing else)",
        )
    return user_pod


def pod_override_config(
    resolved: Resolved, profile: Any, user_config: Mapping[str, Any] | None, template: WorkerTemplate | None = None
) -> dict[str, Any]:
    """``executor_config`` with ``pod_override`` holding the spec, merged with the user's own
    ``pod_override`` and the executor's pod template (``template``, default: read now).

    The executor reconciles template, its own settings and ``pod_override`` in that order: the
    override's resources, node selector and tolerations replace the template's, its volumes
    and mounts are added to the template's. So the override carries the merged resources, node
    selector and tolerations whole (the template's kept), and only the volumes and mounts the
    template lacks. A ``/dev/shm`` volume the template sizes stays the template's: the spec may
    ask for the same size, a larger one is an error naming both (the executor cannot drop it)."""
    config = dict(user_config or {})
    user_pod = _user_pod(resolved, user_config)
    template = template if template is not None else worker_template(resolved.step, user_config)
    data: dict[str, Any] = copy.deepcopy(to_dict(user_pod)) if user_pod is not None else {}
    spec = data.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    if not containers:
        containers.append({"name": "base"})
    base = containers[0]  # the executor reconciles containers by position: the first is the worker's
    rest = template.read.rest if template.read is not None else PodParts()
    rest_data = rest.to_dict()
    resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        resources[section].update((rest_data.get("resources") or {}).get(section) or {})
        resources[section].update((base.get("resources") or {}).get(section) or {})
    user = {
        key: value
        for key, value in {
            "resources": resources if resources["requests"] or resources["limits"] else None,
            "volumes": [*(rest_data.get("volumes") or []), *(spec.get("volumes") or [])],
            "volumeMounts": [*(rest_data.get("volumeMounts") or []), *(base.get("volumeMounts") or [])],
            "nodeSelector": spec.get("nodeSelector") or rest_data.get("nodeSelector"),
            "tolerations": spec.get("tolerations") or rest_data.get("tolerations"),
        }.items()
        if value
    }
    source = "executor_config['pod_override']"
    if _can_clash(rest_data):
        source += f" or {template.label}"
    fitted = fit_pod(resolved, profile, user, user_source=source)
    merged = fitted.merged.to_dict()
    sized = template.read.shared_memory.shared_memory if template.read is not None else None
    if template.read is not None and sized is not None and fitted.value("shared_memory") is not None:
        wanted = resolved.value("shared_memory")
        if wanted != sized:
            won = resolved.winners["shared_memory"]
            raise AllotmentError(
                f"is more than the {describe_value('shared_memory', sized)} of the /dev/shm volume {template.read.shm_volume!r} in "
                f"{template.label}, which pod_override cannot resize (the executor adds "
                "pod_override's volumes to the template's)",
                step=resolved.step,
                field="shared_memory",
                value=describe_value("shared_memory", wanted),
                source=str(won.source),
                accepted=f"ask for at most {describe_value('shared_memory', sized)}, "
                "or drop that volume from the template (allotment adds it)",
            )
        merged["volumes"] = [v for v in merged.get("volumes") or [] if v.get("name") != SHM_VOLUME]
        merged["volumeMounts"] = [m for m in merged.get("volumeMounts") or [] if m.get("name") != SHM_VOLUME]
    in_template = {"volumes": rest_data.get("volumes") or [], "volumeMounts": rest_data.get("volumeMounts") or []}
    merged_resources = {section: values for section, values in (merged.get("resources") or {}).items() if values}
    if merged_resources:
        base["resources"] = merged_resources
    for holder, key in ((base, "volumeMounts"), (spec, "volumes")):
        added = [item for item in merged.get(key) or [] if item not in in_template[key]]
        if added:
            holder[key] = added
        else:
            holder.pop(key, None)
    for key in ("nodeSelector", "tolerations"):
        if merged.get(key):
            spec[key] = merged[key]
    config["pod_override"] = pod_from_dict(data)
    return config


def _can_clash(parts: Mapping[str, Any]) -> bool:
    """True when a template's remaining parts can clash with a spec: resources, a node selector,
    tolerations or something at ``/dev/shm``."""
    return bool(
        parts.get("resources")
        or parts.get("nodeSelector")
        or parts.get("tolerations")
        or any(m.get("mountPath") == "/dev/shm" for m in parts.get("volumeMounts") or [])
    )


def worker_pod(dag_id: str, task_id: str, executor_config: Mapping[str, Any], *, try_number: int = 1, run_id: str | None = None) -> Any:
    """The worker pod the KubernetesExecutor would start for a task, built offline the way
    the executor builds it (its own ``get_base_pod_from_template`` and ``PodGenerator.construct_pod``):
    the pod template (``executor_config["pod_template_file"]``, else ``[kubernetes_executor]
    pod_template_file``, else an empty pod), the executor's own settings, then ``pod_override``;
    the pod mutation hooks run last."""
    import logging

    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import get_base_pod_from_template
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import create_unique_id
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    kube_config = KubeConfig()
    generator_log = logging.getLogger("airflow.providers.cncf.kubernetes.pod_generator")
    level = generator_log.level
    generator_log.setLevel(logging.ERROR)  # "Model file  does not exist" when no template is configured: the executor's empty pod
    try:
        base = get_base_pod_from_template(executor_config.get("pod_template_file"), kube_config)
    finally:
        generator_log.setLevel(level)
    return PodGenerator.construct_pod(
        dag_id=dag_id,
        task_id=task_id,
        pod_id=create_unique_id(dag_id, task_id),
        try_number=try_number,
        kube_image=kube_config.kube_image,
        date=None,
        args=list(WORKER_ARGS),
        pod_override_object=PodGenerator.from_obj(dict(executor_config)),
        base_worker_pod=base,
        namespace=kube_config.executor_namespace,
        scheduler_job_id="render",
        run_id=run_id,
        with_mutation_hook=True,
    )


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
