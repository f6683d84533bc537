"""Helpers for tests/argo: a small Python evaluator for the Argo expressions allotment emits,
Argo's substitution and the Pod Argo would create (both through :mod:`argo_templating`, the
port of the controller's templating with the real expr-lang engine), and the Argo JSON schema.

The evaluator (:func:`evaluate`) covers the expr-lang subset :mod:`allotment.argo.retry`
writes: numbers, strings, ``workflow.parameters['x']``, ``lastRetry.status``, ``? :``,
``and``/``or``/``not``, comparisons, ``endsWith``, ``startsWith``, ``matches``, ``+ - * / % **``, array literals, ``{...}`` predicates
with ``#``, and the functions ``int``, ``float``, ``ceil``, ``round``, ``len``, ``min``,
``max``, ``map``, ``asInt``, ``trimSuffix``, with expr-lang's precedence (its parser's
operator table: ``or`` 10, ``and`` 15, comparisons 20, ``+ -`` 30, ``* / %`` 60, ``**`` 100
right-associative, ``? :`` lowest, nesting to the right) and Go's semantics: ``int`` of a
string is ``strconv.Atoi``, of a float a truncation (``math.MinInt64`` out of range, as on
amd64); ``float`` of a string is ``strconv.ParseFloat`` (``_`` between digits, hex with a
``p`` exponent, ``inf``/``infinity``/``nan``, no spaces; beyond float64 an error); ``/``
always divides as floats; ``round`` rounds half away from zero; ``matches`` is Go's
``regexp.MatchString`` (a search; ``$`` only at the very end). It is trusted only where it
agrees with the engine: ``test_argo_expr_corpus.py`` compares the two on a corpus of
allotment's expressions and values; every other test evaluates on the engine.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import argo_templating

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCHEMA = ROOT / "tests" / "data" / "argo-schema" / "schema.json"


def _newest_kubernetes() -> str:
    import kubernetes_validate.utils

    version: str = kubernetes_validate.utils.latest_version()
    return version


K8S_VERSION = _newest_kubernetes()
"""The newest Kubernetes version the installed kubernetes-validate knows."""

# --------------------------------------------------------------------------- expr-lang subset (Python)

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<str>'[^']*')|(?P<id>[A-Za-z_][A-Za-z0-9_]*|#)"
    r"|(?P<op>\*\*|==|!=|<=|>=|&&|\|\||[-+*/%<>!?:()\[\].,{}]))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SyntaxError(f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


_DIGITS = r"[0-9](?:_?[0-9])*"
_HEX_DIGITS = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_GO_DECIMAL = re.compile(rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?")
_GO_HEX = re.compile(rf"[+-]?0[xX]_?(?:{_HEX_DIGITS}(?:\.(?:{_HEX_DIGITS})?)?|\.{_HEX_DIGITS})[pP][+-]?{_DIGITS}")
_GO_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
_MIN_INT64 = -(2**63)


def _float(value: Any) -> float:
    """expr-lang's ``float``: a number, or a string as Go's ``strconv.ParseFloat(s, 64)`` reads it."""
    if isinstance(value, bool):
        raise ValueError(f"invalid argument for float (type bool): {value}")
    if not isinstance(value, str):
        return float(value)
    if _GO_SPECIAL.fullmatch(value):
        return float(value)
    if _GO_DECIMAL.fullmatch(value):
        number = float(value.replace("_", ""))
    elif _GO_HEX.fullmatch(value):
        number = float.fromhex(value.replace("_", ""))
    else:
        raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax')
    if math.isinf(number):
        raise ValueError(f'strconv.ParseFloat: parsing "{value}": value out of range')
    return number


def _int(value: Any) -> int:
    """expr-lang's ``int``: ``strconv.Atoi`` of a string, Go's conversion of a float."""
    if isinstance(value, bool):
        raise ValueError(f"invalid argument for int (type bool): {value}")
    if isinstance(value, str):
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
        number = int(value)
        if not _MIN_INT64 <= number < 2**63:
            raise ValueError(f'strconv.Atoi: parsing "{value}": value out of range')
        return number
    if isinstance(value, float):
        if not math.isfinite(value) or not -(2.0**63) <= value < 2.0**63:
            return _MIN_INT64  # CVTTSD2SQ's "integer indefinite"
        return int(value)
    return int(value)


def _matches(text: Any, pattern: Any) -> bool:
    """expr-lang's ``matches``: Go's ``regexp.MatchString`` (a search; ``$`` is end of text)."""
    if not (isinstance(text, str) and isinstance(pattern, str)):
        raise ValueError(f"invalid operation: {type(text).__name__} matches {type(pattern).__name__}")
    return re.search(pattern.replace("$", r"\Z"), text) is not None


def _round(value: Any) -> float:
    """Go's ``math.Round``: half away from zero."""
    number = float(value)
    if not math.isfinite(number):
        return number
    return float(math.copysign(math.floor(abs(number) + 0.5), number))


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"invalid operation: not a number: {value!r}")
    return value


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    return _number(a) + _number(b)


