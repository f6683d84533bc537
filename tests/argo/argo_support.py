"""Helpers for tests/argo: a small evaluator for the Argo expressions allotment emits, Argo's
parameter substitution, podSpecPatch application, Pod assembly and the Argo JSON schema.

The evaluator covers the expr-lang subset :mod:`allotment.argo.retry` writes (numbers,
strings, ``workflow.parameters['x']``, ``? :``, ``endsWith``, ``matches``, ``+ - * / **``,
array literals, ``{...}`` predicates with ``#``, and the functions ``int``, ``float``,
``ceil``, ``min``, ``max``, ``map``, ``asInt``, ``trimSuffix``) with expr-lang's precedence
(``**`` binds tighter than ``*`` and is right-associative; ``? :`` is lowest and nests to the
right). ``float`` of a string follows Go's ``strconv.ParseFloat`` (no spaces, no ``_``), and
``matches`` Go's ``regexp`` (unanchored search; ``$`` only at the very end).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCHEMA = ROOT / "tests" / "data" / "argo-schema" / "schema.json"


def _newest_kubernetes() -> str:
    import kubernetes_validate.utils

    version: str = kubernetes_validate.utils.latest_version()
    return version


K8S_VERSION = _newest_kubernetes()
"""The newest Kubernetes version the installed kubernetes-validate knows."""

# --------------------------------------------------------------------------- expr-lang subset

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'[^']*')|(?P<id>[A-Za-z_][A-Za-z0-9_]*|#)|(?P<op>\*\*|[-+*/?:()\[\].,{}]))")


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


_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _float(value: Any) -> float:
    """expr-lang's ``float``: a number, or a string as Go's ``strconv.ParseFloat`` reads it."""
    if isinstance(value, str):
        if not _GO_FLOAT.fullmatch(value):
            raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax')
        number = float(value)
        if math.isinf(number) and "inf" not in value.lower():
            raise ValueError(f'strconv.ParseFloat: parsing "{value}": value out of range')
        return number
    return float(value)


def _matches(text: Any, pattern: Any) -> bool:
    """expr-lang's ``matches``: Go's ``regexp.MatchString`` (a search; ``$`` is end of text)."""
    assert isinstance(text, str) and isinstance(pattern, str), (text, pattern)
    return re.search(pattern.replace("$", r"\Z"), text) is not None


_FUNCTIONS: dict[str, Any] = {
    "int": lambda v: int(float(v)) if isinstance(v, str) else int(v),
    "float": _float,
    "ceil": lambda v: float(math.ceil(v)),
    "min": min,
    "max": max,
    "map": lambda items, predicate: [predicate(item) for item in items],
    "asInt": lambda v: int(v) if isinstance(v, str) and re.fullmatch(r"-?\d+", v) else _bad("asInt", v),
    "trimSuffix": lambda s, suffix: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
}


def _bad(name: str, value: Any) -> Any:
    raise ValueError(f"{name}({value!r}) fails")


Node = Any  # a callable taking the environment and returning a value


def _apply2(function: Any, left: Node, right: Node) -> Node:
    return lambda env: function(left(env), right(env))


def _member(container: Node, key: Node) -> Node:
    return lambda env: container(env)[key(env)]


class _Parser:
    """Parses into closures, so that only the branch of ``? :`` that is taken is evaluated."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
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
        condition = self.comparison()
        if self.peek() != "?":
            return condition
        self.take("?")
        yes = self.ternary()
        self.take(":")
        no = self.ternary()
        return lambda env: yes(env) if condition(env) else no(env)

    def comparison(self) -> Node:
        left = self.additive()
        if self.peek() not in ("endsWith", "matches"):
            return left
        operator = self.take()[1]
        right = self.additive()
        if operator == "matches":
            return lambda env: _matches(left(env), right(env))
        return lambda env: str(left(env)).endswith(str(right(env)))

    def _binary(self, operand: Any, ops: dict[str, Any], right_assoc: bool = False) -> Node:
        node = operand()
        while self.peek() in ops:
            op = ops[self.take()[1]]
            other = self._binary(operand, ops, True) if right_assoc else operand()
            node = _apply2(op, node, other)
            if right_assoc:
                break
        return node

    def additive(self) -> Node:
        return self._binary(self.multiplicative, {"+": lambda a, b: a + b, "-": lambda a, b: a - b})

    def multiplicative(self) -> Node:
        return self._binary(self.power, {"*": lambda a, b: a * b, "/": lambda a, b: a / b})

    def power(self) -> Node:
        return self._binary(self.unary, {"**": lambda a, b: float(a) ** float(b)}, right_assoc=True)

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            inner = self.unary()
            return lambda env: -inner(env)
        return self.postfix()

    def postfix(self) -> Node:
        kind, text = self.take()
        node: Node
        if kind == "num":
            number: Any = float(text) if "." in text else int(text)
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
    """Evaluate one expr-lang expression (the part between ``{{=`` and ``}}``)."""
    return _Parser(expression).parse()(env)


def substitute(text: str, parameters: Mapping[str, str], retries: int = 0) -> str:
    """Argo's substitution: ``{{=expr}}`` and ``{{workflow.parameters.x}}`` / ``{{retries}}``."""
    env = {"retries": str(retries), "workflow": {"parameters": dict(parameters)}}

    def expression(match: re.Match[str]) -> str:
        value = evaluate(match.group(1), env)
        assert isinstance(value, (int, str)) and not isinstance(value, bool), f"expression gave {value!r}, not a whole number or a string"
        return str(value)

    # Like Argo, a tag ends at the first "}}".
    text = re.sub(r"\{\{=(.*?)\}\}", expression, text)
    text = re.sub(r"\{\{workflow\.parameters\.([A-Za-z0-9_.-]+)\}\}", lambda m: parameters[m.group(1)], text)
    return text.replace("{{retries}}", str(retries))


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


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge for what allotment's patches hold: mappings merge, named lists merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in base + patch):
        out_list = [dict(i) for i in base]
        for item in patch:
            same = next((j for j, b in enumerate(out_list) if b["name"] == item["name"]), None)
            if same is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[same] = _merge(out_list[same], item)
        return out_list
    return copy.deepcopy(patch)


def pod_for(template: Mapping[str, Any], parameters: Mapping[str, str], retries: int = 0) -> dict[str, Any]:
    """The Pod Argo would create for ``template`` (its main container, volumes, selector,
    tolerations), with its ``podSpecPatch`` applied after substituting ``parameters`` and
    ``retries``."""
    body = dict(template.get("container") or template["script"])
    container: dict[str, Any] = {"name": "main", "image": body["image"]}
    for key in ("command", "args", "resources", "volumeMounts", "env"):
        if key in body:
            container[key] = copy.deepcopy(body[key])
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    for key in ("volumes", "nodeSelector", "tolerations"):
        if key in template:
            spec[key] = copy.deepcopy(template[key])
    if "podSpecPatch" in template:
        patch = json.loads(substitute(template["podSpecPatch"], parameters, retries))
        spec = _merge(spec, patch)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": template["name"]}, "spec": spec}


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
