"""The Argo expressions that read a memory parameter (:mod:`allotment.argo.retry`), evaluated by
the expr-lang model in ``argo_support`` over generated values and compared with the exact
reading of :func:`allotment.quantity.parse_quantity` (Kubernetes' grammar):

- :func:`~allotment.argo.retry.quantity_mib_expression` (the base of memory growth) gives the
  quantity's MiB for every Kubernetes suffix (``Ki`` ... ``Ei``, ``n u m k M G T P E``) and
  exponent form, a plain number as MiB, and fails on anything that is not a quantity;
- :func:`~allotment.argo.retry.mib_parameter` (the ``podSpecPatch`` value of a memory, disk or
  shared-memory parameter, evaluated through the port of Argo's templating on the real
  engine) gives the whole MiB (rounded up) of a plain number (MiB) or a quantity, and fails the
  node outside 1Mi..1Ei.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from allotment.argo.retry import PLAIN_MIB, QUANTITY, memory_expression, mib_parameter, parameter_ref, quantity_mib_expression
from allotment.fields import MAX_MIB, parse_mib
from allotment.quantity import QuantityError, parse_quantity
from argo_support import evaluate, substitute
from argo_templating import NodeFailure
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

MIB = Decimal(1024 * 1024)
NAME = "step-memory"
HUGE = Decimal(2) ** 40
SUFFIXES = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"]


@st.composite
def numbers(draw: st.DrawFn) -> str:
    whole = str(draw(st.integers(0, 10**7)))
    fraction = "".join(draw(st.lists(st.sampled_from("0123456789"), max_size=4)))
    return draw(st.sampled_from([whole, f"{whole}.{fraction}", f".{fraction or '5'}"]))


@st.composite
def quantities(draw: st.DrawFn) -> str:
    number = draw(numbers())
    kind = draw(st.sampled_from(["suffix", "exponent", "plain", "signed"]))
    if kind == "suffix":
        return number + draw(st.sampled_from(SUFFIXES))
    if kind == "exponent":
        return f"{number}{draw(st.sampled_from('eE'))}{draw(st.sampled_from(['', '+', '-']))}{draw(st.integers(0, 18))}"
    if kind == "signed":
        return "+" + number + draw(st.sampled_from(["", *SUFFIXES]))
    return number


def _mib_of(value: str) -> float:
    result = evaluate(quantity_mib_expression(parameter_ref(NAME)), {"workflow": {"parameters": {NAME: value}}})
    assert isinstance(result, float)
    return result


def _exact_mib(value: str) -> Decimal:
    """What the expression should read: a plain number is MiB, anything else a Kubernetes quantity."""
    if re.fullmatch(r"[0-9.]+", value):
        return Decimal(value)
    return parse_quantity(value) / MIB


@settings(max_examples=1500, deadline=None)
@given(quantities())
@example("1Ki")
@example("1k")
@example("1Pi")
@example("1P")
@example("1Ei")
@example("1E")
@example("1500m")
@example("7u")
@example("3n")
@example("1e9")
@example("1E9")
@example("65536")
def test_the_growth_base_reads_every_quantity_as_kubernetes_does(value: str) -> None:
    exact = _exact_mib(value)
    got = math.ceil(_mib_of(value))
    want = math.ceil(exact)
    if exact >= HUGE:  # float64 keeps 53 bits: beyond 2^40 MiB (1 EiB) the fraction of a MiB goes
        assert abs(got - exact) <= exact * Decimal(2) ** -50 + 1
        event("beyond 1 EiB")
        return
    # float64: a decimal fraction that is exactly a whole MiB can parse one ulp above it.
    assert got == want or (got == want + 1 and exact == exact.to_integral_value() and "." in value), (value, got, want)
    event("off by one ulp" if got != want else "exact")
    if re.fullmatch(r"[0-9]+", value) and int(value) > 0:
        assert got == parse_mib(value)  # the same reading as everywhere else in allotment


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.eEKMGTPEikmnu+- ", max_size=8))
def test_the_growth_base_fails_on_what_is_not_a_quantity(value: str) -> None:
    try:
        exact = _exact_mib(value)
    except (QuantityError, ArithmeticError) as e:
        if "exponent beyond" in str(e):
            return  # Go reads 1e-5000 as 0; parse_quantity refuses such exponents
        with pytest.raises(ValueError):
            _mib_of(value)
        event("not a quantity: fails")
        return
    try:
        got = math.ceil(_mib_of(value))
    except ValueError as e:  # beyond float64: Go's ParseFloat fails, and so does the expression
        assert "out of range" in str(e) and exact > Decimal(10) ** 300, (value, e)
        event("beyond float64: fails")
        return
    assert got in (math.ceil(exact), math.ceil(exact) + 1) or (exact >= HUGE and abs(got - exact) <= exact * Decimal(2) ** -50 + 1)
    event("a quantity")


@settings(max_examples=1000, deadline=None)
@given(quantities())
def test_a_memory_parameter_reaches_kubernetes_as_whole_mib_or_fails_the_node(value: str) -> None:
    mib = math.ceil(_mib_of(value))
    if not 1 <= mib <= MAX_MIB:
        with pytest.raises(NodeFailure, match="step-memory must be from 1Mi to"):
            substitute(mib_parameter(NAME), {NAME: value})
        event("out of range: the node fails")
        return
    written = substitute(mib_parameter(NAME), {NAME: value})
    assert written == f"{mib}Mi"
    if re.fullmatch(PLAIN_MIB, value):
        assert parse_quantity(written) == math.ceil(Decimal(value)) * MIB
    else:
        assert re.fullmatch(QUANTITY, value)
    event("whole MiB")


@settings(max_examples=300, deadline=None)
@given(quantities(), st.sampled_from([1.1, 1.5, 2, 3.7]), st.none() | st.integers(1, 2**21))
def test_growth_of_a_submitted_quantity(value: str, factor: float, cap: int | None) -> None:
    base = math.ceil(_mib_of(value))
    bound = MAX_MIB if cap is None else cap
    for retries in range(4):
        if not 1 <= base <= bound:
            with pytest.raises(NodeFailure, match="step-memory must be from 1Mi to"):
                substitute(memory_expression(NAME, factor, cap), {NAME: value}, retries)
            continue
        written = substitute(memory_expression(NAME, factor, cap), {NAME: value}, retries)
        grown = math.ceil(base * factor**retries)
        want = max(min(grown, bound), base)
        assert written == f"{want}Mi"


@pytest.mark.parametrize("value", ["1.2.3", "64GB", "1Gi ", "-1Gi", "1e", "Gi", "", "0x10", "1_000"])
def test_not_a_quantity(value: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        _mib_of(value)
