"""Argo expressions for resource quantities: submit-time parameters, validated inside Argo, and
memory that grows after OOM kills, from Argo's ``retries`` and ``lastRetry.*`` (``retry_memory_factor``,
docs/design.md §7.3).

**Submit parameters are hostile input (docs/design.md §7.2).** Argo substitutes ``{{...}}`` tags into the
template's JSON text with one level of escaping (argo-workflows ``util/template``:
``strconv.Quote`` for a simple tag, ``json.Marshal`` of an expression's result), and
``podSpecPatch`` is a JSON string *inside* that JSON: a ``"`` in a value that reached the patch
as text would close the patch's inner string and add any pod-spec field. So no parameter
reaches a ``podSpecPatch`` as text. Every placeholder is one ``{{=...}}`` expression that reads
the parameter, checks it against a strict pattern (Go RE2, ``matches``), turns it into a
**whole number** in the field's unit and checks its range; the tag's output is that number
(``json.Marshal`` of an int: digits only) and the unit follows the tag literally
(:func:`parameter_value`)::

    cpu            {{=<millicores>}}m       2 -> 2000m, 0.5 -> 500m, 500m -> 500m
    memory, disk,  {{=<MiB>}}Mi             65536 -> 65536Mi (a plain number is MiB), 64Gi -> 65536Mi,
    shared memory                           1G -> 954Mi (rounded up to whole MiB, as the core does)
    gpu            {{=<count>}}             2 -> 2

A value that does not match, or is out of range, makes the expression fail
(``int('allotment: ...')``). Argo then leaves that tag unresolved, and the pod's quantity
``{{=...}}m`` fails to parse as a Kubernetes quantity: the node fails with ``Error applying
PodSpecPatch`` and no pod is created. (The node shows only that message; the ``allotment: ...``
reason is in the template's patch, and :func:`accepted` goes into the parameter's description.)
The range is ``1m``/``1Mi`` (``0`` for a GPU count) up to the **bound**
(:func:`parameter_bound`): the policy's cap for runtime input (the stricter of ``caps`` and
``runtime.caps``), or the compiled value if that is higher (so a submit without ``-p`` always
works), and without a cap the core's limits (:data:`allotment.fields.MAX_MILLICORES`,
the core's hard maximum (1 EiB), :data:`~allotment.fields.MAX_GPU`).

**Memory that grows after OOM kills** (docs/design.md §7.3). Argo fills ``retries`` (0 on the
first attempt, 1 on the first retry, ...) and ``lastRetry.exitCode``, ``.status``,
``.duration``, ``.message`` (of the attempt before: ``"0"``, ``""``, ``"0"``, ``""`` on the first)
in a template's ``podSpecPatch`` when the template has a ``retryStrategy`` (``operator.go``
``executeTemplate``, v3.7 and later). An OOM-killed main container fails its node with the
message ``main: OOMKilled (exit code 137)`` (``inferFailedReason``: ``<container>: <reason> (exit
code <n>)``, then ``: <termination message>`` when the container wrote one). The patch sets the
main container's memory request and limit to (:func:`memory_expression`)::

    {{=int(min(ceil(MIB * FACTOR ** (OOM ? asInt(retries) : max(asInt(retries) - 1, 0))), CAP))}}Mi
                                                                          # compiled memory
    {{=int(map([M], {max(min(ceil(# * FACTOR ** (...)), CAP), #)})[0])}}Mi # memory from a parameter

    OOM = lastRetry.status == 'Failed' and lastRetry.message startsWith 'main: OOMKilled ('

``MIB`` is the compiled memory in MiB; ``M`` is the validated ``<template>-memory`` parameter in
MiB (as above: it fails the node unless it is a quantity within its bound). ``CAP`` is the
memory cap in MiB (``Policy.memory_cap``, chosen by :mod:`allotment.argo.plan`), or
the core's hard maximum (1 EiB) without one, and never below attempt 0's memory.

**Where Argo differs from the rule.** Argo shows an attempt only the last attempt before it, so
it cannot count the earlier attempts that were OOM kills. The exponent is the core's closest safe
count (:func:`allotment.facade.argo_oom_kills`): ``retries`` after an OOM kill, else ``retries -
1`` (0 on the first retry). It never counts fewer OOM kills than there were, so an OOM kill
followed by an eviction keeps its growth, and a first retry after an eviction, a lost node or a
plain error keeps its memory; but each attempt before the last one that failed some other way
counts as an OOM kill too (two evictions in a row, then a third attempt: grown once). The policy
cap bounds that. Only the controller's own prefix of the message is read: the termination message
after it is written by the workload, and a workload that writes ``OOMKilled`` there (or kills
itself with SIGKILL, exit code 137) does not make its node look OOM-killed; no ``lastRetry`` value
is ever written into the patch. So attempt ``n`` asks for ``memory x factor^k`` (``k`` that count)
rounded up to whole MiB and held to the cap, but never below the attempt-0 memory: what the
core's :meth:`allotment.resolve.Resolved.with_memory_after` gives for ``k`` OOM kills, which
computes in float64 as expr-lang does (so ``110 x 1.1`` is 122 MiB in both, one more than the
exact 121). Go's ``math.Pow`` and C's ``pow`` can differ in the last bit for exponents of 3 and
more, which in rare cases moves the rounded-up size by 1 MiB.

Caveats, from Argo's source and issue tracker (verify on your Argo version):

- the expressions need expr-lang's ``ceil``, ``round``, ``min``, ``max``, ``float``, ``int``,
  ``len``, ``trimSuffix``, ``map`` with a ``{...}`` predicate, and the ``endsWith``,
  ``matches`` and ``and`` operators (Argo Workflows 3.5 and later ship an expr-lang that has
  them; tested on expr-lang v1.17.8, the version Argo v4.1.2 pins);
- argoproj/argo-workflows#5388: ``{{retries}}`` in ``podSpecPatch`` was not updated between
  attempts (fixed); #10362 and #12941: combining ``retries`` with workflow or input parameters
  in ``podSpecPatch`` failed with "Error applying PodSpecPatch" (closed); #10364:
  ``lastRetry.*`` in ``podSpecPatch``, fixed in v3.7.0 (commit 81130fbd58, PR #14450). Before
  3.7 ``lastRetry.*`` is never filled, so the expression stays unresolved and the retried node
  fails with "Error applying PodSpecPatch": growth after OOM kills needs Argo 3.7 or later.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from allotment.facade import KUBERNETES_OOM_REASON, Settings, describe_value, runtime_bound

__all__ = [
    "CPU",
    "DEFAULT_RETRY",
    "GPU_COUNT",
    "LAST_RETRY_OOM",
    "MAX_LENGTH",
    "OOM_EXPONENT",
    "OOM_MESSAGE_PREFIX",
    "PLAIN_MIB",
    "QUANTITY",
    "UNITS",
    "accepted",
    "memory_expression",
    "mib_parameter",
    "parameter_bound",
    "parameter_ref",
    "parameter_value",
    "quantity_mib_expression",
]

DEFAULT_RETRY: Final = {"limit": "3", "retryPolicy": "OnFailure"}
"""The ``retryStrategy`` a template with ``retry_memory_factor`` gets when it has none of its own
(an OOM-killed main container fails the node, which ``OnFailure`` retries, as it retries any
other failure: only the memory depends on the reason). The limit is a string because Argo's
JSON schema types ``IntOrString`` as a string."""

OOM_MESSAGE_PREFIX: Final = f"main: {KUBERNETES_OOM_REASON} ("
"""How the message of a node whose main container was OOM-killed starts (``inferFailedReason``)."""

LAST_RETRY_OOM: Final = f"lastRetry.status == 'Failed' and lastRetry.message startsWith '{OOM_MESSAGE_PREFIX}'"
"""True when the attempt before this one was an OOM kill of the main container."""

OOM_EXPONENT: Final = f"({LAST_RETRY_OOM} ? asInt(retries) : max(asInt(retries) - 1, 0))"
"""The OOM kills an attempt counts (:func:`allotment.facade.argo_oom_kills`, the closest Argo can
count): ``retries`` after an OOM kill, else ``retries - 1`` (0 on the first attempt)."""

PLAIN_MIB: Final = "^([0-9]+[.]?[0-9]*|[.][0-9]+)$"
"""A parameter value without a unit (digits, at most one decimal point): a number of MiB (Go RE2 syntax)."""

QUANTITY: Final = "^[+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
"""A Kubernetes quantity (``k8s.io/apimachinery/pkg/api/resource``), in Go RE2 syntax."""

CPU: Final = "^([0-9]{1,7}([.][0-9]{1,3})?|[.][0-9]{1,3}|[0-9]{1,10}m)$"
"""A CPU parameter: cores with at most three decimals (``2``, ``0.5``) or millicores (``500m``)."""

GPU_COUNT: Final = "^[0-9]{1,6}$"
"""A GPU parameter: a whole number."""

MAX_LENGTH: Final = 64
"""The longest memory, disk or shared-memory parameter value read (characters); a longer one fails."""

UNITS: Final = {"cpu": "m", "memory": "Mi", "disk": "Mi", "shared_memory": "Mi", "gpu": ""}
"""The unit each field's expression counts in; it follows the ``{{=...}}`` tag in the patch."""

