"""Cluster profiles: how a ``gpu_type`` becomes node labels (docs/design.md §4).

Built in:

- ``nvidia-gfd`` (default): NVIDIA GPU Feature Discovery's ``nvidia.com/gpu.product``.
- ``gke``: ``cloud.google.com/gke-accelerator``.
- ``eks-karpenter``: Karpenter's ``karpenter.k8s.aws/instance-gpu-name`` (plus
  ``instance-gpu-memory`` where the name alone is ambiguous).

A user profile is a small file (YAML, TOML or JSON), either with one label::

    name: my-cluster
    label: example.com/gpu
    gpu_types: {H100: h100-sxm, L4: l4}

or with several labels per type::

    name: my-cluster
    gpu_types:
      A100-80GB: {example.com/gpu: a100, example.com/gpu-memory: "80"}

MIG profiles (``1g.10gb``) need no entry: their own resource key (:func:`allotment.targets.gpu_key`)
already selects the nodes that have them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from .errors import AllotmentError, FieldError, debug_cause, shown
from .fields import MIG_PROFILE, parse_gpu_type

__all__ = ["BUILTIN_PROFILES", "DEFAULT_PROFILE", "Profile", "get_profile", "load_profile"]


@dataclass(frozen=True)
class Profile:
    """A cluster profile: gpu_type -> node labels."""

    name: str
    gpu_types: Mapping[str, Mapping[str, str]]

    def node_selector(self, gpu_type: str, step: str | None = None, source: str | None = None) -> dict[str, str]:
        """The node labels that select ``gpu_type``; MIG profiles select none."""
        if MIG_PROFILE.fullmatch(gpu_type):
            return dict(self.gpu_types.get(gpu_type, {}))
        labels = self.gpu_types.get(gpu_type)
        if labels is None:
            raise AllotmentError(
                f"is not known to cluster profile {self.name!r}",
                step=step,
                field="gpu_type",
                value=gpu_type,
                source=source,
                accepted=f"known GPU types are {', '.join(sorted(self.gpu_types))}, or a MIG profile such as '1g.10gb'",
            )
        return dict(labels)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str) -> Profile:
        """Validate a user profile (the file's content): any content gives a :class:`Profile` or
        an :class:`AllotmentError` naming the file and the entry. GPU types are checked as the
        ``gpu_type`` field checks them, labels as Kubernetes checks node labels."""
        from .files import check_keys

        src = f"cluster profile {origin}"
        if not isinstance(data, Mapping):
            raise AllotmentError(f"is a {type(data).__name__}, not a mapping", source=src, accepted="keys are name, label, gpu_types")
        check_keys(data, src)
        unknown = sorted(set(data) - {"name", "label", "gpu_types"})
        if unknown:
            raise AllotmentError(f"has unknown key {shown(unknown[0])}", source=src, accepted="keys are name, label, gpu_types")
        name = data.get("name", origin)
        if not isinstance(name, str) or not name or len(name) > _MAX_PROFILE_NAME:
            raise AllotmentError(
                f"has name {shown(name)}", source=src, accepted=f"use a text name of at most {_MAX_PROFILE_NAME} characters"
            )
        types = data.get("gpu_types")
        if not isinstance(types, Mapping) or not types:
            raise AllotmentError("has no gpu_types mapping", source=src, accepted="use e.g. gpu_types: {H100: h100}")
        check_keys(types, src, "gpu_types")
        label = data.get("label")
        if label is not None and not _is_label_key(label):
            raise AllotmentError(f"has label {shown(label)}, which is not a node label key", source=src, accepted=_LABEL_KEY_ACCEPTED)
        table: dict[str, Mapping[str, str]] = {}
        for gpu_type, value in types.items():
            try:
                parse_gpu_type(gpu_type)
            except FieldError as e:
                raise e.with_context(source=f"{src} gpu_types") from debug_cause(e)
            if isinstance(value, str) and isinstance(label, str):
                labels = {label: value}
            elif isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                labels = dict(value)
            else:
                raise AllotmentError(
                    f"gpu_types.{gpu_type} is {shown(value)}",
                    source=src,
                    accepted="give a label value (with a top-level 'label') or a mapping of label to value (values quoted)",
                )
            for key, text in labels.items():
                if not _is_label_key(key):
                    raise AllotmentError(
                        f"gpu_types.{gpu_type} has label {shown(key)}, which is not a node label key",
                        source=src,
                        accepted=_LABEL_KEY_ACCEPTED,
                    )
                if not _LABEL_VALUE.fullmatch(text):
                    raise AllotmentError(
                        f"gpu_types.{gpu_type} has label value {shown(text)}, which is not a node label value",
                        source=src,
                        accepted="a label value is at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                    )
            table[gpu_type] = MappingProxyType(dict(sorted(labels.items())))
        return cls(name, MappingProxyType(table))


_MAX_PROFILE_NAME: Final = 253
# Kubernetes label syntax (k8s.io/apimachinery validation: IsQualifiedName, IsValidLabelValue).
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_KEY_ACCEPTED: Final = (
    "a label key is a name of at most 63 characters, optionally after a DNS prefix and '/' (e.g. nvidia.com/gpu.product)"
)


def _is_label_key(key: object) -> bool:
    if not isinstance(key, str) or len(key) > 253 + 1 + 63:
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def _one_label(label: str, table: dict[str, str]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({k: MappingProxyType({label: v}) for k, v in table.items()})


_GFD = "nvidia.com/gpu.product"
_GKE = "cloud.google.com/gke-accelerator"
_KARPENTER = "karpenter.k8s.aws/instance-gpu-name"
_KARPENTER_MEM = "karpenter.k8s.aws/instance-gpu-memory"

BUILTIN_PROFILES: Final[Mapping[str, Profile]] = MappingProxyType(
    {
        "nvidia-gfd": Profile(
            "nvidia-gfd",
            _one_label(
                _GFD,
                {
                    "A10G": "NVIDIA-A10G",
                    "A100": "NVIDIA-A100-SXM4-40GB",
                    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
                    "H100": "NVIDIA-H100-80GB-HBM3",
                    "H200": "NVIDIA-H200",
                    "L4": "NVIDIA-L4",
                    "L40S": "NVIDIA-L40S",
                    "T4": "Tesla-T4",
                    "V100": "Tesla-V100-SXM2-16GB",
                },
            ),
        ),
        "gke": Profile(
            "gke",
            _one_label(
                _GKE,
                {
                    "A100": "nvidia-tesla-a100",
                    "A100-80GB": "nvidia-a100-80gb",
                    "H100": "nvidia-h100-80gb",
                    "H100-MEGA": "nvidia-h100-mega-80gb",
                    "H200": "nvidia-h200-141gb",
                    "L4": "nvidia-l4",
                    "T4": "nvidia-tesla-t4",
                    "V100": "nvidia-tesla-v100",
                },
            ),
        ),
        "eks-karpenter": Profile(
            "eks-karpenter",
            MappingProxyType(
                {
                    "A10G": MappingProxyType({_KARPENTER: "a10g"}),
                    "A100": MappingProxyType({_KARPENTER: "a100", _KARPENTER_MEM: "40960"}),
                    "A100-80GB": MappingProxyType({_KARPENTER: "a100", _KARPENTER_MEM: "81920"}),
                    "H100": MappingProxyType({_KARPENTER: "h100"}),
                    "H200": MappingProxyType({_KARPENTER: "h200"}),
                    "L4": MappingProxyType({_KARPENTER: "l4"}),
                    "L40S": MappingProxyType({_KARPENTER: "l40s"}),
                    "T4": MappingProxyType({_KARPENTER: "t4"}),
                    "V100": MappingProxyType({_KARPENTER: "v100"}),
                }
            ),
        ),
    }
)
DEFAULT_PROFILE: Final = "nvidia-gfd"


def load_profile(path: str | Path) -> Profile:
    """Load a user profile file."""
    from .files import read_mapping

    return Profile.from_mapping(read_mapping(path, "cluster profile"), origin=str(path))


def get_profile(name_or_path: str | None) -> Profile:
    """A built-in profile by name, or a user profile by file path (None: the default)."""
    name = name_or_path or DEFAULT_PROFILE
    if name in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name]
    if Path(name).suffix.lower() in (".yaml", ".yml", ".toml", ".json"):
        return load_profile(name)
    raise AllotmentError(
        "is not a cluster profile",
        field="profile",
        value=name,
        accepted=f"use one of {', '.join(BUILTIN_PROFILES)} or a .yaml/.toml/.json profile file",
    )
