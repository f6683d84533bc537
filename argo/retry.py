"""Argo expressions for resource quantities: submit-time parameters in MiB, and memory that grows
with Argo's ``{{retries}}`` (``retry_memory_factor``, docs/design.md §7).

**Units of submit parameters.** Everywhere in allotment a memory, disk or shared-memory amount
without a unit is MiB (``memory=65536`` is 64 GiB), but Kubernetes reads a plain number as
bytes. So the ``podSpecPatch`` does not pass a ``<template>-memory``, ``-disk`` or
``-shared-memory`` parameter through as it is; it writes (:func:`mib_parameter`)::

    {{=P matches '^[0-9.]+$' ? P + 'Mi' : P}}        # P: workflow.parameters['train-memory']

A value of only digits and a decimal point (``65536``, ``1.5``) gets ``Mi`` appended
(``argo submit -p train-memory=65536`` asks for 64 GiB); any other value (``64Gi``, ``1G``,
``1e9``) is a Kubernetes quantity and reaches Kubernetes unchanged, so an exponent form
without a unit (``1e9``) is bytes, as Kubernetes reads it. A malformed value (``1.2.3``,
``64GB``) is left for Argo and Kubernetes to reject: the pod is not created.

**Memory that grows on retries.** Argo fills ``retries`` (0 on the first attempt, 1 on the
first retry, ...) in a template's ``podSpecPatch`` when the template has a ``retryStrategy``.
The patch sets the main container's memory request and limit to (:func:`memory_expression`)::

    {{=int(ceil(MIB * FACTOR ** asInt(retries)))}}Mi                              # no cap
    {{=int(min(ceil(MIB * FACTOR ** asInt(retries)), CAP))}}Mi                    # compiled memory, capped
    {{=int(map([ceil(Q)], {max(min(ceil(# * FACTOR ** asInt(retries)), CAP), #)})[0])}}Mi
                                                                                  # memory from a parameter, capped

``MIB`` is the compiled memory in MiB. When the template's memory is a submit-time parameter,
``Q`` is that parameter read as a number of MiB (:func:`quantity_mib_expression`) and rounded
up; the ``map([x], {...})[0]`` form only names ``x`` once as ``#``. So attempt ``n`` asks for
``memory x factor^n`` rounded up to whole MiB and held to the cap, but never below the
attempt-0 memory (a compiled or submitted memory above the cap is not lowered, it just does
not grow): exactly what the core's :meth:`allotment.resolve.Resolved.with_memory_for_try`
gives for try ``n + 1``, which computes in float64 as expr-lang does (so ``110 x 1.1`` is 122
MiB in both, one more than the exact 121). Go's ``math.Pow`` and C's ``pow`` can differ in the
last bit for exponents of 3 and more, which in rare cases moves the rounded-up size by 1 MiB.
The cap is chosen by :mod:`allotment.argo.plan` (``Policy.memory_cap``).

Caveats, from Argo's issue tracker (verify on your Argo version):

- the expressions need expr-lang's ``ceil``, ``min``, ``max``, ``float``, ``int``,
  ``trimSuffix``, ``map`` with a ``{...}`` predicate, and the ``endsWith`` and ``matches``
  operators (Argo Workflows 3.5 and later ship an expr-lang that has them);
- argoproj/argo-workflows#5388: ``{{retries}}`` in ``podSpecPatch`` was not updated between
  attempts (fixed); #10362 and #12941: combining ``retries`` with workflow or input parameters
  in ``podSpecPatch`` failed with "Error applying PodSpecPatch" (closed); #10364:
  ``lastRetry.*`` is not available in ``podSpecPatch`` (open), so growth keys on the attempt
  number, not on the reason the last attempt failed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

__all__ = [
    "DEFAULT_RETRY",
    "PLAIN_MIB",
    "QUANTITY",
    "memory_expression",
    "mib_parameter",
    "parameter_ref",
    "quantity_mib_expression",
]

DEFAULT_RETRY: Final = {"limit": "3", "retryPolicy": "OnFailure"}
"""The ``retryStrategy`` a template with ``retry_memory_factor`` gets when it has none of its own
(an OOM-killed main container fails the node, which ``OnFailure`` retries). The limit is a
string because Argo's JSON schema types ``IntOrString`` as a string."""

PLAIN_MIB: Final = "^[0-9.]+$"
"""A parameter value without a unit (digits and a decimal point): a number of MiB (Go RE2 syntax)."""

QUANTITY: Final = "^[+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
"""A Kubernetes quantity (``k8s.io/apimachinery/pkg/api/resource``), in Go RE2 syntax."""

_MIB: Final = Decimal(1024 * 1024)


def _exact(value: Decimal) -> str:
    return format(value.normalize(), "f")


