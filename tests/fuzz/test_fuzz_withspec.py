"""Fuzz: the runtime ``with`` grammar through :func:`parse_withs` (a black box here), and the
runtime block parser :func:`parse_runtime` with hostile payloads, what a run's conf may carry.
Either specs come back (and resolve), or an AllotmentError: short, and naming the field or the
part of the input that was wrong."""

from __future__ import annotations

from typing import Any

from allotment import AllotmentError
from allotment.fields import FIELDS
from allotment.resolve import resolve
from allotment.withspec import RUNTIME_KEYS, WITH_KEYS, parse_runtime, parse_withs
from fuzz_support import examples, json_values, names, outcome, spec_strings
from hypothesis import given
from hypothesis import strategies as st


@given(spec_strings, st.sampled_from(["with", "set"]))
@examples(400)
def test_parse_withs(text: str, kind: str) -> None:
    parsed = outcome(lambda: parse_withs(text, "--with", kind=kind), ["--with"])
    if isinstance(parsed, AllotmentError):
        return
    for spec in parsed:
        assert spec.kind == kind
        for name, value in spec.resources.items():
            assert name in WITH_KEYS and type(value) in (int, str)
        outcome(lambda spec=spec: resolve(None, step=spec.step or "train", backend=spec.backend or "local", withs=[spec]), FIELDS)


runtime_blocks = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "with": st.one_of(spec_strings, st.lists(spec_strings, max_size=3), json_values),
            "set": st.one_of(spec_strings, st.lists(spec_strings, max_size=3), json_values),
            "tasks": st.one_of(
                st.dictionaries(
                    names,
                    st.one_of(
                        spec_strings,
                        st.lists(spec_strings, max_size=2),
                        st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
                        json_values,
                    ),
                    max_size=3,
                ),
                json_values,
            ),
        },
    ),
    st.dictionaries(st.one_of(st.sampled_from(RUNTIME_KEYS), st.text(max_size=8)), json_values, max_size=3),
    json_values,
)


@given(runtime_blocks, st.one_of(st.none(), st.lists(st.sampled_from(["train", "grp.train", "etl"]), max_size=3)))
@examples(400)
def test_parse_runtime(block: Any, steps: list[str] | None) -> None:
    origin = "dag_run.conf['allotment']"
    parsed = outcome(lambda: parse_runtime(block, origin, accepted="write e.g. {'with': 'memory=64Gi'}", steps=steps), [origin])
    if isinstance(parsed, AllotmentError):
        return
    withs, sets = parsed
    for spec in (*withs, *sets):
        if steps is not None and spec.step is not None:
            assert spec.step in steps
        for name in dict(spec.resources.items()):
            assert name in WITH_KEYS
    for step in steps or ["train"]:
        outcome(lambda step=step: resolve(None, step=step, backend="kubernetes", withs=withs, sets=sets), FIELDS)
