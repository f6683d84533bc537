"""Small pure validators, one per field of the spec (docs/design.md, "The spec").

Each takes what a user wrote and returns the value in the unit the spec holds:

========================  ==========================================  ==========
field                     accepted                                    held as
========================  ==========================================  ==========
``cpu``                   int, float, ``"2"``, ``"500m"``             millicores
``memory``                int (MiB), ``"16Gi"``, ``"16G"``, ``"16GiB"``  MiB
``disk``                  as memory                                   MiB
``shared_memory``         as memory                                   MiB
``gpu``                   int >= 0                                    count
``gpu_type``              ``"H100"``, ``"A100-80GB"``, ``"1g.10gb"``  str
``gpu_vendor``            a vendor name or an extended-resource key   str
``retry_memory_factor``   a number from 1 to 16                       float
========================  ==========================================  ==========

A number with no unit is MiB for the memory-like fields (as AWS Batch and Metaflow count),
whether it is an ``int`` or a string such as ``"16384"``. Decimal units are exact and
rounded **up** to whole MiB (``"16G"`` is 16·10⁹ bytes = 15259 MiB). Errors are
:class:`~allotment.errors.FieldError` and list what is accepted.

Every input is treated as hostile (docs/design.md §7.2), whoever wrote it:

- hard maxima, each an error above it (never a clamp): :data:`MAX_MILLICORES` (10⁶ cores),
  :data:`MAX_MIB` (1 EiB, for memory, disk and shared memory), :data:`MAX_GPU` (65,536 GPUs),
  and 16 for ``retry_memory_factor``;
- a text value is at most :data:`MAX_TEXT` (64) characters, checked before it is parsed;
  an int beyond 2**64 is rejected without converting it, a ``Decimal`` of more than 100
  digits is rejected;
- arithmetic is exact (:data:`allotment.quantity.EXACT` raises rather than round), so a CPU
  finer than 1m is always an error and memory always rounds up;
- in text every field takes ASCII digits only: no blanks, ``_`` or other scripts' digits
  (``"١٦"``), as the Kubernetes API server takes quantities.

Each validator raises only :class:`~allotment.errors.FieldError`, fast, with a short message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Final

from .errors import FieldError
from .quantity import BINARY_SUFFIXES, EXACT, MAX_QUANTITY_LENGTH, QuantityError, parse_quantity
from .targets import GPU_VENDOR_KEYS, MIG_PROFILE

__all__ = [
    "FIELDS",
    "GPU_VENDORS",
    "MIG_PROFILE",
    "NUMERIC_FIELDS",
    "PARSERS",
    "parse_cpu",
    "parse_gpu",
    "parse_gpu_type",
    "parse_gpu_vendor",
    "parse_mib",
    "parse_retry_memory_factor",
]

_MIB = 1024 * 1024
MAX_MILLICORES: Final = 10**9
"""1,000,000 cores: beyond any machine; a larger value is a mistake, not a request."""
MAX_MIB: Final = 2**40
"""1 EiB (2^40 MiB): beyond any machine, and far inside Kubernetes' int64 byte counts."""
MAX_GPU: Final = 2**16
"""65,536 GPUs."""
MAX_TEXT: Final = MAX_QUANTITY_LENGTH
"""The longest text any numeric field takes (64 characters); checked before anything is parsed."""
_MAX_INT_BITS: Final = 64  # every maximum above is far below 2**64
_MAX_DIGITS: Final = 100  # of a Decimal given as such

MEMORY_ACCEPTED: Final = "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
CPU_ACCEPTED: Final = "use a number of cores (4, 0.5, '2') or millicores ('500m')"
GPU_ACCEPTED: Final = "use a whole number >= 0 (0 means no GPU; for part of a GPU use a MIG gpu_type such as '1g.10gb')"
FACTOR_ACCEPTED: Final = "use a number from 1 (no growth) to 16, e.g. 1.5"
_CPU_MAXIMUM: Final = f"{CPU_ACCEPTED}, at most {MAX_MILLICORES // 1000} cores"
_MIB_MAXIMUM: Final = f"{MEMORY_ACCEPTED}, at most 1Ei"
_GPU_MAXIMUM: Final = f"{GPU_ACCEPTED}, at most {MAX_GPU}"

GPU_VENDORS: Final = GPU_VENDOR_KEYS
"""Vendor name -> Kubernetes extended-resource key (the table lives in :mod:`allotment.targets`)."""

_GPU_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# An extended resource name: a DNS subdomain prefix, '/', and a name (Kubernetes' rule).
_RESOURCE_KEY = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_BYTE_UNITS = {f"{s}B": s for s in ("k", "M", "G", "T", "P", "E")} | {f"{s}B": s for s in BINARY_SUFFIXES}
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
"""A number as ``retry_memory_factor`` takes it in text: ASCII digits and one point (no sign,
blank, ``_``, exponent or other script's digits, as :func:`float` would take)."""


