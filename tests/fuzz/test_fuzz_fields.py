"""Fuzz: quantity strings and every field parser. Whatever the input, a parser returns a value
of its field's type inside the field's bounds, or raises an AllotmentError that names the field;
and a quantity it accepts has exactly the value an independent model (fractions) computes:
a CPU finer than 1m is an error, memory rounds up, nothing is rounded at 28 digits."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from allotment.errors import AllotmentError
from allotment.fields import FIELDS, MAX_GPU, MAX_MIB, MAX_MILLICORES, PARSERS
from allotment.quantity import BINARY_SUFFIXES, DECIMAL_SUFFIXES, QuantityError, parse_quantity
from fuzz_support import examples, hostile_values, outcome, quantity_like, texts
from hypothesis import given
from hypothesis import strategies as st

_GRAMMAR = re.compile(r"\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?[0-9]+))?")
_BYTE_UNITS = {f"{s}B": s for s in ("k", "M", "G", "T", "P", "E", *BINARY_SUFFIXES)}
MIB = 2**20


def exact(text: str) -> tuple[Fraction, str | None, bool] | None:
    """The value of a quantity text in base units, its suffix, and whether it had a unit or
    exponent; None where the API server's grammar (or allotment's bounds) rejects it."""
    match = _GRAMMAR.fullmatch(text)
    if match is None or len(text) > 64:
        return None
    number, suffix, exponent = match.groups()
    value = Fraction(number.rstrip(".") or "0") if number != "." else Fraction(0)
    if suffix in BINARY_SUFFIXES:
        return value * 1024 ** BINARY_SUFFIXES[suffix], suffix, True
    if suffix is not None:
        return value * Fraction(10) ** (3 * DECIMAL_SUFFIXES[suffix]), suffix, True
    if exponent is not None:
        if abs(int(exponent)) > 1000:
            return None
        return value * Fraction(10) ** int(exponent), None, False
    return value, None, False


def model_mib(text: str) -> int | None:
    """What a memory-like field must make of ``text`` (MiB), or None for an error."""
    if len(text) > 64:
        return None
    for unit, suffix in _BYTE_UNITS.items():
        if text.endswith(unit):
            text = text[: -len(unit)] + suffix
            break
    parsed = exact(text)
    if parsed is None:
        return None
    value, suffix, _ = parsed
    if suffix in ("n", "u", "m") or value <= 0:
        return None
    mib = math.ceil(value / MIB) if suffix is not None else value
    if mib != int(mib) or mib > MAX_MIB:
        return None
    return int(mib)


def model_millicores(text: str) -> int | None:
    parsed = exact(text)
    if parsed is None:
        return None
    value, suffix, _ = parsed
    if suffix is not None and suffix not in ("n", "u", "m"):
        return None
    millicores = value * 1000
    if millicores <= 0 or millicores != int(millicores) or millicores > MAX_MILLICORES:
        return None
    return int(millicores)


@given(st.one_of(quantity_like, texts))
@examples(400)
def test_parse_quantity_raises_only_quantity_errors_and_is_exact(text: str) -> None:
    try:
        value = parse_quantity(text)
    except QuantityError as e:
        assert len(str(e)) < 200
        assert exact(text) is None
        return
    parsed = exact(text)
    assert parsed is not None and Fraction(value) == parsed[0]


@given(st.sampled_from(["memory", "disk", "shared_memory"]), st.one_of(quantity_like, texts))
@examples(400)
def test_memory_like_fields_match_the_exact_model(field: str, text: str) -> None:
    result = outcome(lambda: PARSERS[field](text), [field])
    assert (None if isinstance(result, AllotmentError) else result) == model_mib(text)


@given(st.one_of(quantity_like, texts))
@examples(400)
def test_cpu_matches_the_exact_model(text: str) -> None:
    result = outcome(lambda: PARSERS["cpu"](text), ["cpu"])
    assert (None if isinstance(result, AllotmentError) else result) == model_millicores(text)


_TYPES = {
    "cpu": int,
    "memory": int,
    "gpu": int,
    "disk": int,
    "shared_memory": int,
    "retry_memory_factor": float,
    "gpu_type": str,
    "gpu_vendor": str,
}
_BOUNDS = {
    "cpu": (1, MAX_MILLICORES),
    "memory": (1, MAX_MIB),
    "disk": (1, MAX_MIB),
    "shared_memory": (1, MAX_MIB),
    "gpu": (0, MAX_GPU),
    "retry_memory_factor": (1, 16),
}


@given(st.sampled_from(FIELDS), hostile_values)
@examples(800)
def test_every_field_parser_takes_any_value(field: str, value: object) -> None:
    result = outcome(lambda: PARSERS[field](value), [field])
    if isinstance(result, AllotmentError):
        assert str(result).startswith(f"{field}=")
        return
    assert type(result) is _TYPES[field]  # plain types only, never a caller's subclass
    if field in _BOUNDS:
        low, high = _BOUNDS[field]
        assert low <= result <= high  # type: ignore[operator]
    else:
        assert 1 <= len(result) <= 316  # type: ignore[arg-type]
