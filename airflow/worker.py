"""A plain task's worker pod on the KubernetesExecutor, for one run and one try (issue 10, scope 3).

The KubernetesExecutor builds a task's worker pod in the scheduler, from the task instance's
``executor_config``, before any of the task's code runs. So a run's ``dag_run.conf`` overrides
and the memory growth of a retry reach that pod through Airflow's own scheduler-side hooks
(allotment's cluster policy registers both, :mod:`allotment.airflow.policy`):

1. **When the DAG file is parsed** (:func:`allotment.airflow.wiring.setup`), the task's
   ``executor_config`` gets the ``pod_override`` for the spec as parsed and, under
   ``executor_config["allotment"]``, the spec as plain data (:meth:`TaskSpec.to_data`, resource
   values only) and the user's own ``pod_override``.
2. **When the scheduler creates the task instance for a run**, ``task_instance_mutation_hook``
   gets the run (``dag_run``): :func:`for_run` resolves the spec with the run's
   ``dag_run.conf["allotment"]`` (validated and policy-checked exactly as an operator does) and
   sets the instance's ``executor_config`` to the ``pod_override`` for that run. Its metadata
   carries an annotation (:data:`ANNOTATION`) with the spec and the run's allotment block.
3. **When the executor builds the pod for a try** (``PodGenerator.construct_pod``, which runs the
   pod mutation hooks last), ``pod_mutation_hook`` reads that annotation and the pod's own
   ``try_number`` annotation and takes the annotation off. For a retry of a task whose memory
   grows, it counts the earlier tries that ended in an OOM kill (docs/design.md §7.3): the record
   in Airflow's task state store (:mod:`allotment.airflow.tries`), completed from the earlier
   tries' worker pods, which the executor keeps when they fail (``[kubernetes_executor]
   delete_worker_pods_on_failure`` is False by default; a deleted one counts as no OOM kill): a
   base container that terminated ``OOMKilled`` is an OOM kill, any other end is not. What it
   learns goes back into the record (through Airflow's state backend: the scheduler has no task
   context), and the base container gets the memory grown once per OOM kill
   (:meth:`Resolved.with_memory_after <allotment.facade.Resolved.with_memory_after>`, the one
   rule for growth), the reason in the scheduler's log.
4. **When the task starts in its pod**, a pre-execute check resolves the spec for the run and
   try once more (reading the same record, so with the same count), logs what the pod asks for
   and why, and fails the task for good (``AirflowFailException``, no retry) when the run's conf
   is bad or breaks the policy. The scheduler's hook does not raise for such a conf (it must
   never stop the scheduler): it leaves the parsed ``pod_override``, so nothing from the run
   reaches the pod, and logs why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection, Mapping
from datetime import UTC
from typing import Any, Final

from allotment.facade import TARGETS, AllotmentError, TryEnd, compile_pod, pod_try_end

from .config import active_settings
from .kube import pod_from_dict, to_dict
from .tasks import WORKER, TaskSpec
from .tries import Earlier, Learner, TryEntry, count_earlier

__all__ = [
    "ANNOTATION",
    "RECIPE",
    "earlier_worker_tries",
    "for_run",
    "install_check",
    "mutate_task_instance",
    "mutate_worker_pod",
    "with_recipe",
]

RECIPE: Final = "allotment"
"""``executor_config[RECIPE]``: the spec as plain data and the user's own ``pod_override``."""
ANNOTATION: Final = "allotment/run"
"""The ``pod_override`` annotation that carries the spec and a run's allotment block to the pod mutation hook."""

log = logging.getLogger(__name__)


def with_recipe(config: Mapping[str, Any], spec: TaskSpec) -> dict[str, Any]:
    """``config`` (an ``executor_config`` allotment filled) with the spec and the user's own ``pod_override`` kept under :data:`RECIPE`."""
    user_pod = (spec.user_executor_config or {}).get("pod_override")
    out = dict(config)
    out[RECIPE] = {"spec": spec.to_data(), "user_pod_override": to_dict(user_pod) if user_pod is not None else None}
    return out


def _recipe(executor_config: Any) -> tuple[TaskSpec, dict[str, Any]] | None:
    """The spec and the user's own ``executor_config`` kept in an ``executor_config``, or None."""
    if not isinstance(executor_config, Mapping):
        return None
    recipe = executor_config.get(RECIPE)
    if not isinstance(recipe, Mapping) or not isinstance(recipe.get("spec"), Mapping):
        return None
    user_config = {key: value for key, value in executor_config.items() if key not in ("pod_override", RECIPE)}
    if recipe.get("user_pod_override"):
        user_config["pod_override"] = pod_from_dict(recipe["user_pod_override"])
    spec = dataclasses.replace(TaskSpec.from_data(recipe["spec"]), user_executor_config=user_config)
    return (spec, user_config) if spec.target == WORKER else None