_LEAST: Final = {"cpu": 1, "memory": 1, "disk": 1, "shared_memory": 1, "gpu": 0}

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


def _fail(reason: str) -> str:
    """An expression that fails when evaluated, with ``reason`` in the failing call (which the
    node's "Error applying PodSpecPatch" message quotes)."""
    if "'" in reason or "\\" in reason or '"' in reason:
        raise RuntimeError(f"a failure reason must be plain text: {reason!r}")
    return f"int('allotment: {reason}')"


def _describe(field: str, amount: int) -> str:
    if UNITS[field] == "Mi" and amount:
        for power, unit in ((4, "Ei"), (3, "Pi"), (2, "Ti")):
            if amount % 1024**power == 0:
                return f"{amount // 1024**power}{unit}"
    return describe_value(field, amount)


def parameter_bound(field: str, compiled: int, settings: Settings) -> int:
    """The highest value of ``field`` (held units: millicores, MiB, count) a submit parameter may
    give: the core's rule for a value a run sets itself (:func:`allotment.facade.runtime_bound`)."""
    return runtime_bound(settings.policy, field, compiled)


def _ranged(field: str, name: str, number: str, bound: int, *, whole: str = "#") -> str:
    """``number`` (an expression) when ``_LEAST[field] <= number <= bound``, else a failure;
    ``whole`` is what is returned (as an expression of ``#``)."""
    least = _LEAST[field]
    reason = f"{name} must be from {_describe(field, least)} to {_describe(field, bound)}"
    return f"map([{number}], {{# >= {least} and # <= {bound} ? {whole} : {_fail(reason)}}})[0]"


