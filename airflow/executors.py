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

Both configs are fixed when the DAG is parsed (the scheduler builds the worker pod, or submits
the worker job, before the task runs), so ``dag_run.conf`` overrides and retry growth apply to
pods and jobs that operators launch only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from allotment.facade import AllotmentError, BatchPlan, Resolved, compile_batch, fit_pod, merge_container_overrides

from .kube import pod_from_dict, to_dict

__all__ = [
    "AWS_BATCH_EXECUTOR",
    "KUBERNETES_EXECUTOR",
    "SNAKE_CASE_KEYS",
    "batch_executor_base",
    "batch_executor_config",
    "configured_executors",
    "executor_class",
    "executor_config",
    "on_batch_executor",
    "on_kubernetes_executor",
    "pod_override_config",
    "worker_pod",
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


def pod_override_config(resolved: Resolved, profile: Any, user_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``executor_config`` with ``pod_override`` holding the spec, merged with the user's own."""
    config = dict(user_config or {})
    user_pod = config.get("pod_override")
    from kubernetes.client import models as k8s

    if user_pod is not None and not isinstance(user_pod, k8s.V1Pod):
        raise AllotmentError(
            f"executor_config['pod_override'] is a {type(user_pod).__name__}, not a V1Pod",
            step=resolved.step,
            accepted="use kubernetes.client.models.V1Pod (the KubernetesExecutor accepts nothing else)",
        )
    data: dict[str, Any] = copy.deepcopy(to_dict(user_pod)) if user_pod is not None else {}
    spec = data.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    if not containers:
        containers.append({"name": "base"})
    base = containers[0]  # the executor reconciles containers by position: the first is the worker's
    user = {
        key: value
        for key, value in {
            "resources": base.get("resources"),
            "volumes": spec.get("volumes"),
            "volumeMounts": base.get("volumeMounts"),
            "nodeSelector": spec.get("nodeSelector"),
            "tolerations": spec.get("tolerations"),
        }.items()
        if value
    }
    merged = fit_pod(resolved, profile, user, user_source="executor_config['pod_override']").merged.to_dict()
    resources = {section: values for section, values in (merged.get("resources") or {}).items() if values}
    if resources:
        base["resources"] = resources
    for holder, key in ((base, "volumeMounts"), (spec, "volumes"), (spec, "nodeSelector"), (spec, "tolerations")):
        if merged.get(key):
            holder[key] = merged[key]
    config["pod_override"] = pod_from_dict(data)
    return config


def _template(executor_config: Mapping[str, Any], configured: str | None) -> str:
    chosen = executor_config.get("pod_template_file") or configured
    if chosen:
        return str(chosen)
    import airflow.providers.cncf.kubernetes as provider

    return str(Path(provider.__file__).parent / "kubernetes_executor_templates" / "basic_template.yaml")


def worker_pod(dag_id: str, task_id: str, executor_config: Mapping[str, Any]) -> Any:
    """The worker pod the KubernetesExecutor would start for a task (try 1), built offline the way
    the executor builds it: the pod template (``executor_config["pod_template_file"]``, else
    ``[kubernetes_executor] pod_template_file``, else the provider's basic template), the
    executor's own settings, then ``pod_override``; the pod mutation hook runs last."""
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import create_unique_id
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    kube_config = KubeConfig()
    return PodGenerator.construct_pod(
        dag_id=dag_id,
        task_id=task_id,
        pod_id=create_unique_id(dag_id, task_id),
        try_number=1,
        kube_image=kube_config.kube_image,
        date=None,
        args=list(WORKER_ARGS),
        pod_override_object=PodGenerator.from_obj(dict(executor_config)),
        base_worker_pod=PodGenerator.deserialize_model_file(_template(executor_config, kube_config.pod_template_file)),
        namespace=kube_config.executor_namespace,
        scheduler_job_id="render",
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