def for_run(executor_config: Mapping[str, Any], conf: Any, *, task_ids: Collection[str] | None = None) -> dict[str, Any]:
    """The ``executor_config`` of one run of a task whose ``executor_config`` allotment filled:
    its ``pod_override`` for the run's ``conf`` (validated and policy-checked; raises on a bad
    one), annotated for the pod mutation hook (:data:`ANNOTATION`)."""
    from .executors import pod_override_config, worker_template
    from .resolution import resolve_spec
    from .runtime import CONF_KEY

    found = _recipe(executor_config)
    if found is None:
        return dict(executor_config)
    spec, user_config = found
    settings = active_settings()
    template = worker_template(spec.task_id, user_config)
    resolved = resolve_spec(spec, settings, conf=conf, task_ids=task_ids, more=template.sources)
    config = pod_override_config(resolved, settings.profile, user_config, template)
    config[RECIPE] = executor_config[RECIPE]
    block = conf.get(CONF_KEY) if isinstance(conf, Mapping) else None
    baked = dataclasses.replace(spec, extra=(*spec.extra, *template.sources))  # the template is read here, not again per try
    pod = config["pod_override"]
    if pod.metadata is None:
        from kubernetes.client import models as k8s

        pod.metadata = k8s.V1ObjectMeta()
    pod.metadata.annotations = {
        **(pod.metadata.annotations or {}),
        ANNOTATION: json.dumps({"spec": baked.to_data(), "conf": {CONF_KEY: block} if block is not None else None}, sort_keys=True),
    }
    return config


def mutate_task_instance(task_instance: Any, dag_run: Any) -> None:
    """``task_instance_mutation_hook``: a task instance allotment sizes on the KubernetesExecutor gets
    the ``executor_config`` of its run (:func:`for_run`). A bad conf leaves the parsed one (logged;
    the task fails for good when it starts); nothing here may stop the scheduler."""
    if dag_run is None:
        return
    config = getattr(task_instance, "executor_config", None)
    if not isinstance(config, Mapping) or _recipe(config) is None:
        return
    task = getattr(task_instance, "task", None)
    dag = getattr(task, "dag", None) if task is not None else None
    task_ids = set(dag.task_ids) if dag is not None else None
    task_id = getattr(task_instance, "task_id", "?")
    try:
        task_instance.executor_config = for_run(config, getattr(dag_run, "conf", None) or {}, task_ids=task_ids)
        return
    except AllotmentError as e:
        log.warning(
            "allotment: task %s of run %s keeps the worker pod of its DAG file: %s (the task fails for good when it starts)",
            task_id,
            getattr(dag_run, "run_id", "?"),
            e,
        )
    except Exception:
        log.exception("allotment: could not size the worker pod of task %s for its run", task_id)
        return
    try:
        task_instance.executor_config = for_run(config, None, task_ids=task_ids)  # nothing of the run's conf
    except Exception:
        log.exception("allotment: could not size the worker pod of task %s for its run", task_id)


def mutate_worker_pod(pod: Any) -> None:
    """``pod_mutation_hook``: a worker pod whose ``pod_override`` :func:`for_run` annotated gets the
    memory of its try (from the pod's ``try_number`` annotation); the annotation is taken off.
    Every other pod is left alone."""
    metadata = getattr(pod, "metadata", None)
    annotations = getattr(metadata, "annotations", None)
    if not annotations or ANNOTATION not in annotations:
        return
    data = json.loads(annotations.pop(ANNOTATION))
    try_number = int(annotations.get("try_number") or 1)
    if try_number <= 1:
        return
    from .resolution import resolve_spec

    spec = TaskSpec.from_data(data["spec"])
    settings = active_settings()
    if resolve_spec(spec, settings, conf=data.get("conf")).retry_growth(settings.policy) is None:
        return  # memory does not grow: the run's pod_override is the pod
    task_id = annotations.get("task_id")
    earlier = earlier_worker_tries(pod, try_number)
    for line in earlier.lines:
        log.info("allotment: task %s, worker pod of try %s: earlier %s", task_id, try_number, line)
    if earlier.oom_kills == 0:
        return  # no OOM kill before this try: the run's pod_override is the pod
    resolved = resolve_spec(spec, settings, conf=data.get("conf"), try_number=try_number, oom_kills=earlier.oom_kills)
    for note in resolved.notes:
        log.info("allotment: task %s, worker pod of try %s: %s", task_id, try_number, note)
    parts = compile_pod(resolved, settings.profile)
    key = str(TARGETS["memory"].kubernetes)
    memory = parts.resources.requests.get(key) if parts.resources is not None else None
    containers = getattr(getattr(pod, "spec", None), "containers", None) or []
    if memory is None or not containers:
        return
    from kubernetes.client import models as k8s

    base = containers[0]  # the executor's base container (reconciled by position)
    current = base.resources or k8s.V1ResourceRequirements()
    current.requests = {**(current.requests or {}), key: memory}
    current.limits = {**(current.limits or {}), key: memory}
    base.resources = current