def _divide(a: Any, b: Any) -> float:
    x, y = float(_number(a)), float(_number(b))
    if y == 0:
        return math.copysign(math.inf, x) if x != 0 else math.nan
    return x / y


def _modulo(a: Any, b: Any) -> int:
    if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
        raise ValueError("invalid operation: % needs ints")
    if b == 0:
        raise ValueError("integer divide by zero")
    return int(math.fmod(a, b))


def _power(a: Any, b: Any) -> float:
    try:
        return float(_number(a)) ** float(_number(b))
    except OverflowError:
        return math.inf


def _equal(a: Any, b: Any) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return bool(a == b) if numbers else type(a) is type(b) and a == b


def _binary_node(function: Callable[[Any, Any], Any], left: Node, right: Node) -> Node:
    return lambda env: function(left(env), right(env))


def _member(container: Node, key: Node) -> Node:
    return lambda env: container(env)[key(env)]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"invalid operation: not a bool: {value!r}")
    return value


def _bad(name: str, value: Any) -> Any:
    raise ValueError(f"{name}({value!r}) fails")


_FUNCTIONS: dict[str, Any] = {
    "int": _int,
    "asInt": _int,
    "float": _float,
    "asFloat": _float,
    "ceil": lambda v: float(math.ceil(_number(v))) if math.isfinite(_number(v)) else float(v),
    "round": _round,
    "len": lambda v: len(v) if isinstance(v, (str, list)) else _bad("len", v),
    "min": lambda *v: min(_number(x) for x in v),
    "max": lambda *v: max(_number(x) for x in v),
    "map": lambda items, predicate: [predicate(item) for item in items],
    "trimSuffix": lambda s, suffix: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
}

Node = Callable[[Mapping[str, Any]], Any]

_BINARY: dict[str, tuple[int, Callable[[Any, Any], Any]]] = {
    "==": (20, _equal),
    "!=": (20, lambda a, b: not _equal(a, b)),
    "<": (20, lambda a, b: _number(a) < _number(b)),
    ">": (20, lambda a, b: _number(a) > _number(b)),
    "<=": (20, lambda a, b: _number(a) <= _number(b)),
    ">=": (20, lambda a, b: _number(a) >= _number(b)),
    "matches": (20, _matches),
    "endsWith": (20, lambda a, b: str(a).endswith(str(b)) if isinstance(a, str) and isinstance(b, str) else _bad("endsWith", a)),
    "startsWith": (20, lambda a, b: str(a).startswith(str(b)) if isinstance(a, str) and isinstance(b, str) else _bad("startsWith", a)),
    "+": (30, _add),
    "-": (30, lambda a, b: _number(a) - _number(b)),
    "*": (60, lambda a, b: _number(a) * _number(b)),
    "/": (60, _divide),
    "%": (60, _modulo),
    "**": (100, _power),
}
_LOGICAL = {"or": 10, "||": 10, "and": 15, "&&": 15}


