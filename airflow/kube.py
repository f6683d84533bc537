"""Between allotment's typed pod parts and the kubernetes client's objects.

The core fits a resolved spec into the user's own pod settings (:func:`allotment.facade.fit_pod`:
defaults yield, conflicts are errors). This module only converts: client objects to plain
camelCase data (``ApiClient.sanitize_for_serialization``) and the parts allotment adds back to
client objects (``PodGenerator.deserialize_model_dict``, the provider's own loader). The user's
own objects are kept as they are; only what allotment adds is built here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from allotment.facade import PodParts, Resolved, fit_pod
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
) -> PodParts:
    """The user's own settings (client objects or dicts) as typed parts for :func:`allotment.facade.fit_pod`."""
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
    return PodParts.from_dict(parts)


def merged_pod_arguments(
    resolved: Resolved,
    profile: Any,
    *,
    user_source: str,
    resources: Any = None,
    claims: Any = None,
    volumes: Sequence[Any] = (),
    volume_mounts: Sequence[Any] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Any] = (),
    check_only: bool = False,
) -> dict[str, Any]:
    """The spec fitted into the user's own pod arguments (kept, and first), as the operator's
    arguments: ``container_resources`` (``V1ResourceRequirements``, with the user's ``claims``),
    ``volumes``, ``volume_mounts``, ``node_selector`` and ``tolerations``. A real conflict raises
    the core's error. ``check_only``: only fit (the conflicts are the point, as when a DAG file is
    parsed) and build no client objects; returns an empty mapping."""
    user = user_parts(
        resources=resources, volumes=volumes, volume_mounts=volume_mounts, node_selector=node_selector, tolerations=tolerations
    )
    fitted = fit_pod(resolved, profile, user, user_source=user_source)
    if check_only:
        return {}
    merged, added = fitted.merged, fitted.added
    requirements = merged.resources.to_dict() if merged.resources is not None else {}
    if claims is None and resources is not None and not isinstance(resources, Mapping):
        claims = getattr(resources, "claims", None)
    container_resources = k8s.V1ResourceRequirements(
        requests=requirements.get("requests") or None, limits=requirements.get("limits") or None, claims=claims
    )
    return {
        "container_resources": container_resources,
        "volumes": [*volumes, *_objects("volumes", [dict(v) for v in added.volumes])],
        "volume_mounts": [*volume_mounts, *_objects("volumeMounts", [dict(m) for m in added.volume_mounts])],
        "node_selector": dict(merged.node_selector),
        "tolerations": [*tolerations, *_objects("tolerations", [dict(t) for t in added.tolerations])],
    }


def normalise_pod_name(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` (plain data) with the random suffix of its name replaced by ``-XXXXXXXX``."""
    metadata = pod.get("metadata") or {}
    name = metadata.get("name")
    if isinstance(name, str):
        metadata["name"] = POD_NAME_SUFFIX.sub("-XXXXXXXX", name)
    return pod