class _SchedulerStore:
    """The task state store of one task instance, from the scheduler (no task is running there):
    Airflow's state backend, with values as JSON text, exactly as the execution API keeps what a
    task writes (``context["task_state_store"]`` reads them back)."""

    def __init__(self, scope: Any) -> None:
        self.scope = scope

    def get(self, key: str, default: Any = None) -> Any:
        from airflow.state import get_state_backend

        value = get_state_backend().get(self.scope, key)
        return default if value is None else json.loads(value)

    def set(self, key: str, value: Any) -> None:
        from datetime import datetime, timedelta

        from airflow.configuration import conf
        from airflow.state import get_state_backend

        days = conf.getint("state_store", "default_retention_days", fallback=30)
        expires = datetime.now(tz=UTC) + timedelta(days=days) if days > 0 else None
        get_state_backend().set(self.scope, key, json.dumps(value), expires_at=expires)


def _worker_pods_learner(pod: Any) -> Learner:
    """Ask the Kubernetes API how earlier tries ended, by the earlier worker pods of the task
    instance (the executor keeps failed ones unless ``delete_worker_pods_on_failure``)."""

    def learn(missing: Mapping[int, TryEntry]) -> dict[int, tuple[TryEnd, str]]:
        from airflow.providers.cncf.kubernetes.kube_client import get_kube_client

        labels = pod.metadata.labels or {}
        wanted = {k: labels[k] for k in ("dag_id", "task_id", "run_id", "map_index") if k in labels}
        selector = ",".join(f"{k}={v}" for k, v in sorted({**wanted, "kubernetes_executor": "True"}.items()))
        found = get_kube_client().list_namespaced_pod(namespace=pod.metadata.namespace, label_selector=selector).items or []
        out: dict[int, tuple[TryEnd, str]] = {}
        for earlier in found:
            text = str((earlier.metadata.labels or {}).get("try_number", ""))
            number = int(text) if text.isdigit() and len(text) < 10 else 0
            if number not in missing:
                continue
            end = pod_try_end(to_dict(earlier), "base")
            if end is not None and (number not in out or end.oom_killed):
                out[number] = (end, f"worker pod {earlier.metadata.name}")
        return out

    return learn


def earlier_worker_tries(pod: Any, try_number: int) -> Earlier:
    """What the worker pod of try ``try_number`` (being built) knows of the earlier tries of its
    task instance: the record in the task state store, completed from the earlier worker pods."""
    from airflow.state import TaskScope

    annotations = pod.metadata.annotations or {}
    map_index = str(annotations.get("map_index", "-1"))
    scope = TaskScope(
        dag_id=str(annotations.get("dag_id")),
        run_id=str(annotations.get("run_id")),
        task_id=str(annotations.get("task_id")),
        map_index=int(map_index) if map_index.lstrip("-").isdigit() else -1,
    )
    return count_earlier(_SchedulerStore(scope), try_number, _worker_pods_learner(pod))


def install_check(task: Any) -> None:
    """Make the task resolve its spec for the run and try when it starts in its worker pod (see
    the module docs), before the user's own pre-execute hook."""
    previous = getattr(task, "_pre_execute_hook", None)
    if getattr(previous, "_allotment_check", False):
        return
    from .resolution import resolve_at_execute

    def allotment_check(context: Any) -> None:
        resolve_at_execute(task, context, lambda resolved: None, before="the task's code runs")
        if previous is not None:
            previous(context)

    allotment_check._allotment_check = True  # type: ignore[attr-defined]
    task._pre_execute_hook = allotment_check