class _Parser:
    """A precedence-climbing parser into closures, so that only the branch of ``? :`` (and the
    right side of ``and``/``or``) that is taken is evaluated."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise SyntaxError("unexpected end")
        token = self.tokens[self.i]
        if expected is not None and token[1] != expected:
            raise SyntaxError(f"expected {expected!r}, got {token[1]!r}")
        self.i += 1
        return token

    def parse(self) -> Node:
        node = self.ternary()
        if self.i != len(self.tokens):
            raise SyntaxError(f"unexpected {self.peek()!r}")
        return node

    def ternary(self) -> Node:
        condition = self.binary(0)
        if self.peek() != "?":
            return condition
        self.take("?")
        yes = self.ternary()
        self.take(":")
        no = self.ternary()
        return lambda env: yes(env) if _bool(condition(env)) else no(env)

    def binary(self, floor: int) -> Node:
        left = self.unary()
        while True:
            op = self.peek()
            if op in _LOGICAL and _LOGICAL[op] >= floor:
                self.take()
                right = self.binary(_LOGICAL[op] + 1)
                left = self._logical(op, left, right)
            elif op in _BINARY and _BINARY[op][0] >= floor:
                precedence, function = _BINARY[op]
                self.take()
                right = self.binary(precedence if op == "**" else precedence + 1)
                left = _binary_node(function, left, right)
            else:
                return left

    @staticmethod
    def _logical(op: str, left: Node, right: Node) -> Node:
        if op in ("and", "&&"):
            return lambda env: _bool(left(env)) and _bool(right(env))
        return lambda env: _bool(left(env)) or _bool(right(env))

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            inner = self.binary(90)
            return lambda env: -_number(inner(env))
        if self.peek() in ("not", "!"):
            self.take()
            operand = self.binary(50)
            return lambda env: not _bool(operand(env))
        return self.postfix()

    def postfix(self) -> Node:
        kind, text = self.take()
        node: Node
        if kind == "num":
            number: Any = float(text) if ("." in text or "e" in text.lower()) else int(text)
            node = lambda env: number  # noqa: E731
        elif kind == "str":
            node = lambda env: text[1:-1]  # noqa: E731
        elif text == "(":
            node = self.ternary()
            self.take(")")
        elif text == "{":  # a predicate: a function of one element, named '#'
            body = self.ternary()
            self.take("}")
            node = lambda env: lambda item: body({**env, "#": item})  # noqa: E731
        elif text == "[":
            items: list[Node] = []
            while self.peek() != "]":
                items.append(self.ternary())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            node = lambda env: [i(env) for i in items]  # noqa: E731
        elif kind == "id" and self.peek() == "(":
            self.take("(")
            args: list[Node] = []
            while self.peek() != ")":
                args.append(self.ternary())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
            if text not in _FUNCTIONS:
                raise SyntaxError(f"unknown function {text}")
            function = _FUNCTIONS[text]
            node = lambda env: function(*(a(env) for a in args))  # noqa: E731
        elif kind == "id":
            node = lambda env: env[text]  # noqa: E731
        else:
            raise SyntaxError(f"unexpected {text!r}")
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                key = self.take()[1]
                node = _member(node, lambda env, k=key: k)
            else:
                index = self.ternary()
                self.take("]")
                node = _member(node, index)
        return node


def evaluate(expression: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expr-lang expression (the part between ``{{=`` and ``}}``) in Python; runtime
    errors are ValueError. Nested ``env``: ``{"workflow": {"parameters": {...}}, "retries": "0"}``."""
    return _parsed(expression)(env)


@cache
def _parsed(expression: str) -> Node:
    return _Parser(expression).parse()


FIRST_ATTEMPT = {"exitCode": "0", "status": "", "duration": "0", "message": ""}
"""``lastRetry.*`` on a first attempt (``operator.go`` ``executeTemplate``)."""
OOM_KILLED = {"exitCode": "137", "status": "Failed", "duration": "12", "message": "main: OOMKilled (exit code 137)"}
"""``lastRetry.*`` after an attempt whose main container was OOM-killed (``inferFailedReason``)."""


