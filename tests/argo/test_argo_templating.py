"""The port of Argo's templating (``argo_templating``) against Argo's own test vectors and Go's
encodings, so that the injection tests run on a model that behaves as the controller does.

Vectors from argo-workflows v4.1.2 (``f016ad89eb``): ``util/template/replace_test.go``
(``Test_Replace``), ``util/template/template_test.go`` (``Test_Template_Replace``: escaped
characters, nested tags over several passes). Expected Go outputs of ``encoding/json``,
``strconv.Quote`` and ``strconv.FormatFloat`` are the documented behaviour of Go 1.26.
"""

from __future__ import annotations

import json

import pytest
from argo_templating import (
    ARGO_COMMIT,
    NodeFailure,
    TemplateError,
    Trace,
    Unmodelled,
    apply_pod_spec_patch,
    engine,
    go_float,
    go_json,
    go_quote_inner,
    go_unmarshal,
    json_valid,
    replace,
    run_attempt,
    split_tags,
    strategic_merge,
)


def _value(text: str, env: dict[str, str] | None = None, trace: Trace | None = None) -> str:
    """``processTemplate`` of template_test.go: a struct with one string field, marshalled,
    replaced (allowUnresolved), unmarshalled."""
    out = go_unmarshal(replace(go_json({"value": text}), env or {}, trace))
    assert isinstance(out, dict)
    value = out["value"]
    assert isinstance(value, str)
    return value


def test_the_port_names_the_argo_commit_it_follows() -> None:
    assert ARGO_COMMIT == "f016ad89eb269d282aec06dc491c29f396a38df4"