def _cpu_millicores(name: str, bound: int) -> str:
    read = (
        f"map([{parameter_ref(name)}], {{# matches '{CPU}' ? "
        f"(# endsWith 'm' ? int(trimSuffix(#, 'm')) : int(round(float(#) * 1000))) : "
        f"{_fail(f'{name} is not a cpu amount: use cores (2, 0.5) or millicores (500m)')}}})[0]"
    )
    return _ranged("cpu", name, read, bound)


def _gpu_count(name: str, bound: int) -> str:
    read = f"map([{parameter_ref(name)}], {{# matches '{GPU_COUNT}' ? int(#) : {_fail(f'{name} is not a whole number of GPUs')}}})[0]"
    return _ranged("gpu", name, read, bound)


def _mib(field: str, name: str, bound: int, *, whole: str = "int(#)") -> str:
    """The validated MiB of a memory, disk or shared-memory parameter (rounded up), or a failure."""
    read = f"ceil({quantity_mib_expression(parameter_ref(name), name)})"
    return _ranged(field, name, read, bound, whole=whole)


def accepted(field: str, bound: int) -> str:
    """What a submit parameter of ``field`` accepts, for its description."""
    forms = {"cpu": "cores (2, 0.5) or millicores (500m)", "gpu": "a whole number"}.get(field, "a quantity such as 64Gi or a plain number")
    return f"accepts {forms} from {_describe(field, _LEAST[field])} to {_describe(field, bound)}"


