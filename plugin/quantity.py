"""Kubernetes quantities, parsed and formatted without the Kubernetes client.

The grammar is Kubernetes' own (``k8s.io/apimachinery/pkg/api/resource``)::

    quantity ::= [sign] number [suffix | exponent]
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei          (powers of 1024)
               | n | u | m | k | M | G | T | P | E   (powers of 1000)
    exponent ::= ("e" | "E") [sign] digits

Values are exact (``decimal.Decimal``); nothing here rounds: the arithmetic runs in
:data:`EXACT`, a context that raises rather than round, and the text is at most
:data:`MAX_QUANTITY_LENGTH` characters, so its digits fit that context's precision and no input
costs more than microseconds (docs/design.md §7.2: runtime input is hostile). Negative quantities
are rejected, since no resource can be negative. ``kubernetes.utils.parse_quantity`` costs
about 0.3 s to import and is laxer than the API server (it takes ``1K`` or ``1e3Gi``);
this module follows the API server.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, DecimalException, Inexact, InvalidOperation, Overflow, Rounded, localcontext
from typing import Final

__all__ = [
    "BINARY_SUFFIXES",
    "DECIMAL_SUFFIXES",
    "EXACT",
    "MAX_QUANTITY_LENGTH",
    "QuantityError",
    "format_cpu",
    "format_mib",
    "parse_quantity",
]

BINARY_SUFFIXES: dict[str, int] = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
"""Binary suffixes and their power of 1024."""

DECIMAL_SUFFIXES: dict[str, int] = {"n": -3, "u": -2, "m": -1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
"""Decimal suffixes and their power of 1000."""

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_MAX_EXPONENT = 1000  # beyond this no resource is meant; keeps Decimal arithmetic small
MAX_QUANTITY_LENGTH: Final = 64
"""The longest quantity text accepted: ``"17179869184"`` or ``"16Gi"`` need a dozen characters;
a longer text is a mistake or an attack (a million digits cost seconds to convert)."""

EXACT: Final = Context(prec=200, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation, Overflow, Inexact, Rounded])
"""A decimal context for exact arithmetic: 200 digits (a bounded input needs under 90) and
every exponent, and it raises instead of rounding (the default context rounds to 28 digits,
so ``0.0010000000000000000000000000001`` cores became exactly 1m)."""


class QuantityError(ValueError):
    """``text`` is not a Kubernetes quantity (the message says why)."""


def parse_quantity(text: str) -> Decimal:
    """Parse a Kubernetes quantity into its exact value in base units (bytes, cores).

    >>> parse_quantity("16Gi")
    Decimal('17179869184')
    >>> parse_quantity("500m")
    Decimal('0.500')
    """
    if not isinstance(text, str):
        raise QuantityError(f"a value of type {type(text).__name__} is not a string")
    if len(text) > MAX_QUANTITY_LENGTH:
        raise QuantityError(f"a quantity is at most {MAX_QUANTITY_LENGTH} characters, this one {len(text)}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity")
    if match["sign"] == "-":
        raise QuantityError(f"{text!r} is negative")
    suffix, exponent = match["suffix"], match["exponent"]
    try:
        with localcontext(EXACT):
            number = Decimal(match["number"])
            if suffix in BINARY_SUFFIXES:
                return number * (Decimal(1024) ** BINARY_SUFFIXES[suffix])
            if suffix is not None:
                return number.scaleb(3 * DECIMAL_SUFFIXES[suffix])
            if exponent is not None:
                power = int(exponent)
                if abs(power) > _MAX_EXPONENT:
                    raise QuantityError(f"{text!r} has an exponent beyond ±{_MAX_EXPONENT}")
                return number.scaleb(power)
            return number
    except DecimalException as e:  # pragma: no cover - a bounded text always fits EXACT
        raise QuantityError(f"{text!r} cannot be computed exactly") from e


def format_cpu(millicores: int) -> str:
    """Kubernetes form of a CPU amount given in millicores: ``4000 -> "4"``, ``500 -> "500m"``."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_mib(mib: int) -> str:
    """Kubernetes form of an amount given in MiB: ``16384 -> "16Gi"``, ``1500 -> "1500Mi"``."""
    if mib % 1024 == 0:
        return f"{mib // 1024}Gi"
    return f"{mib}Mi"