# Suffix -> MiB per unit: exact binary fractions (1G = 10^9 bytes = 953.67431640625 MiB), so one
# float64 multiplication rounds once. A quantity without a suffix (an exponent form) is bytes.
_UNITS: Final = tuple((f"{s}i", _exact(Decimal(1024) ** p / _MIB)) for p, s in enumerate("KMGTPE", 1)) + tuple(
    (s, _exact(Decimal(1000) ** p / _MIB)) for p, s in enumerate("kMGTPE", 1)
)
_BYTE: Final = _exact(1 / _MIB)
# Sub-byte suffixes divide (1000 is not a binary fraction, so a multiplication would round twice).
_DIVISORS: Final = (("m", "1000"), ("u", "1000000"), ("n", "1000000000"))


def parameter_ref(name: str) -> str:
    """An expression that reads workflow parameter ``name`` (hyphenated names need indexing)."""
    return f"workflow.parameters['{name}']"


def mib_parameter(name: str) -> str:
    """The ``{{=...}}`` value of a memory, disk or shared-memory parameter in a ``podSpecPatch``:
    the parameter, with ``Mi`` appended when it has no unit (so ``65536`` is 64 GiB, as
    everywhere in allotment, not 65536 bytes as Kubernetes would read it)."""
    ref = parameter_ref(name)
    return _checked(f"{{{{={ref} matches '{PLAIN_MIB}' ? {ref} + 'Mi' : {ref}}}}}")


def quantity_mib_expression(ref: str) -> str:
    """An expression giving the MiB (a float) of the string ``ref`` evaluates to.

    A value without a unit (:data:`PLAIN_MIB`) is MiB, as in :func:`mib_parameter`; any other
    value must be a Kubernetes quantity (:data:`QUANTITY`): every suffix (``Ki`` ... ``Ei``,
    ``n``, ``u``, ``m``, ``k``, ``M`` ... ``E``) and exponent forms (``1e9``, bytes) are read as
    Kubernetes reads them, so ``100m`` is 0.1 bytes (which rounds up to 1 MiB). Anything else
    fails the expression with ``not a Kubernetes quantity: <value>`` (Argo reports it and the
    pod is not created). Float64 throughout: the number is parsed as a binary float, so a
    decimal fraction that is exactly a whole MiB can come out one ulp above it, and 1 MiB more
    once rounded up (``128.974848M`` is 123 MiB and reads as 124), and beyond 2^40 MiB (1 EiB)
    fractions of a MiB are lost.
    """
    number = "#"
    for suffix in "iKMGTPEkmun":  # a quantity has at most one suffix, so at most one of these applies
        number = f"trimSuffix({number}, '{suffix}')"
    per_unit = _BYTE
    for suffix, mib in reversed(_UNITS):
        per_unit = f"# endsWith '{suffix}' ? {mib} : {per_unit}"
    divisor = "1"
    for suffix, div in reversed(_DIVISORS):
        divisor = f"# endsWith '{suffix}' ? {div} : {divisor}"
    body = (
        f"# matches '{PLAIN_MIB}' ? float(#) : "
        f"# matches '{QUANTITY}' ? float({number}) * ({per_unit}) / ({divisor}) : "
        "float('not a Kubernetes quantity: ' + #)"
    )
    return f"map([{ref}], {{{body}}})[0]"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _checked(tag: str) -> str:
    # Argo ends a template tag at the first "}}": one inside the expression would cut it short.
    inner = tag[3 : tag.rindex("}}")]
    if "}}" in inner or "{{" in inner:
        raise RuntimeError(f"an Argo expression must not contain '{{{{' or '}}}}': {tag}")
    return tag


def memory_expression(mib: int | str, factor: float, cap: int | None = None) -> str:
    """The memory (a quantity string, ``...Mi``) of attempt ``retries``.

    ``mib``: the memory in MiB (int), or the name of the workflow parameter that holds it (str).
    ``cap``: the memory cap in MiB, if any. Growth stops at the cap, but the attempt-0 memory
    is never lowered (as in :meth:`allotment.resolve.Resolved.with_memory_for_try`).
    """
    power = f"{_number(factor)} ** asInt(retries)"
    if isinstance(mib, int):
        grown = f"ceil({mib} * {power})"
        if cap is not None:
            grown = f"min({grown}, {max(cap, mib)})"
        return _checked(f"{{{{=int({grown})}}}}Mi")
    base = f"ceil({quantity_mib_expression(parameter_ref(mib))})"
    if cap is None:
        return _checked(f"{{{{=int(ceil({base} * {power}))}}}}Mi")
    return _checked(f"{{{{=int(map([{base}], {{max(min(ceil(# * {power}), {cap}), #)}})[0])}}}}Mi")
