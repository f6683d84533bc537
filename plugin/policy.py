"""Policy (docs/design.md §6): caps per field, allowed GPU types, and what runtime input may do.

A policy file (YAML, TOML or JSON)::

    caps:                  # every step, whatever the source
      cpu: 32
      memory: 256Gi
      gpu: 8
    gpu_types: [H100, A100-80GB, L4]
    runtime:
      with: true           # runtime floors (--with, ALLOTMENT_WITH, dag_run.conf); default true
      set: false           # explicit overrides that may lower values; default false
      caps:                # stricter caps for values that come from runtime input
        memory: 128Gi

Without a policy nothing is capped and both ``with`` and ``set`` are allowed. Exceeding a cap
is an error, never a silent clamp; the error names the cap, the policy file and the source of
the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AllotmentError, FieldError, debug_cause, shown
from .fields import MAX_GPU, MAX_MIB, MAX_MILLICORES, parse_gpu_type
from .model import Resources, describe_value
from .sources import Sourced

__all__ = ["HARD_MAXIMA", "Policy", "load_policy", "runtime_bound"]

_CAP_FIELDS = ("cpu", "memory", "gpu", "disk", "shared_memory")


@dataclass(frozen=True)
class Policy:
    """A loaded policy. ``origin`` names the file it came from."""

    origin: str = "policy"
    caps: Resources = field(default_factory=Resources)
    gpu_types: tuple[str, ...] | None = None
    allow_with: bool = True
    allow_set: bool = False
    runtime_caps: Resources = field(default_factory=Resources)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "policy") -> Policy:
        """Validate a policy given as a mapping (the file's content): any content gives a
        :class:`Policy` or an :class:`AllotmentError` naming the file and the key."""
        from .files import check_keys

        src = f"policy {origin}"
        known = {"caps", "gpu_types", "runtime"}
        if not isinstance(data, Mapping):
            raise AllotmentError(f"is a {type(data).__name__}, not a mapping", source=src, accepted=f"keys are {', '.join(sorted(known))}")
        check_keys(data, src)
        unknown = sorted(set(data) - known)
        if unknown:
            raise AllotmentError(f"has unknown key {shown(unknown[0])}", source=src, accepted=f"keys are {', '.join(sorted(known))}")
        runtime = data.get("runtime")
        if runtime is None:  # an empty section; but `runtime: false` is no way to turn runtime input off
            runtime = {}
        if isinstance(runtime, Mapping):
            check_keys(runtime, src, "runtime")
        if not isinstance(runtime, Mapping) or set(runtime) - {"with", "set", "caps"}:
            raise AllotmentError("has a bad 'runtime' section", source=src, accepted="runtime takes 'with', 'set' and 'caps'")
        for flag in ("with", "set"):
            if flag in runtime and not isinstance(runtime[flag], bool):
                raise AllotmentError(f"runtime.{flag} is {shown(runtime[flag])}", source=src, accepted="use true or false")
        gpu_types = data.get("gpu_types")
        if gpu_types is not None and (not isinstance(gpu_types, list) or not all(isinstance(t, str) for t in gpu_types)):
            raise AllotmentError("gpu_types is not a list of names", source=src, accepted="use e.g. [H100, L4]")
        for gpu_type in gpu_types or ():
            try:
                parse_gpu_type(gpu_type)
            except FieldError as e:
                raise e.with_context(source=f"{src} gpu_types") from debug_cause(e)
        return cls(
            origin=origin,
            caps=_caps(data.get("caps"), f"{src} caps"),
            gpu_types=tuple(gpu_types) if gpu_types is not None else None,
            allow_with=runtime.get("with", True),
            allow_set=runtime.get("set", False),
            runtime_caps=_caps(runtime.get("caps"), f"{src} runtime.caps"),
        )

    def memory_cap(self, *, runtime: bool) -> int | None:
        """The memory cap in MiB for a value from a step source (``runtime=False``) or from runtime
        input (``runtime=True``: the stricter of ``caps`` and ``runtime.caps``); None when uncapped."""
        caps = [c for c in (self.caps.memory, self.runtime_caps.memory if runtime else None) if c is not None]
        return min(caps) if caps else None

    def allows_submit_parameters(self) -> bool:
        """Whether an engine may expose a step's resources as parameters a run sets (Argo's
        submit-time parameters): they are runtime input, so only where ``runtime.with`` is allowed."""
        return self.allow_with

    def check(self, step: str, winners: Mapping[str, Sourced]) -> None:
        """Raise for the first value that breaks this policy, naming the cap that binds it: the
        stricter of ``caps`` and, for runtime input, ``runtime.caps`` (so the advice is a value
        that passes)."""
        for name, won in winners.items():
            if name not in _CAP_FIELDS or not isinstance(won.value, (int, float)):
                continue
            applying = [(getattr(self.caps, name), "caps")]
            if won.source.is_runtime:
                applying.append((getattr(self.runtime_caps, name), "runtime.caps"))
            caps = [(cap, where) for cap, where in applying if cap is not None]
            if not caps:
                continue
            cap, where = min(caps, key=lambda item: item[0])
            if won.value > cap:
                raise AllotmentError(
                    f"exceeds the cap {name} <= {describe_value(name, cap)} ({where} in policy {self.origin})",
                    step=step,
                    field=name,
                    value=describe_value(name, won.value),
                    source=str(won.source),
                    accepted=f"ask for at most {describe_value(name, cap)}, or have the policy changed",
                )
        gpu_type = winners.get("gpu_type")
        if self.gpu_types is not None and gpu_type is not None and gpu_type.value not in self.gpu_types:
            raise AllotmentError(
                f"is not allowed by policy {self.origin}",
                step=step,
                field="gpu_type",
                value=gpu_type.value,
                source=str(gpu_type.source),
                accepted=f"allowed GPU types are {', '.join(self.gpu_types) or '(none)'}",
            )

    def check_runtime(self, kind: str, source: str, step: str | None = None) -> None:
        """Raise when runtime input of ``kind`` (``with``/``set``) is not allowed."""
        allowed = self.allow_with if kind == "with" else self.allow_set
        if not allowed:
            raise AllotmentError(
                f"is a runtime '{kind}', which policy {self.origin} does not allow",
                step=step,
                source=source,
                accepted=f"set runtime.{kind}: true in the policy to allow it",
            )


def _caps(data: object, source: str) -> Resources:
    if data is None:
        return Resources()
    if not isinstance(data, Mapping):
        raise AllotmentError("is not a mapping", source=source, accepted=f"use e.g. {{memory: 128Gi}} with fields {', '.join(_CAP_FIELDS)}")
    from .files import check_keys

    check_keys(data, source)
    unknown = sorted(set(data) - set(_CAP_FIELDS))
    if unknown:
        raise AllotmentError(f"has unknown field {shown(unknown[0])}", source=source, accepted=f"caps take {', '.join(_CAP_FIELDS)}")
    try:
        return Resources.from_input(data, source=source)
    except FieldError as e:  # pragma: no cover - from_input adds the context itself
        raise e.with_context(source=source) from debug_cause(e)


def load_policy(path: str | Path) -> Policy:
    """Load a policy file (``.yaml``, ``.yml``, ``.toml`` or ``.json``)."""
    from .files import read_mapping

    return Policy.from_mapping(read_mapping(path, "policy"), origin=str(path))


HARD_MAXIMA: dict[str, int] = {"cpu": MAX_MILLICORES, "memory": MAX_MIB, "disk": MAX_MIB, "shared_memory": MAX_MIB, "gpu": MAX_GPU}
"""Each numeric field's hard maximum, in held units (millicores, MiB, count): beyond any machine."""


def runtime_bound(policy: Policy | None, field: str, compiled: int) -> int:
    """The highest ``field`` (held units) that a run may set itself, where the engine lets a run
    replace the compiled value (an Argo submit parameter, which only the engine can check): the
    policy's cap for runtime input (the stricter of ``caps`` and ``runtime.caps``) or the compiled
    value if that is higher (so a run that sets nothing always works); without a cap, the field's
    hard maximum (:data:`HARD_MAXIMA`)."""
    caps = [] if policy is None else [getattr(c, field) for c in (policy.caps, policy.runtime_caps)]
    known = [int(c) for c in caps if c is not None]
    if not known:
        return HARD_MAXIMA[field]
    return max(min(known), compiled)
