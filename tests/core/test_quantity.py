"""allotment.quantity agrees with Kubernetes on every quantity form it accepts, and is as strict
as the API server where the Kubernetes Python client is laxer."""

from __future__ import annotations

import decimal
import math
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from allotment.errors import FieldError
from allotment.fields import MAX_MIB, MAX_MILLICORES, parse_cpu, parse_mib
from allotment.quantity import BINARY_SUFFIXES, DECIMAL_SUFFIXES, QuantityError, format_cpu, format_mib, parse_quantity
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as k8s_parse_quantity

MIB = 2**20

# The API server's grammar (k8s.io/apimachinery resource.Quantity, as its OpenAPI description
# writes it), with the exponent restricted to an integer as the Go parser does, and without
# the '-' sign (no resource can be negative).
API_SERVER = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")

digits = st.text("0123456789", min_size=1, max_size=10)
numbers = st.one_of(
    digits,
    st.builds(lambda a, b: f"{a}.{b}", digits, st.text("0123456789", max_size=6)),  # '1.5', '1.'
    st.builds(lambda b: f".{b}", st.text("0123456789", min_size=1, max_size=6)),  # '.5'
)
suffixes = st.sampled_from(["", *BINARY_SUFFIXES, *DECIMAL_SUFFIXES])
exponents = st.builds(
    lambda e, sign, d: f"{e}{sign}{d}",
    st.sampled_from("eE"),
    st.sampled_from(["", "+", "-"]),
    st.text("0123456789", min_size=1, max_size=2),
)
quantities = st.builds(
    lambda sign, number, tail: f"{sign}{number}{tail}", st.sampled_from(["", "+"]), numbers, st.one_of(suffixes, exponents)
)


def agrees_with_client(ours: Decimal, text: str) -> bool:
    """The client computes in Decimal's default context (28 digits, rounding half-even), so where
    the exact value needs more digits the client's is ours rounded to 28; allotment's is exact."""
    theirs = k8s_parse_quantity(text)
    return ours == theirs or (len(ours.normalize(decimal.Context(prec=400)).as_tuple().digits) > 28 and +ours == theirs)


def exact_value(text: str) -> Fraction:
    """The quantity's value computed independently, in fractions."""
    match = re.fullmatch(r"\+?([0-9.]+)(?:([KMGTPE]i)|([numkMGTPE])|[eE]([+-]?[0-9]+))?", text)
    assert match is not None
    number, binary, decimal_suffix, exponent = match.groups()
    value = Fraction(number if not number.endswith(".") else number[:-1] or "0")
    if binary:
        return value * 1024 ** BINARY_SUFFIXES[binary]
    if decimal_suffix:
        return value * Fraction(10) ** (3 * DECIMAL_SUFFIXES[decimal_suffix])
    return value * Fraction(10) ** int(exponent or 0)


