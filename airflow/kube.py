"""Between allotment's plain Kubernetes data and the kubernetes client's objects.

The core (:mod:`allotment.k8s`) compiles a resolved spec to camelCase dicts (``resources``,
``volumes``, ``volumeMounts``, ``nodeSelector``, ``tolerations``) and merges them with the
user's own (:func:`allotment.k8s.merge_parts`). This module only converts: client objects to
those dicts (``ApiClient.sanitize_for_serialization``) and dicts back to client objects
(``PodGenerator.deserialize_model_dict``, the provider's own loader). The user's own objects are
kept as they are; only what allotment adds is built here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from allotment.k8s import merge_parts
from allotment.k8s_user import yield_defaults
from allotment.resolve import Resolved
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

__all__ = [
    "POD_NAME_SUFFIX",
    "merged_pod_arguments",
    "normalise_pod_name",
    "pod_from_dict",
    "to_dict",
    "user_parts",
]

POD_NAME_SUFFIX = re.compile(r"-[a-z0-9]{8}$")
"""The random suffix Airflow adds to pod names (``add_unique_suffix``: '-' and 8 characters)."""


@functools.cache
def _api_client() -> ApiClient:
    return ApiClient()


def to_dict(obj: Any) -> Any:
    """A client object (or a list/dict of them) as plain camelCase data, ``None`` fields dropped."""
    return _api_client().sanitize_for_serialization(obj)


def pod_from_dict(data: Mapping[str, Any]) -> k8s.V1Pod:
    """A ``V1Pod`` from plain camelCase data (the provider's own loader)."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return PodGenerator.deserialize_model_dict(dict(data))


def _objects(kind: str, items: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Client objects for plain volumes, mounts or tolerations."""
    if not items:
        return []
    if kind == "volumeMounts":
        pod = pod_from_dict({"spec": {"containers": [{"name": "base", "volumeMounts": list(items)}]}})
        return list(pod.spec.containers[0].volume_mounts)
    pod = pod_from_dict({"spec": {"containers": [{"name": "base"}], kind: list(items)}})
    return list(pod.spec.volumes if kind == "volumes" else pod.spec.tolerations)


def user_parts(
    *,
    resources: Any = None,
    volumes: Sequence[Any] = (),
    volume_mounts: Sequence[Any] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Any] = (),
) -> dict[str, Any]:
    """The user's own settings (client objects or dicts) as plain parts for :func:`allotment.k8s.merge_parts`."""
    parts: dict[str, Any] = {}
    if resources:
        parts["resources"] = to_dict(resources) or {}
    if volumes:
        parts["volumes"] = to_dict(list(volumes))
    if volume_mounts:
        parts["volumeMounts"] = to_dict(list(volume_mounts))
    if node_selector:
        parts["nodeSelector"] = dict(node_selector)
    if tolerations:
        parts["tolerations"] = to_dict(list(tolerations))
    return parts


def merged_pod_arguments(
    ours: Mapping[str, Any],
    resolved: Resolved,
    *,
    user_source: str,
    resources: Any = None,
    volumes: Sequence[Any] = (),
    volume_mounts: Sequence[Any] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Any] = (),
) -> dict[str, Any]:
    """Merge allotment's parts with the user's own (kept, and first) and return client objects:
    ``container_resources`` (``V1ResourceRequirements``), ``volumes``, ``volume_mounts``,
    ``node_selector`` and ``tolerations``. Defaults yield to the user's own values
    (:func:`allotment.k8s_user.yield_defaults`); a real conflict raises the core's error."""
    user = user_parts(
        resources=resources, volumes=volumes, volume_mounts=volume_mounts, node_selector=node_selector, tolerations=tolerations
    )
    merged = merge_parts(yield_defaults(ours, resolved, user), user, step=resolved.step, user_source=user_source)

    requirements = merged.get("resources") or {}
    claims = getattr(resources, "claims", None) if resources is not None and not isinstance(resources, Mapping) else None
    container_resources = k8s.V1ResourceRequirements(
        requests=requirements.get("requests") or None, limits=requirements.get("limits") or None, claims=claims
    )
    # merge_parts keeps the user's entries first, in their order, and appends what allotment adds.
    added_volumes = (merged.get("volumes") or [])[len(user.get("volumes") or []) :]
    added_mounts = (merged.get("volumeMounts") or [])[len(user.get("volumeMounts") or []) :]
    added_tolerations = (merged.get("tolerations") or [])[len(user.get("tolerations") or []) :]
    return {
        "container_resources": container_resources,
        "volumes": [*volumes, *_objects("volumes", added_volumes)],
        "volume_mounts": [*volume_mounts, *_objects("volumeMounts", added_mounts)],
        "node_selector": dict(merged.get("nodeSelector") or {}),
        "tolerations": [*tolerations, *_objects("tolerations", added_tolerations)],
    }


def normalise_pod_name(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` (plain data) with the random suffix of its name replaced by ``-XXXXXXXX``."""
    metadata = pod.get("metadata") or {}
    name = metadata.get("name")
    if isinstance(name, str):
        metadata["name"] = POD_NAME_SUFFIX.sub("-XXXXXXXX", name)
    return pod
