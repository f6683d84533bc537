"""Fuzz: ``Resources(...)``, its ``from_input``/``model_validate``/``model_validate_json``, and the
decorators' keyword arguments. Any keywords and values give a spec or an AllotmentError naming
one of the keywords; a spec that is made holds plain values inside the bounds, and resolves."""

from __future__ import annotations

import json
from typing import Any

from allotment import AllotmentError, Resources, batch, kubernetes, resources
from allotment.decorators import spec_of
from allotment.fields import FIELDS
from allotment.resolve import resolve
from fuzz_support import examples, hostile_values, json_values, outcome
from hypothesis import given
from hypothesis import strategies as st

_OPTIONS = ("qos", "namespace", "image", "node_selector", "tolerations", "queue", "job_definition", "platform")
keywords = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.sampled_from(_OPTIONS), st.text(min_size=1, max_size=12)), hostile_values, max_size=5
)
_DECORATORS = {"resources": resources, "kubernetes": kubernetes, "batch": batch}


def _check_spec(made: Resources) -> None:
    for name, value in made.items():
        assert type(value) in (int, float, str), (name, type(value))
    repr(made)  # a made spec always shows


@given(keywords)
@examples(300)
def test_resources_constructor_and_validators(kwargs: dict[str, Any]) -> None:
    names = [*kwargs, "unknown field", "Resources"]
    for call in (
        lambda: Resources(**kwargs),
        lambda: Resources.from_input(kwargs, step="s", source="fuzz"),
        lambda: Resources.model_validate(kwargs),
    ):
        made = outcome(call, names)
        if isinstance(made, Resources):
            _check_spec(made)
            outcome(
                lambda made=made: resolve(None, step="s", extra=[(made, __import__("allotment.sources").sources.Source("resources="))]),
                FIELDS,
            )  # type: ignore[misc]


def _dumps(value: object) -> str | None:
    try:
        return json.dumps(value)
    except ValueError:  # an int past Python's 4300-digit str() limit: given as raw digits below
        return None


_json_tokens = st.one_of(
    json_values.filter(lambda v: _dumps(v) is not None).map(_dumps),
    st.builds(lambda d, n: d * n, st.sampled_from(["9", "1", "0"]), st.integers(1, 200_000)),  # a number of any length
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-9, 9), st.integers(-400_000, 400_000)),
    st.text(max_size=12),  # not JSON at all
)


@given(st.dictionaries(st.sampled_from(FIELDS), _json_tokens, max_size=4))
@examples(200)
def test_resources_from_json(tokens: dict[str, str]) -> None:
    text = "{" + ",".join(f'"{k}": {v}' for k, v in tokens.items()) + "}"
    made = outcome(lambda: Resources.model_validate_json(text), [*tokens, "Resources"])
    if isinstance(made, Resources):
        _check_spec(made)


@given(st.sampled_from(sorted(_DECORATORS)), keywords)
@examples(300)
def test_decorator_keywords(decorator: str, kwargs: dict[str, Any]) -> None:
    def step() -> None: ...

    made = outcome(lambda: _DECORATORS[decorator](**kwargs)(step), [*kwargs, "unknown keyword"])
    if isinstance(made, AllotmentError):
        return
    spec = spec_of(made)
    assert spec is not None
    outcome(lambda: resolve(spec), FIELDS)


@given(hostile_values)
@examples(100)
def test_a_decorator_given_a_positional_argument(value: object) -> None:
    outcome(lambda: resources(value), ["@resources"])  # type: ignore[call-overload]
