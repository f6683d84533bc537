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
``retry_memory_factor``   number >= 1                                 float
========================  ==========================================  ==========

A number with no unit is MiB for the memory-like fields (as AWS Batch and Metaflow count),
whether it is an ``int`` or a string such as ``"16384"``. Decimal units are exact and
rounded **up** to whole MiB (``"16G"`` is 16·10⁹ bytes = 15259 MiB). Errors are
:class:`~allotment.errors.FieldError` and list what is accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Final

from .errors import FieldError
from .quantity import BINARY_SUFFIXES, QuantityError, parse_quantity
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

_MIB = Decimal(1024 * 1024)
MAX_MILLICORES: Final = 10**9
"""1,000,000 cores: beyond any machine; a larger value is a mistake, not a request."""
MAX_MIB: Final = 2**40
"""1 EiB (2^40 MiB): beyond any machine, and far inside Kubernetes' int64 byte counts."""
MAX_GPU: Final = 2**16

MEMORY_ACCEPTED: Final = "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
CPU_ACCEPTED: Final = "use a number of cores (4, 0.5, '2') or millicores ('500m')"
GPU_ACCEPTED: Final = "use a whole number >= 0 (0 means no GPU; for part of a GPU use a MIG gpu_type such as '1g.10gb')"

GPU_VENDORS: Final = GPU_VENDOR_KEYS
"""Vendor name -> Kubernetes extended-resource key (the table lives in :mod:`allotment.targets`)."""

_GPU_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# An extended resource name: a DNS subdomain prefix, '/', and a name (Kubernetes' rule).
_RESOURCE_KEY = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_BYTE_UNITS = {f"{s}B": s for s in ("k", "M", "G", "T", "P", "E")} | {f"{s}B": s for s in BINARY_SUFFIXES}


def _number(value: object, field: str, accepted: str) -> Decimal | None:
    """An int/float/Decimal as an exact Decimal; None for other types. Rejects bools."""
    if isinstance(value, bool):
        raise FieldError("is a bool, not a number", field=field, value=value, accepted=accepted)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError("is not a finite number", field=field, value=value, accepted=accepted)
        return Decimal(repr(value))  # 0.1 -> Decimal('0.1'), not the binary expansion
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise FieldError("is not a finite number", field=field, value=value, accepted=accepted)
        return value
    return None


def parse_cpu(value: object, field: str = "cpu") -> int:
    """CPU in cores (number or unit-less string) or a quantity with ``m``/``u``/``n``; returns millicores."""
    cores = _number(value, field, CPU_ACCEPTED)
    if cores is None:
        if not isinstance(value, str):
            raise FieldError(f"is a {type(value).__name__}", field=field, value=value, accepted=CPU_ACCEPTED)
        try:
            cores = parse_quantity(value)
        except QuantityError as e:
            raise FieldError("is not a CPU quantity", field=field, value=value, accepted=CPU_ACCEPTED) from e
        if value.endswith(("i", "k", "M", "G", "T", "P", "E")):
            raise FieldError("has a unit that is not for CPUs", field=field, value=value, accepted=CPU_ACCEPTED)
    millicores = cores * 1000
    if millicores <= 0:
        raise FieldError("must be more than 0", field=field, value=value, accepted=CPU_ACCEPTED)
    if millicores != millicores.to_integral_value():
        raise FieldError(
            "is finer than 1m (a thousandth of a core), which Kubernetes cannot express",
            field=field,
            value=value,
            accepted=CPU_ACCEPTED,
        )
    if millicores > MAX_MILLICORES:
        raise FieldError("is more than any machine has", field=field, value=value, accepted=f"{CPU_ACCEPTED}, at most 1000000 cores")
    return int(millicores)


def parse_mib(value: object, field: str = "memory") -> int:
    """An amount of memory or disk: a number of MiB, or a quantity (rounded up to whole MiB)."""
    number = _number(value, field, MEMORY_ACCEPTED)
    if number is None:
        if not isinstance(value, str):
            raise FieldError(f"is a {type(value).__name__}", field=field, value=value, accepted=MEMORY_ACCEPTED)
        text = value
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
            mib = math.ceil(amount / _MIB)
            if mib <= 0:
                raise FieldError("must be more than 0", field=field, value=value, accepted=MEMORY_ACCEPTED)
            return _at_most_max_mib(mib, field, value)
    if number <= 0:
        raise FieldError("must be more than 0", field=field, value=value, accepted=MEMORY_ACCEPTED)
    if number != number.to_integral_value():
        raise FieldError(
            "is not a whole number of MiB",
            field=field,
            value=value,
            accepted=MEMORY_ACCEPTED + " (a unit such as 'G' is rounded up to whole MiB)",
        )
    return _at_most_max_mib(int(number), field, value)


def _at_most_max_mib(mib: int, field: str, value: object) -> int:
    if mib > MAX_MIB:
        raise FieldError("is more than any machine has", field=field, value=value, accepted=f"{MEMORY_ACCEPTED}, at most 1Ei")
    return mib


def parse_gpu(value: object, field: str = "gpu") -> int:
    """A whole number of GPUs, 0 for none."""
    count = _number(value, field, GPU_ACCEPTED)
    if count is None:
        if isinstance(value, str) and value.isdigit() and value.isascii():
            count = Decimal(value)
        else:
            raise FieldError("is not a whole number", field=field, value=value, accepted=GPU_ACCEPTED)
    if count < 0:
        raise FieldError("is negative", field=field, value=value, accepted=GPU_ACCEPTED)
    if count != count.to_integral_value():
        raise FieldError("is a fraction of a GPU", field=field, value=value, accepted=GPU_ACCEPTED)
    if count > MAX_GPU:
        raise FieldError("is more than any machine has", field=field, value=value, accepted=f"{GPU_ACCEPTED}, at most {MAX_GPU}")
    return int(count)


def parse_gpu_type(value: object, field: str = "gpu_type") -> str:
    """A GPU model name (``H100``, ``A100-80GB``, ``L4``) or a MIG profile (``1g.10gb``)."""
    accepted = "use a GPU model such as 'H100', 'A100-80GB', 'L4' or a MIG profile such as '1g.10gb'"
    if not isinstance(value, str) or not _GPU_TYPE.fullmatch(value):
        raise FieldError("is not a GPU type", field=field, value=value, accepted=accepted)
    return value


def parse_gpu_vendor(value: object, field: str = "gpu_vendor") -> str:
    """A vendor name (:data:`GPU_VENDORS`) or an explicit extended-resource key such as ``example.com/gpu``."""
    accepted = f"use one of {', '.join(GPU_VENDORS)} or an extended-resource key such as 'example.com/gpu'"
    if isinstance(value, str) and (value in GPU_VENDORS or (len(value) <= 316 and _RESOURCE_KEY.fullmatch(value))):
        return value
    raise FieldError("is not a GPU vendor", field=field, value=value, accepted=accepted)


def parse_retry_memory_factor(value: object, field: str = "retry_memory_factor") -> float:
    """How much memory grows on each retry: memory x factor^(try-1). A number from 1 to 16."""
    accepted = "use a number from 1 (no growth) to 16, e.g. 1.5"
    try:
        number = _number(value, field, accepted)
        if number is None and isinstance(value, str):
            number = Decimal(value)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise FieldError("is not a number", field=field, value=value, accepted=accepted)
    if not Decimal(1) <= number <= Decimal(16):
        raise FieldError("is out of range", field=field, value=value, accepted=accepted)
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
