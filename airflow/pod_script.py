"""The source of a decorated task's callable as its pod runs it: without allotment's decorators.

``@task.kubernetes`` (and ``@task.allotment`` on Kubernetes) sends the callable's source to the pod,
where a script defines the function again and calls it. Airflow removes its own task decorator from
that source, not others: a ``@resources(...)`` line left in it would fail in the pod with
``NameError: name 'resources' is not defined`` (the pod's image need not have allotment, and the
script imports nothing of the DAG file). :func:`without_allotment_decorators` removes every
decorator of the function that is one of allotment's (``@resources``, ``@kubernetes``, ``@batch``,
under whatever name the DAG file imported them, ``allotment.resources`` included) and
``@task.allotment``; it finds them by looking the decorator's name up in the function's globals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["ALLOTMENT_TASK_DECORATOR", "without_allotment_decorators"]

ALLOTMENT_TASK_DECORATOR: Final = "task.allotment"
_SPEC_DECORATORS: Final = frozenset({"resources", "kubernetes", "batch"})


def _is_allotment(value: Any) -> bool:
    return getattr(value, "__module__", None) == "allotment.decorators" and getattr(value, "__name__", None) in _SPEC_DECORATORS


def _dotted(node: Any) -> str | None:
    import libcst as cst

    if isinstance(node, cst.Call):
        return _dotted(node.func)
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def _resolves_to_allotment(name: str, namespace: Mapping[str, Any]) -> bool:
    head, *rest = name.split(".")
    value: Any = namespace.get(head)
    for part in rest:
        value = getattr(value, part, None)
    return _is_allotment(value)


def without_allotment_decorators(source: str, namespace: Mapping[str, Any]) -> str:
    """``source`` (a function definition) with allotment's decorators removed from it; ``namespace``:
    the function's globals, where the decorators' names are looked up."""
    import libcst as cst

    class Remover(cst.CSTTransformer):
        def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
            kept = []
            for decorator in updated_node.decorators:
                name = _dotted(decorator.decorator)
                if name is not None and (name == ALLOTMENT_TASK_DECORATOR or _resolves_to_allotment(name, namespace)):
                    continue
                kept.append(decorator)
            if len(kept) == len(updated_node.decorators):
                return updated_node
            return updated_node.with_changes(decorators=kept)

    return cst.parse_module(source).visit(Remover()).code
