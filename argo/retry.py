"""Memory that grows with Argo's ``{{retries}}`` (``retry_memory_factor``, DESIGN §7).

Argo fills ``retries`` (0 on the first attempt, 1 on the first retry, ...) in a template's
``podSpecPatch`` when the template has a ``retryStrategy``. The patch sets the main
container's memory request and limit to an Argo expression (expr-lang, ``{{=...}}``)::

    {{=int(ceil(MIB * FACTOR ** asInt(retries)))}}Mi                  # no policy cap
    {{=int(min(ceil(MIB * FACTOR ** asInt(retries)), CAP))}}Mi        # policy caps.memory

``MIB`` is the memory in whole MiB: the compiled number, or, when the template's memory is a
submit-time parameter, ``ceil(<the parameter read as a quantity>)`` (see
:func:`quantity_mib_expression`: ``Ti``, ``Gi``, ``Mi``, ``T``, ``G``, ``M`` or a plain
number of bytes, as Kubernetes reads one). So attempt ``n`` asks for ``memory x factor^n``
rounded up to whole MiB and held to the policy's memory cap: exactly what the core's
:meth:`allotment.resolve.Resolved.with_memory_for_try` gives for try ``n + 1``, which
computes in float64 as expr-lang does (so ``110 x 1.1`` is 122 MiB in both, one more than
the exact 121). Go's ``math.Pow`` and C's ``pow`` can differ in the last bit for exponents
of 3 and more, which in rare cases moves the rounded-up size by 1 MiB.

Caveats, from Argo's issue tracker (verify on your Argo version):

- the expression needs expr-lang's ``ceil``, ``min``, ``float``, ``int``, ``trimSuffix`` and
  the ``endsWith`` operator (Argo Workflows 3.5 and later ship an expr-lang that has them);
- argoproj/argo-workflows#5388: ``{{retries}}`` in ``podSpecPatch`` was not updated between
  attempts (fixed); #10362 and #12941: combining ``retries`` with workflow or input parameters
  in ``podSpecPatch`` failed with "Error applying PodSpecPatch" (closed); #10364:
  ``lastRetry.*`` is not available in ``podSpecPatch`` (open), so growth keys on the attempt
  number, not on the reason the last attempt failed.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_RETRY",
    "memory_expression",
    "parameter_ref",
    "quantity_mib_expression",
]

DEFAULT_RETRY: Final = {"limit": "3", "retryPolicy": "OnFailure"}
"""The ``retryStrategy`` a template with ``retry_memory_factor`` gets when it has none of its own
(an OOM-killed main container fails the node, which ``OnFailure`` retries). The limit is a
string because Argo's JSON schema types ``IntOrString`` as a string."""

# Suffix -> MiB per unit, exact (1G = 10^9 bytes = 953.67431640625 MiB).
_UNITS: Final = (
    ("Ti", "1048576"),
    ("Gi", "1024"),
    ("Mi", "1"),
    ("T", "953674.31640625"),
    ("G", "953.67431640625"),
    ("M", "0.95367431640625"),
)


def parameter_ref(name: str) -> str:
    """An expression that reads workflow parameter ``name`` (hyphenated names need indexing)."""
    return f"workflow.parameters['{name}']"


def quantity_mib_expression(ref: str) -> str:
    """An expression giving the MiB (a float) of the quantity string ``ref`` evaluates to."""
    expression = f"float({ref}) / 1048576"
    for suffix, mib in reversed(_UNITS):
        value = f"float(trimSuffix({ref}, '{suffix}'))" + ("" if mib == "1" else f" * {mib}")
        expression = f"({ref} endsWith '{suffix}' ? {value} : {expression})"
    return expression


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def memory_expression(mib: int | str, factor: float, cap: int | None = None) -> str:
    """The memory (a quantity string, ``...Mi``) of attempt ``retries``.

    ``mib``: the memory in MiB (int), or the name of the workflow parameter that holds it (str).
    ``cap``: the policy's memory cap in MiB, if any.
    """
    base = str(mib) if isinstance(mib, int) else f"ceil({quantity_mib_expression(parameter_ref(mib))})"
    grown = f"ceil({base} * {_number(factor)} ** asInt(retries))"
    if cap is not None:
        grown = f"min({grown}, {cap})"
    return f"{{{{=int({grown})}}}}Mi"