def _number(value: object, field: str, accepted: str) -> Decimal | None:
    """An int/float/Decimal as an exact Decimal; None for other types. Rejects bools. An int
    beyond 2**64, past every bound, stands in as ±2**64 (converting a million digits costs
    seconds); the error still shows the value given."""
    if isinstance(value, bool):
        raise FieldError("is a bool, not a number", field=field, value=value, accepted=accepted)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:  # as far beyond every bound, without the conversion
            return Decimal(2**_MAX_INT_BITS if value > 0 else -(2**_MAX_INT_BITS))
        return Decimal(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError("is not a finite number", field=field, value=value, accepted=accepted)
        return Decimal(repr(float(value)))  # 0.1 -> Decimal('0.1'), not the binary expansion
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise FieldError("is not a finite number", field=field, value=value, accepted=accepted)
        if len(value.as_tuple().digits) > _MAX_DIGITS:
            raise FieldError(f"has more than {_MAX_DIGITS} digits", field=field, value=value, accepted=accepted)
        return Decimal(value)
    return None


def _plain(value: str) -> str:
    """A ``str`` subclass's text as a plain ``str`` (its own ``__len__``, ``endswith``... are not
    trusted, and the spec holds plain strings)."""
    return str.__getitem__(value, slice(None)) if type(value) is not str else value


def _text(value: object, field: str, accepted: str) -> str:
    """``value`` as a plain string no longer than :data:`MAX_TEXT`, checked before it is parsed."""
    if not isinstance(value, str):
        raise FieldError(f"is a {type(value).__name__}", field=field, value=value, accepted=accepted)
    text = _plain(value)
    if len(text) > MAX_TEXT:
        raise FieldError(
            f"is {len(text)} characters long", field=field, value=text, accepted=f"{accepted}, in at most {MAX_TEXT} characters"
        )
    return text


def parse_cpu(value: object, field: str = "cpu") -> int:
    """CPU in cores (number or unit-less string) or a quantity with ``m``/``u``/``n``; returns millicores."""
    cores = _number(value, field, CPU_ACCEPTED)
    if cores is None:
        text = _text(value, field, CPU_ACCEPTED)
        try:
            cores = parse_quantity(text)
        except QuantityError as e:
            raise FieldError("is not a CPU quantity", field=field, value=value, accepted=CPU_ACCEPTED) from e
        if text.endswith(("i", "k", "M", "G", "T", "P", "E")):
            raise FieldError("has a unit that is not for CPUs", field=field, value=value, accepted=CPU_ACCEPTED)
    with localcontext(EXACT):
        millicores = cores * 1000  # exact: EXACT raises rather than round
        if millicores <= 0:
            raise FieldError("must be more than 0", field=field, value=value, accepted=CPU_ACCEPTED)
        if millicores > MAX_MILLICORES:
            raise FieldError("is more than any machine has", field=field, value=value, accepted=_CPU_MAXIMUM)
        if millicores != millicores.to_integral_value():
            raise FieldError(
                "is finer than 1m (a thousandth of a core), which Kubernetes cannot express",
                field=field,
                value=value,
                accepted=CPU_ACCEPTED,
            )
        return int(millicores)


def parse_mib(value: object, field: str = "memory") -> int:
    """An amount of memory or disk: a number of MiB, or a quantity (rounded up to whole MiB)."""
    number = _number(value, field, MEMORY_ACCEPTED)
    if number is None:
        text = _text(value, field, MEMORY_ACCEPTED)
        for unit, suffix in _BYTE_UNITS.items():
            if text.endswith(unit):
                text = text[: -len(unit)] + suffix
                break
        try:
            amount = parse_quantity(text)
        except QuantityError as e:
            raise FieldError("is not a quantity", field=field, value=value, accepted=MEMORY_ACCEPTED) from e
        if text[-1:] in ("n", "u", "m"):
            raise FieldError(
                f"is in {'milli' if text[-1] == 'm' else 'nano' if text[-1] == 'n' else 'micro'}bytes (did you mean 'Mi'?)",
                field=field,
                value=value,
                accepted=MEMORY_ACCEPTED,
            )
        if text[-1:].isdigit() or text[-1:] == ".":
            number = amount  # no unit at all: MiB, like an int
        else:
            if amount <= 0:
                raise FieldError("must be more than 0", field=field, value=value, accepted=MEMORY_ACCEPTED)
            if amount > MAX_MIB * _MIB:
                raise FieldError("is more than any machine has", field=field, value=value, accepted=_MIB_MAXIMUM)
            return math.ceil(Fraction(amount) / _MIB)  # exact, then up to whole MiB
    with localcontext(EXACT):
        if number <= 0:
            raise FieldError("must be more than 0", field=field, value=value, accepted=MEMORY_ACCEPTED)
        if number > MAX_MIB:
            raise FieldError("is more than any machine has", field=field, value=value, accepted=_MIB_MAXIMUM)
        if number != number.to_integral_value():
            raise FieldError(
                "is not a whole number of MiB",
                field=field,
                value=value,
                accepted=MEMORY_ACCEPTED + " (a unit such as 'G' is rounded up to whole MiB)",
            )
        return int(number)


def parse_gpu(value: object, field: str = "gpu") -> int:
    """A whole number of GPUs, 0 for none."""
    count = _number(value, field, GPU_ACCEPTED)
    if count is None:
        if not isinstance(value, str):
            raise FieldError("is not a whole number", field=field, value=value, accepted=GPU_ACCEPTED)
        text = _text(value, field, GPU_ACCEPTED)
        if not (text.isdigit() and text.isascii()):
            raise FieldError("is not a whole number", field=field, value=value, accepted=GPU_ACCEPTED)
        count = Decimal(text)
    with localcontext(EXACT):
        if count < 0:
            raise FieldError("is negative", field=field, value=value, accepted=GPU_ACCEPTED)
        if count > MAX_GPU:
            raise FieldError("is more than any machine has", field=field, value=value, accepted=_GPU_MAXIMUM)
        if count != count.to_integral_value():
            raise FieldError("is a fraction of a GPU", field=field, value=value, accepted=GPU_ACCEPTED)
        return int(count)


def parse_gpu_type(value: object, field: str = "gpu_type") -> str:
    """A GPU model name (``H100``, ``A100-80GB``, ``L4``) or a MIG profile (``1g.10gb``)."""
    accepted = "use a GPU model such as 'H100', 'A100-80GB', 'L4' or a MIG profile such as '1g.10gb'"
    if not isinstance(value, str) or not _GPU_TYPE.fullmatch(text := _plain(value)):
        raise FieldError("is not a GPU type", field=field, value=value, accepted=accepted)
    return text


def parse_gpu_vendor(value: object, field: str = "gpu_vendor") -> str:
    """A vendor name (:data:`GPU_VENDORS`) or an explicit extended-resource key such as ``example.com/gpu``."""
    accepted = f"use one of {', '.join(GPU_VENDORS)} or an extended-resource key such as 'example.com/gpu'"
    text = _plain(value) if isinstance(value, str) else None
    if text is not None and (text in GPU_VENDORS or (len(text) <= 316 and _RESOURCE_KEY.fullmatch(text))):
        return text
    raise FieldError("is not a GPU vendor", field=field, value=value, accepted=accepted)


def parse_retry_memory_factor(value: object, field: str = "retry_memory_factor") -> float:
    """How much memory grows after each OOM kill: memory x factor^(earlier OOM kills). A number from 1 to 16
    (in text, plain ASCII digits with at most one point, as the other numeric fields take them)."""
    number = _number(value, field, FACTOR_ACCEPTED)
    if number is None:
        if not isinstance(value, str):
            raise FieldError("is not a number", field=field, value=value, accepted=FACTOR_ACCEPTED)
        text = _text(value, field, FACTOR_ACCEPTED)
        if not _PLAIN_NUMBER.fullmatch(text):
            raise FieldError("is not a number", field=field, value=value, accepted=FACTOR_ACCEPTED)
        number = Decimal(text)
    with localcontext(EXACT):
        if not Decimal(1) <= number <= Decimal(16):
            raise FieldError("is out of range", field=field, value=value, accepted=FACTOR_ACCEPTED)
    return float(number)


PARSERS: Final[dict[str, Callable[[object], object]]] = {
    "cpu": parse_cpu,
    "memory": lambda v: parse_mib(v, "memory"),
    "gpu": parse_gpu,
    "gpu_type": parse_gpu_type,
    "gpu_vendor": parse_gpu_vendor,
    "disk": lambda v: parse_mib(v, "disk"),
    "shared_memory": lambda v: parse_mib(v, "shared_memory"),
    "retry_memory_factor": parse_retry_memory_factor,
}
"""Field name -> validator, in the order fields are shown."""

FIELDS: Final = tuple(PARSERS)
NUMERIC_FIELDS: Final = ("cpu", "memory", "gpu", "disk", "shared_memory", "retry_memory_factor")
"""Fields combined by maximum; the others (``gpu_type``, ``gpu_vendor``) must agree."""