@given(quantities)
@settings(max_examples=1500)
def test_agrees_with_the_kubernetes_client_on_every_form_of_the_grammar(text: str) -> None:
    assert API_SERVER.fullmatch(text)
    ours = parse_quantity(text)
    assert agrees_with_client(ours, text)
    assert Fraction(ours) == exact_value(text)
    assert isinstance(ours, Decimal)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16Gi", Decimal(16 * 2**30)),
        ("16384Mi", Decimal(16 * 2**30)),
        ("16G", Decimal(16 * 10**9)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("+1", Decimal(1)),
        ("1e3", Decimal(1000)),
        ("1E-2", Decimal("0.01")),
        ("1e+3", Decimal(1000)),
        ("1Ki", Decimal(1024)),
        ("1Ei", Decimal(2**60)),
        ("2E", Decimal(2 * 10**18)),
        ("1n", Decimal("1e-9")),
        ("1u", Decimal("1e-6")),
        ("0", Decimal(0)),
        ("+.5Mi", Decimal(2**19)),
    ],
)
def test_known_values(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value == k8s_parse_quantity(text)


# The API server rejects all of these. The Python client takes some of them (it strips
# blanks, reads '1K' as 1000, '1e3Gi' as 1e3 GiB, '1_000', 'NaN' and 'Infinity' through
# Decimal), so for those the API server is the reference and we follow it.
REJECTED_BY_BOTH = ["16gb", "1.5.2", "", "Ki", "1ki"]
REJECTED_BY_API_SERVER_ONLY = ["1K", "-1", " 1", "1 Gi", "1e3Gi", "1_000", "NaN", "Infinity"]


@pytest.mark.parametrize("text", REJECTED_BY_BOTH + REJECTED_BY_API_SERVER_ONLY)
def test_rejects_what_kubernetes_rejects(text: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(text)
    assert repr(text) in str(info.value)
    assert not API_SERVER.fullmatch(text)


@pytest.mark.parametrize("text", REJECTED_BY_BOTH)
def test_the_kubernetes_client_rejects_these_too(text: str) -> None:
    with pytest.raises(ValueError):
        k8s_parse_quantity(text)


@pytest.mark.parametrize("text", REJECTED_BY_API_SERVER_ONLY)
def test_the_kubernetes_client_is_laxer_on_these(text: str) -> None:
    """Documents why agreement is checked only on the API server's grammar."""
    k8s_parse_quantity(text)  # does not raise


def test_negative_is_rejected_with_reason() -> None:
    with pytest.raises(QuantityError, match="'-1Gi' is negative"):
        parse_quantity("-1Gi")


def test_huge_exponent_is_rejected() -> None:
    with pytest.raises(QuantityError, match="exponent beyond"):
        parse_quantity("1e1001")


def test_non_string_is_rejected() -> None:
    with pytest.raises(QuantityError, match="is not a string"):
        parse_quantity(5)  # type: ignore[arg-type]


@given(st.text("0123456789.+-eEinumkKMGTP _", max_size=8))
@settings(max_examples=1500)
def test_accepts_exactly_the_api_server_grammar(text: str) -> None:
    """Over arbitrary text: accepted iff the API server's grammar matches, and then the value is the client's."""
    try:
        ours = parse_quantity(text)
    except QuantityError:
        big_exponent = re.fullmatch(r".*[eE][+-]?([0-9]+)", text)
        assert not API_SERVER.fullmatch(text) or (big_exponent is not None and int(big_exponent[1]) > 1000)
        return
    assert API_SERVER.fullmatch(text)
    assert agrees_with_client(ours, text)


# Units of the spec: memory-like fields in MiB (rounded up), cpu in millicores.

memory_quantities = st.builds(
    lambda n, s: f"{n}{s}",
    st.integers(1, 10**6),
    st.sampled_from([*BINARY_SUFFIXES, "k", "M", "G", "T"]),
)


@given(memory_quantities)
def test_memory_quantity_is_the_kubernetes_value_rounded_up_to_mib(text: str) -> None:
    expected = math.ceil(k8s_parse_quantity(text) / MIB)
    if expected > MAX_MIB:  # beyond any machine (e.g. 5000Ei): an error, not a value
        with pytest.raises(FieldError, match="is more than any machine has"):
            parse_mib(text)
    else:
        assert parse_mib(text) == expected


@given(st.builds(lambda n, s: f"{n}{s}", st.integers(1, 10**7), st.sampled_from(["", "m"])))
def test_cpu_quantity_is_the_kubernetes_value_in_millicores(text: str) -> None:
    expected = k8s_parse_quantity(text) * 1000
    if expected > MAX_MILLICORES:  # more than a million cores: an error, not a value
        with pytest.raises(FieldError, match="is more than any machine has"):
            parse_cpu(text)
    else:
        assert parse_cpu(text) == expected


@given(st.integers(1, 10**9))
def test_format_cpu_round_trips(millicores: int) -> None:
    text = format_cpu(millicores)
    assert parse_quantity(text) * 1000 == millicores
    assert k8s_parse_quantity(text) * 1000 == millicores
    assert parse_cpu(text) == millicores


@given(st.integers(1, 2**40))
def test_format_mib_round_trips(mib: int) -> None:
    text = format_mib(mib)
    assert parse_quantity(text) == mib * MIB
    assert k8s_parse_quantity(text) == mib * MIB
    assert parse_mib(text) == mib


@pytest.mark.parametrize(("millicores", "text"), [(500, "500m"), (4000, "4"), (1500, "1500m"), (1, "1m")])
def test_format_cpu(millicores: int, text: str) -> None:
    assert format_cpu(millicores) == text


@pytest.mark.parametrize(("mib", "text"), [(16384, "16Gi"), (1500, "1500Mi"), (1024, "1Gi"), (1, "1Mi")])
def test_format_mib(mib: int, text: str) -> None:
    assert format_mib(mib) == text
