"""How a pod task's try ended, from the pod itself (KubernetesPodOperator, ``@task.kubernetes``;
docs/design.md §7.3, :mod:`allotment.airflow.tries`).

* **When a try ends** (the operator's ``cleanup``, sync and deferrable alike, before the pod is
  deleted): the pod is read again and its base container's termination judged by the core
  (:func:`allotment.facade.pod_try_end`: ``OOMKilled`` is an OOM kill, anything else is not); the
  end is kept in the task state store under the try that launched the pod (its ``try_number``
  label).
* **A pod whose creation failed** (a 5xx, a lost response: the provider's cleanup then skips the
  pod, having none): if the API server admitted it all the same, it is found by its name and,
  unless it already ended, deleted, so it is not left running beside the next try; the try ended
  with no OOM kill either way, so the next try sends the same spec.
* **When a later try starts** and the record lacks an earlier try's end (its worker died before
  the cleanup), the earlier pods are looked up by the task instance's labels (the provider's own
  selector, without the try number) and judged the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allotment.facade import TryEnd, pod_try_end

from .kube import to_dict
from .tries import Learner, TryEntry, record_end, try_number_of

__all__ = ["learn_from_pods", "record_pod_end"]


def _namespace(task: Any) -> str:
    request = getattr(task, "pod_request_obj", None)
    namespace = getattr(getattr(request, "metadata", None), "namespace", None)
    if not namespace:
        namespace = getattr(task, "namespace", None)
    if not namespace:
        try:
            namespace = task.hook.get_namespace()
        except Exception:
            namespace = None
    return str(namespace or "default")


def _read(task: Any, name: str, namespace: str) -> Any:
    """The pod ``name`` as the API server has it now, or None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return task.client.read_namespaced_pod(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _try_of(pod: Any, default: int) -> int:
    labels = getattr(getattr(pod, "metadata", None), "labels", None) or {}
    text = str(labels.get("try_number", ""))
    return int(text) if text.isdigit() and len(text) < 10 and int(text) >= 1 else default


def record_pod_end(task: Any, context: Mapping[str, Any] | None, pod: Any, remote_pod: Any) -> None:
    """Keep how this try's pod ended (the operator's ``cleanup`` calls it); never raises."""
    try:
        _record(task, context, pod, remote_pod)
    except Exception as e:  # the try's own outcome stands; this one counts as no OOM kill
        task.log.warning("allotment: could not learn how the pod of this try ended (%s: %s)", type(e).__name__, e)


def _record(task: Any, context: Mapping[str, Any] | None, pod: Any, remote_pod: Any) -> None:
    metadata = getattr(pod, "metadata", None)
    name = getattr(metadata, "name", None)
    namespace = getattr(metadata, "namespace", None) or _namespace(task)
    number = try_number_of(context)
    if not name:
        record_end(context, TryEnd(False, "no pod was built"))
        return
    container = str(getattr(task, "base_container_name", None) or "base")
    if not remote_pod:  # the provider's cleanup skips this pod: creating it failed, or it was never seen
        found = _read(task, name, namespace)
        if found is None:
            record_end(context, TryEnd(False, "no pod ran: creating it failed"), by=f"pod {name}")
            return
        end = pod_try_end(to_dict(found), container)
        if end is None:
            task.log.warning(
                "allotment: pod %s exists although this try did not see it start (its creation failed, or the API "
                "server's answer was lost); deleting it, so that it is not left running beside the next try",
                name,
            )
            task.pod_manager.delete_pod(found)
            end = TryEnd(False, "its pod was admitted although creating it failed, and was deleted before it ended")
        record_end(context, end, by=f"pod {name}", try_number=_try_of(found, number))
        return
    fresh = _read(task, name, namespace) or remote_pod
    end = pod_try_end(to_dict(fresh), container)
    if end is None:
        phase = getattr(getattr(fresh, "status", None), "phase", None) or "unknown"
        end = TryEnd(False, f"pod still {str(phase)[:20]} when the try ended")
    launched_by = _try_of(fresh, number)
    record_end(context, end, by=f"pod {name}", try_number=launched_by)
    if end.oom_killed:
        task.log.warning("allotment: try %s ended in an OOM kill (%s): it counts for the memory of later tries", launched_by, end.reason)
    elif getattr(getattr(fresh, "status", None), "phase", None) != "Succeeded":
        task.log.info("allotment: try %s ended with no OOM kill (%s): a retry asks for the same memory", launched_by, end.reason)


def learn_from_pods(task: Any, context: Mapping[str, Any]) -> Learner:
    """Ask the Kubernetes API how earlier tries ended, by the pods their labels name."""

    def learn(missing: Mapping[int, TryEntry]) -> dict[int, tuple[TryEnd, str]]:
        selector = task._build_find_pod_label_selector(context, exclude_checked=False)
        pods = task.client.list_namespaced_pod(namespace=_namespace(task), label_selector=selector).items or []
        container = str(getattr(task, "base_container_name", None) or "base")
        out: dict[int, tuple[TryEnd, str]] = {}
        for found in pods:
            number = _try_of(found, 0)
            if number not in missing:
                continue
            end = pod_try_end(to_dict(found), container)
            if end is not None and (number not in out or end.oom_killed):
                out[number] = (end, f"pod {found.metadata.name}, found by the task instance's labels")
        return out

    return learn
