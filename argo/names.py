"""Names the Argo face gives to what it generates: fixed, so output is deterministic."""

from __future__ import annotations

from allotment.facade import TARGETS

__all__ = ["parameter_name"]


def parameter_name(template: str, field: str) -> str:
    """The workflow parameter that overrides ``field`` of ``template`` at submit time:
    ``parameter_name("train", "memory") == "train-memory"`` (``shared_memory`` -> ``shared-memory``)."""
    return f"{template}-{TARGETS[field].parameter}"
