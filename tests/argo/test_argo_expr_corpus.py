"""The Python evaluator in ``argo_support`` against the real expr-lang engine (enchanter-golem,
expr-lang v1.17.8) on a corpus: every kind of expression :mod:`allotment.argo.retry` writes, with
several bounds, caps and factors, times the catalogue's values and generated quantities, times
``retries`` 0..3, each retry after an OOM kill of the main container or another failure (the
``lastRetry.*`` Argo fills; a smaller corpus in CI, the whole one with ``ALLOTMENT_FUZZ_LONG=1``). The two
agree on every entry (the same value and type, or both fail), which is where the Python
evaluator may be trusted (``test_argo_quantities`` uses it for speed); every other test
evaluates on the engine.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from allotment.argo.retry import memory_expression, parameter_ref, parameter_value, quantity_mib_expression
from allotment.fields import MAX_GPU, MAX_MIB, MAX_MILLICORES
from argo_catalogue import CATALOGUE
from argo_support import evaluate
from argo_templating import ExpressionFailed, engine

NAME = "p"
LONG = os.environ.get("ALLOTMENT_FUZZ_LONG") == "1"


def _inner(tag: str) -> str:
    """The expression of a ``{{=...}}`` tag (a unit may follow the tag)."""
    assert tag.startswith("{{=")
    return tag[3 : tag.rindex("}}")]


def expressions() -> list[tuple[str, bool]]:
    """(expression, reads retries) for every form allotment writes."""
    out: list[tuple[str, bool]] = []
    for field, bounds in (
        ("cpu", (1, 8000, MAX_MILLICORES)),
        ("gpu", (0, 2, MAX_GPU)),
        ("memory", (1, 16384, MAX_MIB)),
        ("disk", (51200,)),
        ("shared_memory", (4096,)),
    ):
        out += [(_inner(parameter_value(field, NAME, bound)), False) for bound in bounds]
    out.append((quantity_mib_expression(parameter_ref(NAME), NAME), False))
    for factor, cap in itertools.product((1.1, 1.5, 2.0, 3.7), (None, 6000)):
        out.append((_inner(memory_expression(NAME, factor, cap, None if cap is None else 8000)), True))
        out.append((_inner(memory_expression(3000, factor, cap)), True))
    return out


def values() -> list[str]:
    """The catalogue's values (but its 100,000-character one) and generated quantities: all of
    them with ``ALLOTMENT_FUZZ_LONG=1``, every 20th generated one otherwise (golem costs about
    1 ms a call, whatever the expression)."""
    out = [c.value for c in CATALOGUE if len(c.value) < 1000]
    numbers = "0 1 7 10 110 1000 65536 4294967296 0.5 1.5 2.25 .5 5. 128.974848 0.001 1e3 1E-3".split()
    suffixes = ["", *"Ki Mi Gi Ti Pi Ei n u m k M G T P E e2 e+4 e-2 GB i x".split()]
    generated = [f"{sign}{n}{s}" for sign, n, s in itertools.product(("", "+", "-"), numbers, suffixes)]
    out += generated if LONG else generated[::20]
    return list(dict.fromkeys(out))


RETRIES = range(4) if LONG else (0, 3)

LAST_RETRIES: dict[str, dict[str, str]] = {
    "first": {"exitCode": "0", "status": "", "duration": "0", "message": ""},
    "oom": {"exitCode": "137", "status": "Failed", "duration": "9.5", "message": "main: OOMKilled (exit code 137)"},
    "error": {"exitCode": "1", "status": "Failed", "duration": "2", "message": "main: Error (exit code 1)"},
    "faked": {"exitCode": "137", "status": "Failed", "duration": "2", "message": "main: Error (exit code 137): OOMKilled"},
    "error-phase": {"exitCode": "0", "status": "Error", "duration": "1", "message": "main: OOMKilled (exit code 137)"},
}
"""``lastRetry.*`` before an attempt: none yet, an OOM kill, a plain error, a workload's own
"OOMKilled" termination message after a SIGKILL, and an Error (not Failed) node."""


def _lasts(retries: int) -> list[str]:
    if retries == 0:
        return ["first"]
    return [k for k in LAST_RETRIES if k != "first"] if LONG else ["oom", "error"]


def _python(expression: str, value: str, retries: int, last: str = "first") -> tuple[str, Any]:
    env = {"workflow": {"parameters": {NAME: value}}, "retries": str(retries), "lastRetry": LAST_RETRIES[last]}
    try:
        result = evaluate(expression, env)
    except ValueError as e:
        return ("fails", type(e).__name__)
    return (type(result).__name__, result)


def _engine(expression: str, value: str, retries: int, last: str = "first") -> tuple[str, Any]:
    env = {f"workflow.parameters.{NAME}": value, "retries": str(retries), **{f"lastRetry.{k}": v for k, v in LAST_RETRIES[last].items()}}
    try:
        result = engine().evaluate(expression, env)
    except ExpressionFailed:
        return ("fails", "ValueError")
    return (type(result).__name__, result)


def test_the_python_evaluator_agrees_with_the_engine_on_the_corpus() -> None:
    compared = 0
    disagreements = []
    for (expression, grows), value in itertools.product(expressions(), values()):
        for retries, last in ((r, last) for r in (RETRIES if grows else (0,)) for last in _lasts(r)):
            ours, theirs = _python(expression, value, retries, last), _engine(expression, value, retries, last)
            compared += 1
            if ours[0] != theirs[0] or (ours[0] != "fails" and ours[1] != theirs[1]):
                disagreements.append((expression[:60], value, retries, last, ours, theirs))
    assert disagreements == []
    assert compared >= (90_000 if LONG else 5_000), compared  # the size of the corpus


def test_both_fail_the_same_way_on_what_is_not_a_value() -> None:
    """The corpus holds failures as well as results: neither evaluator may pass what the other fails."""
    kinds = {_engine(_inner(parameter_value("cpu", NAME, MAX_MILLICORES)), v, 0)[0] for v in ("2", "x")}
    assert kinds == {"int", "fails"}