def substitute(text: str, parameters: Mapping[str, str], retries: int = 0, last_retry: Mapping[str, str] | None = None) -> str:
    """``text`` (a podSpecPatch, or one value of it) as Argo substitutes it, with workflow
    parameters ``parameters``, ``retries`` and ``lastRetry.*`` (``last_retry``; default: a first
    attempt's values, or after an OOM kill when ``retries`` > 0): through
    :func:`argo_templating.replace` (Go's escaping, expressions on the engine). A tag left
    unresolved is a :class:`argo_templating.NodeFailure` here (in Argo the pod's quantity would not parse)."""
    env = {f"workflow.parameters.{k}": v for k, v in parameters.items()}
    last = last_retry if last_retry is not None else (OOM_KILLED if retries else FIRST_ATTEMPT)
    env |= {"retries": str(retries), **{f"lastRetry.{k}": v for k, v in last.items()}}
    trace = argo_templating.Trace()
    out = argo_templating.go_unmarshal(argo_templating.replace(argo_templating.go_json(text), env, trace))
    if trace.unresolved:
        raise argo_templating.NodeFailure("Error applying PodSpecPatch", "a tag is left unresolved", trace)
    assert isinstance(out, str)
    return out


# --------------------------------------------------------------------------- manifests


def workflow_spec(document: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow spec of a Workflow/WorkflowTemplate (``spec``) or CronWorkflow (``spec.workflowSpec``)."""
    spec = document["spec"]
    return dict(spec["workflowSpec"] if document["kind"] == "CronWorkflow" else spec)


def parameter_defaults(document: Mapping[str, Any]) -> dict[str, str]:
    """Workflow parameter name -> its value (the default a submit without ``-p`` uses)."""
    return {p["name"]: p["value"] for p in (workflow_spec(document).get("arguments") or {}).get("parameters") or []}


def parameter_descriptions(document: Mapping[str, Any]) -> dict[str, str]:
    """Workflow parameter name -> its description."""
    return {p["name"]: p.get("description", "") for p in (workflow_spec(document).get("arguments") or {}).get("parameters") or []}


def pod_templates(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The templates that run a pod (container or script)."""
    return [t for t in workflow_spec(document)["templates"] if "container" in t or "script" in t]


def pod_for(template: Mapping[str, Any], parameters: Mapping[str, str], retries: int = 0) -> dict[str, Any]:
    """The Pod Argo would create for ``template`` (its main container, volumes, selector,
    tolerations) with the workflow's parameters ``parameters`` and ``retries``: the template
    through the port of the controller's templating (:func:`argo_templating.pod_for`); a node
    Argo fails raises :class:`argo_templating.NodeFailure` (a ValueError)."""
    return argo_templating.pod_for(template, parameters, retries)


@cache
def argo_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


@cache
def argo_validator(kind: str) -> Any:
    from jsonschema import Draft7Validator

    schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": argo_schema()["definitions"]}
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def argo_errors(document: Mapping[str, Any]) -> list[str]:
    """Every JSON-schema error of a rendered Argo manifest."""
    validator = argo_validator(document["kind"])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


# --------------------------------------------------------------------------- LimitRange admission


class Rejected(Exception):
    """The API server refuses the pod (the message is the server's, shortened)."""


def _is_native(name: str) -> bool:
    return "/" not in name or name.startswith("kubernetes.io/")


def _overcommit_allowed(name: str) -> bool:
    """``helper.IsOvercommitAllowed``: native resources except hugepages."""
    return _is_native(name) and not name.startswith("hugepages-")


def limit_range_item_defaults(item: Mapping[str, Any]) -> dict[str, Any]:
    """``SetDefaults_LimitRangeItem`` (pkg/apis/core/v1/defaults.go), for a ``Container`` item:
    a missing ``default`` is ``max``, a missing ``defaultRequest`` is ``default``, else ``min``."""
    out = copy.deepcopy(dict(item))
    if out["type"] != "Container":
        return out
    default = out.setdefault("default", {})
    default_request = out.setdefault("defaultRequest", {})
    for key, value in (out.get("max") or {}).items():
        default.setdefault(key, value)
    for key, value in default.items():
        default_request.setdefault(key, value)
    for key, value in (out.get("min") or {}).items():
        default_request.setdefault(key, value)
    return out


def limit_range_errors(document: Mapping[str, Any]) -> list[str]:
    """``ValidateLimitRange`` (pkg/apis/core/validation) for the fields allotment writes."""
    from allotment.quantity import parse_quantity

    errors = []
    for item in document["spec"]["limits"]:
        sections = {
            name: {k: parse_quantity(v) for k, v in (item.get(name) or {}).items()} for name in ("max", "min", "default", "defaultRequest")
        }
        for key in set().union(*sections.values()):
            mx, mn, df, dr = (sections[name].get(key) for name in ("max", "min", "default", "defaultRequest"))
            if mn is not None and mx is not None and mn > mx:
                errors.append(f"{key}: min value is greater than max value")
            if dr is not None and mx is not None and dr > mx:
                errors.append(f"{key}: default request value is greater than max value")
            if dr is not None and df is not None and dr > df:
                errors.append(f"{key}: default request value is greater than default limit value")
            if dr is not None and mn is not None and mn > dr:
                errors.append(f"{key}: min value is greater than default request value")
            if df is not None and mx is not None and df > mx:
                errors.append(f"{key}: default value is greater than max value")
            if df is not None and mn is not None and mn > df:
                errors.append(f"{key}: min value is greater than default value")
            if not _overcommit_allowed(key) and df is not None and dr is not None and df != dr:
                errors.append(f"{key}: default value must equal to defaultRequest value")
    return errors


def admit_container(resources: Mapping[str, Any] | None, limit_range: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """A container's ``resources`` as the API server stores them in a namespace with
    ``limit_range``, or :class:`Rejected`:

    1. pod defaulting (``SetDefaults_Pod``): a limit without a request gives the request;
    2. the LimitRanger admission plugin (``mergeContainerResources``): a missing limit is the
       item's ``default``, a missing request its ``defaultRequest`` (both after
       :func:`limit_range_item_defaults`);
    3. its validation (``minConstraint``/``maxConstraint``): with a ``max``, a limit must be
       there and neither request nor limit may exceed it; with a ``min``, neither may be below;
    4. pod validation (``ValidateResourceRequirements``): request <= limit, and for resources
       that cannot be overcommitted (extended resources, hugepages) a limit, equal to the request.
    """
    from allotment.quantity import parse_quantity

    requests = dict((resources or {}).get("requests") or {})
    limits = dict((resources or {}).get("limits") or {})
    for key, value in limits.items():
        requests.setdefault(key, value)
    items = [limit_range_item_defaults(i) for i in limit_range["spec"]["limits"] if i["type"] == "Container"]
    for item in items:
        for key, value in item["default"].items():
            limits.setdefault(key, value)
        for key, value in item["defaultRequest"].items():
            requests.setdefault(key, value)
    for item in items:
        for key, cap in (item.get("max") or {}).items():
            if key not in limits:
                raise Rejected(f"maximum {key} usage per Container is {cap}.  No limit is specified")
            if parse_quantity(limits[key]) > parse_quantity(cap):
                raise Rejected(f"maximum {key} usage per Container is {cap}, but limit is {limits[key]}")
            if key in requests and parse_quantity(requests[key]) > parse_quantity(cap):
                raise Rejected(f"maximum {key} usage per Container is {cap}, but request is {requests[key]}")
        for key, floor in (item.get("min") or {}).items():
            for section in (requests, limits):
                if key in section and parse_quantity(section[key]) < parse_quantity(floor):
                    raise Rejected(f"minimum {key} usage per Container is {floor}")
    for key, value in requests.items():
        if key in limits and parse_quantity(value) > parse_quantity(limits[key]):
            raise Rejected(f"resources.requests[{key}]: Invalid value: {value}: must be less than or equal to {key} limit of {limits[key]}")
        if not _overcommit_allowed(key) and (key not in limits or parse_quantity(value) != parse_quantity(limits[key])):
            raise Rejected(f"resources.requests[{key}]: Invalid value: {value}: must be equal to {key} limit")
    return {"limits": limits, "requests": requests}