# -- Go's encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "marshalled"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("<&>", '"\\u003c\\u0026\\u003e"'),  # HTML-safe escaping, on by default in json.Marshal
        ("\n\r\t\b\f", '"\\n\\r\\t\\b\\f"'),
        ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
        ("\x7f", '"\x7f"'),  # DEL is not escaped
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("é😀", '"é😀"'),  # UTF-8 as it is
        ("\ud800", '"\ufffd"'),  # a lone surrogate is U+FFFD in a Go string
    ],
)
def test_json_marshal_escapes_strings_as_go_does(value: str, marshalled: str) -> None:
    assert go_json(value) == marshalled
    assert json_valid(marshalled)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ('a"b', 'a\\"b'),
        ("a\\b", "a\\\\b"),
        ("\a\b\f\n\r\t\v", "\\a\\b\\f\\n\\r\\t\\v"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("é", "é"),
        ("\u200b", "\\u200b"),  # not printable (Cf)
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_strconv_quote_as_go_writes_it(value: str, quoted: str) -> None:
    assert go_quote_inner(value) == quoted


@pytest.mark.parametrize(
    ("number", "text"),
    [(2.0, "2"), (0.5, "0.5"), (1e20, "100000000000000000000"), (1e21, "1e+21"), (1e-6, "0.000001"), (1e-7, "1e-7"), (-0.0, "-0")],
)
def test_json_marshal_writes_floats_as_go_does(number: float, text: str) -> None:
    assert go_float(number) == text


def test_go_json_validity_refuses_what_python_alone_would_take() -> None:
    assert not json_valid("NaN") and not json_valid('{"a": Infinity}')
    assert not json_valid('"a\\x01"') and not json_valid('"\\U0001f600"') and not json_valid('"\\a"')
    assert json_valid('"\\u0041"')


# -- util/template: Test_Replace, Test_Template_Replace ------------------------------------------


def test_an_unclosed_tag_is_an_error() -> None:
    assert split_tags("a{{b}}c") == [("a", "b"), ("c", None)]
    with pytest.raises(TemplateError, match="Cannot find end tag"):
        replace(go_json("{{"), {})


def test_simple_tags() -> None:
    assert replace(go_json("{{foo}}"), {"foo": "bar"}) == go_json("bar")
    assert replace(go_json("{{foo}}"), {}) == go_json("{{foo}}")  # allowUnresolved: written back
    assert _value("{{customParam}}", {"customParam": "This is ' John"}) == "This is ' John"
    assert _value("{{customParam}}", {"customParam": 'This is " John'}) == 'This is " John'


def test_a_simple_tag_escapes_once_so_a_value_with_a_quote_leaves_an_inner_json_string() -> None:
    """The root of the issue: one level of escaping for a JSON string inside a JSON string."""
    patch = '{"containers":[{"name":"main","resources":{"requests":{"cpu":"{{x}}"}}}]}'
    value = '1"}}}],"hostNetwork":true,"containers":[{"name":"main","resources":{"requests":{"cpu":"1'
    replaced = go_unmarshal(replace(go_json({"podSpecPatch": patch}), {"x": value}))
    assert json.loads(replaced["podSpecPatch"])["hostNetwork"] is True


def test_a_control_character_in_a_simple_value_makes_invalid_json() -> None:
    with pytest.raises(TemplateError, match="result was invalid JSON"):
        replace(go_json("{{x}}"), {"x": "a\x01b"})  # strconv.Quote writes \x01, not a JSON escape


@pytest.mark.parametrize(
    ("expression", "want"),
    [
        ("{{='test'}}", "test"),
        ('{{="test"}}', "test"),
        ("{{='some\\\\path\\\\with\\\\backslashes'}}", "some\\path\\with\\backslashes"),
        ("{{='some\\nstring\\nwith\\nescaped\\nnewlines'}}", "some\nstring\nwith\nescaped\nnewlines"),
        ("{{=1 + \n1}}", "2"),
        ('{{="\'"}}', "'"),
        ("{{='\"'}}", '"'),
        ("{{=true == false}}", "false"),
    ],
)
def test_expressions_with_escaped_characters(expression: str, want: str) -> None:
    assert _value(expression) == want


def test_expressions() -> None:
    assert replace(go_json("{{=foo}}"), {"foo": "bar"}) == go_json("bar")
    env = {"workflow.status": "Succeeded"}
    assert _value('{{=workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"}}', env) == "SUCCESSFUL"
    assert (
        _value('{{=workflow.failures == "{\\"foo\\":\\"bar\\"}" ? "SUCCESSFUL" : "FAILED"}}', {"workflow.failures": '{"foo":"bar"}'})
        == "SUCCESSFUL"
    )


def test_late_variables_and_failures_are_left_unresolved_and_syntax_errors_are_errors() -> None:
    trace = Trace()
    assert _value("{{=asInt(retries) + 1}}", {}, trace) == "{{=asInt(retries) + 1}}"
    assert _value("{{=asInt(retries) + 1}}", {"retries": "2"}) == "3"
    assert (
        _value('{{=workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"}}', {})
        == '{{=workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"}}'
    )
    assert _value("{{=int('x')}}", {}, trace) == "{{=int('x')}}"  # a runtime error: unresolved
    assert trace.unresolved[0].reason == "retries is not known yet"
    assert "invalid operation: int(x)" in trace.unresolved[1].reason
    with pytest.raises(TemplateError, match="failed to evaluate expression"):
        _value("{{=!}}")
    with pytest.raises(TemplateError, match="failed to evaluate expression"):
        _value("{{=asInt(retries) +}}")  # parsed before the late variables are looked for


def test_an_expression_result_is_marshalled_then_cut_of_its_quotes() -> None:
    assert _value("{{='a\"b<c'}}") == 'a"b<c'  # one level of escaping: the string's quote is back
    patch = '{"a":"{{=x + \'\'}}"}'
    replaced = go_unmarshal(replace(go_json({"podSpecPatch": patch}), {"x": '1","b":"2'}))
    assert json.loads(replaced["podSpecPatch"]) == {"a": "1", "b": "2"}


def test_nested_tags_resolve_over_several_passes() -> None:
    env = {"inner": "suffix", "outer-suffix": "final-value"}
    once = replace('{"key": "{{outer-{{inner}}}}"}', env)
    assert json.loads(once) == {"key": "{{outer-suffix}}"}
    assert json.loads(replace(once, env)) == {"key": "final-value"}
    env = {"C": "valC", "B valC": "valB", "A valB": "final"}
    first = replace('{"key": "{{A {{B {{C}}}}}}"}', env)
    assert json.loads(first) == {"key": "{{A {{B valC}}}}"}
    assert json.loads(replace(replace(first, env), env)) == {"key": "final"}


def test_what_golem_cannot_run_as_argo_does_is_refused_loudly() -> None:
    with pytest.raises(Unmodelled, match="golem divides ints as ints"):
        engine().evaluate("7 / 2", {})
    assert engine().evaluate("float(7) / 2", {}) == 3.5
    with pytest.raises(Unmodelled, match="Argo's own function"):
        engine().evaluate("sprig.int('1')", {})
    with pytest.raises(Unmodelled, match="whole map"):
        engine().evaluate("workflow.parameters", {"workflow.parameters.a": "1"})


# -- ApplyPodSpecPatch ---------------------------------------------------------------------------


def test_strategic_merge_merges_named_lists_and_honours_directives() -> None:
    spec = {"containers": [{"name": "main", "image": "a", "env": [{"name": "A", "value": "1"}]}], "tolerations": [{"key": "x"}]}
    merged = strategic_merge(spec, {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}], "tolerations": [{"key": "y"}]})
    assert merged["containers"] == [{"name": "main", "image": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]
    assert merged["tolerations"] == [{"key": "y"}]  # no patch strategy: replaced
    assert strategic_merge(spec, {"containers": [{"name": "main", "$patch": "delete"}]})["containers"] == []
    assert strategic_merge(spec, {"containers": [{"$patch": "replace"}, {"name": "x"}]})["containers"] == [{"name": "x"}]
    assert "tolerations" not in strategic_merge(spec, {"tolerations": None})
    with pytest.raises(Unmodelled):
        strategic_merge(spec, {"$retainKeys": ["containers"]})


def test_a_patch_is_json_or_yaml_and_its_quantities_must_parse() -> None:
    spec = {"containers": [{"name": "main", "resources": {"requests": {"cpu": "1"}}}]}
    assert apply_pod_spec_patch(spec, ['{"containers":[{"name":"main","resources":{"requests":{"cpu":"2"}}}]}'])["containers"][0][
        "resources"
    ] == {"requests": {"cpu": "2"}}
    yaml_patch = "containers:\n- name: main\n  resources:\n    requests:\n      cpu: 3\n"
    assert apply_pod_spec_patch(spec, [yaml_patch])["containers"][0]["resources"]["requests"]["cpu"] == 3
    with pytest.raises(NodeFailure, match="quantities must match the regular expression"):
        apply_pod_spec_patch(spec, ['{"containers":[{"name":"main","resources":{"requests":{"cpu":"{{=int(\'x\')}}m"}}}]}'])


def test_an_attempt_runs_every_pass_and_retries_reach_the_patch() -> None:
    template = {
        "name": "t",
        "container": {"image": "alpine", "resources": {"requests": {"memory": "1Gi"}}},
        "retryStrategy": {"limit": "3"},
        "podSpecPatch": '{"containers":[{"name":"main","resources":{"requests":{"memory":"{{=1024 * (asInt(retries) + 1)}}Mi"}}}]}',
    }
    document = {"kind": "Workflow", "metadata": {"name": "w"}, "spec": {"templates": [template]}}
    for retries in range(3):
        spec = run_attempt(document, "t", retries=retries).pod_spec
        assert spec["containers"][0]["resources"]["requests"]["memory"] == f"{1024 * (retries + 1)}Mi"
    no_retry = {**template, "retryStrategy": None}
    del no_retry["retryStrategy"]
    with pytest.raises(NodeFailure, match="Error applying PodSpecPatch"):
        run_attempt({"kind": "Workflow", "metadata": {"name": "w"}, "spec": {"templates": [no_retry]}}, "t")