def parameter_value(field: str, name: str, bound: int) -> str:
    """The ``podSpecPatch`` value of ``field``'s workflow parameter ``name``: one expression
    giving a whole number of the field's :data:`UNITS` (then the unit), or failing the node
    when the value is not an amount of that kind from its least value to ``bound``."""
    if field == "cpu":
        number = _cpu_millicores(name, bound)
    elif field == "gpu":
        number = _gpu_count(name, bound)
    elif field in ("memory", "disk", "shared_memory"):
        number = _mib(field, name, bound)
    else:
        raise ValueError(f"no submit parameter for {field!r}")
    return _checked(f"{{{{={number}}}}}{UNITS[field]}")


_HARD_MIB: Final = runtime_bound(None, "memory", 0)
"""The core's hard maximum for memory (MiB): the bound without a policy cap."""


def mib_parameter(name: str, bound: int = _HARD_MIB, field: str = "memory") -> str:
    """The ``podSpecPatch`` value of a memory, disk or shared-memory parameter: its validated
    MiB (a plain number is MiB, ``65536`` is 64 GiB; a quantity is rounded up to whole MiB)."""
    return parameter_value(field, name, bound)


def quantity_mib_expression(ref: str, name: str = "the value") -> str:
    """An expression giving the MiB (a float) of the string ``ref`` evaluates to.

    A value without a unit (:data:`PLAIN_MIB`) is MiB; any other value must be a Kubernetes
    quantity (:data:`QUANTITY`): every suffix (``Ki`` ... ``Ei``, ``n``, ``u``, ``m``, ``k``,
    ``M`` ... ``E``) and exponent forms (``1e9``, bytes) are read as Kubernetes reads them, so
    ``100m`` is 0.1 bytes (which rounds up to 1 MiB). A value longer than :data:`MAX_LENGTH` or
    anything else fails the expression. Float64 throughout: the number is parsed as a binary
    float, so a decimal fraction that is exactly a whole MiB can come out one ulp above it, and
    1 MiB more once rounded up (``128.974848M`` is 123 MiB and reads as 124), and beyond 2^40
    MiB (1 EiB) fractions of a MiB are lost.
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
        f"len(#) > {MAX_LENGTH} ? float({_fail(f'{name} is longer than {MAX_LENGTH} characters')}) : "
        f"# matches '{PLAIN_MIB}' ? float(#) : "
        f"# matches '{QUANTITY}' ? float({number}) * ({per_unit}) / ({divisor}) : "
        f"float({_fail(f'{name} is not a quantity: use MiB (65536) or e.g. 64Gi, 512Mi, 1G')})"
    )
    return f"map([{ref}], {{{body}}})[0]"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _checked(tag: str) -> str:
    # Argo ends a template tag at the first "}}": one inside the expression would cut it short.
    # Quotes and backslashes would need JSON escaping inside podSpecPatch; none are written.
    inner = tag[3 : tag.rindex("}}")]
    if "}}" in inner or "{{" in inner or '"' in tag or "\\" in tag:
        raise RuntimeError(f"an Argo expression must not contain '{{{{', '}}}}', quotes or backslashes: {tag}")
    return tag


def memory_expression(mib: int | str, factor: float, cap: int | None = None, bound: int | None = None) -> str:
    """The memory (a quantity string, ``...Mi``) of attempt ``retries``: grown once per OOM kill
    Argo can see (:data:`OOM_EXPONENT`).

    ``mib``: the memory in MiB (int), or the name of the workflow parameter that holds it (str),
    which must be a quantity up to ``bound`` MiB (:func:`parameter_bound`; default: the cap, or
    the core's hard maximum (1 EiB)). ``cap``: the memory cap in MiB, if any. Growth stops at
    the cap (at the core's hard maximum (1 EiB) without one), but the attempt-0 memory is never
    lowered (as in :meth:`allotment.resolve.Resolved.with_memory_after`).
    """
    power = f"{_number(factor)} ** {OOM_EXPONENT}"
    held = _HARD_MIB if cap is None else cap
    if isinstance(mib, int):
        return _checked(f"{{{{=int(min(ceil({mib} * {power}), {max(held, mib)}))}}}}Mi")
    grown = f"max(min(ceil(# * {power}), {held}), #)"
    base = _mib("memory", mib, held if bound is None else bound, whole="#")
    return _checked(f"{{{{=int(map([{base}], {{{grown}}})[0])}}}}Mi")
