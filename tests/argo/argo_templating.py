"""A port of the Argo Workflows controller's templating, from a template as Hera builds it to the
pod spec the controller would create, with expressions evaluated on the real expr-lang engine.

Ported from argoproj/argo-workflows **v4.1.2** (commit ``f016ad89eb269d282aec06dc491c29f396a38df4``,
"docs: update CHANGELOG.md for v4.1.2"), whose ``go.mod`` pins ``github.com/expr-lang/expr
v1.17.8``, ``github.com/valyala/fasttemplate v1.2.2``, ``k8s.io/apimachinery v0.35.4`` and
``sigs.k8s.io/yaml v1.6.0``. Expressions run on ``enchanter-golem`` 0.1.0, whose ``libgolem.so``
embeds expr-lang **v1.17.8** too (its build info says so). What is ported, step by step, for one
attempt of a pod template (:func:`run_attempt`):

1. ``workflow/controller/operator.go`` ``executeTemplate`` (line 2256): ``common.ProcessArgs``
   with the global parameters (``setGlobalParameters``, line 677: ``workflow.name``,
   ``workflow.parameters.<name>``, ``workflow.parameters`` and ``workflow.parameters.json``, ...)
   and the local ones (``node.name``, ``pod.name`` when there is no retry strategy);
2. for a template with a retry strategy, ``executeTemplate`` (lines 2515-2539):
   ``common.SubstituteParams`` again with ``retries`` and ``lastRetry.exitCode|status|duration|
   message`` (``"0"``, ``""`` on the first attempt);
3. ``workflow/controller/workflowpod.go`` ``processPodSpecPatch`` (line 299): each
   ``podSpecPatch`` (the workflow's, then the template's) through ``common.ProcessArgs`` once more;
4. ``workflow/util/util.go`` ``ApplyPodSpecPatch`` (line 1679): ``ConvertYAMLToJSON`` (JSON when
   the trimmed text starts with ``{``, else ``sigs.k8s.io/yaml.YAMLToJSON``), ``json.Unmarshal``
   into a ``PodSpec`` (here: the quantities are checked, :func:`_check_pod_spec`), then
   ``strategicpatch.StrategicMergePatch`` into the pod (:func:`strategic_merge`).

``common.SubstituteParams`` (``workflow/common/util.go`` line 273) is ``json.Marshal`` of the
template (:func:`go_json`: Go's escaping, ``<>&`` as ``\\u003c`` ...), ``template.Replace`` with
globals and locals, ``json.Unmarshal``, the inputs added, ``template.Replace`` again on the
*result* and ``json.Unmarshal``. So every step re-reads text an earlier step wrote, and a
``{{`` that a value brought in is a tag in the next pass. ``template.Replace``
(``util/template/replace.go``): the text must be valid JSON before and after; ``fasttemplate``
splits it at ``{{`` and the first ``}}`` after it (an unclosed tag is an error); each tag is
(``util/template/template.go``, ``kind.go``) an expression when it starts with ``=`` (after
``jsonutil.Fix``, which turns ``\\u003c`` ``\\u003e`` ``\\u0026`` back into ``<>&``) or a simple tag.
The controller calls ``Replace`` with ``allowUnresolved=true`` everywhere on this path, so:

- a simple tag (``simple_template.go``) is looked up by its trimmed text; found, it is written
  as ``strconv.Quote(value)`` without the quotes (:func:`go_quote_inner`; ``\\x01``, ``\\a``,
  ``\\v``, ``\\U0001f600`` are not JSON escapes, so such a value makes the result invalid JSON, an
  error); not found, it is written back unchanged (with the nested-tag rule for ``{{a{{b}}``);
- an expression (``expression_template.go``): its text is JSON-unescaped (a failure is an
  error); a syntax error is an error; when it names a late-bound variable that is not there
  yet (``retries``, ``lastRetry.*``, ``item``, ``workflow.status``, ``workflow.failures``) or
  fails to compile or run or gives nil, the tag is **written back unresolved** (the reason
  only goes to the controller's debug log; :class:`Trace` keeps it); otherwise its result is
  ``json.Marshal``-ed (quotes cut for a string) and written, so a string result is escaped once.

Then an unresolved ``{{=...}}`` left where a quantity belongs fails ``json.Unmarshal`` into the
``PodSpec`` ("quantities must match the regular expression"): the node fails with "Error
applying PodSpecPatch" and no pod is created (:class:`NodeFailure`).

The expression engine (:class:`Engine`): expr-lang with Argo's environment, ``exprenv.GetFuncMap``
(``util/expr/env/env.go``): ``expand.Expand`` of the flat parameters into nested maps, ``asInt`` =
expr's ``int``, ``asFloat`` = ``float``, plus ``sprig``/``jsonpath``/``toJson``. golem takes flat
variables only and no custom functions, so each variable chain (``workflow.parameters['x']``,
``workflow.parameters.x``, ``retries``, ``lastRetry.exitCode``) is renamed to a flat
variable, and ``asInt``/``asFloat`` to ``int``/``float``; an expression that uses
``sprig``/``jsonpath``/``toJson``, indexes a parameter map with a non-literal, or reads a whole
map is :class:`Unmodelled` (a loud test error, never a silent pass). golem runs expr-lang with
``AllowUndefinedVariables`` and an empty typed environment (``strict_vars=False``), so variables
are dynamically typed as in Argo's ``map[string]any``. Two differences of golem from Argo's
expr-lang, and how they are held off: golem replaces ``/`` with truncating integer division when
both operands are ints (expr-lang's ``/`` always divides as floats: ``7 / 2`` is 3.5), so
:func:`Engine.evaluate` refuses an expression with ``/`` unless the expression text passes
:func:`_float_division_only` (every ``/`` has a float literal or a ``float(...)``/``ceil``
product on its left; allotment's expressions do); golem refuses a NaN or infinite result
("JSON cannot encode"), which Argo's ``json.Marshal`` also refuses (then the tag stays
unresolved), so both end the same way. A golem compile error is taken as a syntax error (in
Argo a hard error; a type error would leave the tag unresolved instead: both fail a
quantity).

Not ported: the rest of the pod Argo builds (``init``/``wait`` containers, its volumes, the
executor's environment), the checks of ``json.Unmarshal`` into a ``PodSpec`` beyond quantities and
JSON types of the fields allotment writes, and strategic-merge ``$retainKeys``,
``$setElementOrder`` and ``$deleteFromPrimitiveList`` (:class:`Unmodelled`). Lists merged by key
keep the original's order and append the patch's new items. ``strconv.Quote`` uses Python's
``str.isprintable`` (Unicode 14 in Python 3.11) for Go's ``IsPrint`` (Unicode 15).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

ARGO_VERSION: Final = "v4.1.2"
ARGO_COMMIT: Final = "f016ad89eb269d282aec06dc491c29f396a38df4"
EXPR_VERSION: Final = "v1.17.8"

# --------------------------------------------------------------------------- outcomes


class NodeFailure(ValueError):
    """Argo fails the node before a pod exists. ``stage``: the node's message (``errors.Wrap``
    in ``errors/errors.go`` keeps only that for ``Error()``: "Error applying PodSpecPatch");
    ``message``: the wrapped cause, which the node does not show; ``trace``: what the
    controller's debug log says about expressions it left unresolved. ``str()`` has all three."""

    def __init__(self, stage: str, message: str, trace: Trace | None = None) -> None:
        self.stage = stage
        self.message = message
        self.trace = trace or Trace()
        super().__init__(
            f"{stage}: {_shorten(message)}" + (f" (expressions left unresolved: {'; '.join(self.reasons)})" if self.reasons else "")
        )

    @property
    def reasons(self) -> list[str]:
        """Why expressions were left unresolved, each once (not counting variables that a
        later pass supplied)."""
        failed = [u.reason for u in self.trace.unresolved if not u.reason.endswith(" is not known yet")]
        return list(dict.fromkeys(failed or [u.reason for u in self.trace.unresolved]))


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 2 :]


class Unmodelled(AssertionError):
    """The port does not model this; a test that meets it must not pass silently."""


@dataclass(frozen=True)
class Unresolved:
    expression: str
    reason: str


@dataclass
class Trace:
    """What the controller's debug log says: expressions left unresolved, and why."""

    unresolved: list[Unresolved] = field(default_factory=list)


# --------------------------------------------------------------------------- Go's encodings

_HEX: Final = "0123456789abcdef"
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""``unicode.IsSpace``, which ``strings.TrimSpace`` uses."""


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def go_text(value: str) -> str:
    """A Python string as a Go string can hold it: a lone surrogate (which only a JSON
    ``\\ud800`` escape can give) is U+FFFD, as Go's JSON decoder makes it."""
    return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value


_ESCAPED: Final = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_SHORT: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # a lone surrogate: U+FFFD in a Go string
    return f"\\u{ord(char):04x}"


def _go_string(value: str) -> str:
    """``encoding/json`` ``appendString`` with ``escapeHTML`` (Go 1.22+: ``\\b`` and ``\\f`` too):
    ``"`` and ``\\`` backslashed, control characters, ``<>&`` and U+2028/U+2029 as ``\\u00XX``."""
    return '"' + _ESCAPED.sub(_escape, value) + '"'


def go_float(value: float) -> str:
    """``encoding/json`` ``floatEncoder`` for float64 (``'f'``, or ``'e'`` below 1e-6 and from 1e21)."""
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value}")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits, exponent = _shortest(value)
    sign = "-" if value < 0 else ""
    if 1e-6 <= abs(value) < 1e21:
        return sign + format(Decimal(f"0.{digits}E{exponent}").normalize(), "f")
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    power = exponent - 1
    # strconv's 'e' writes at least two exponent digits; encoding/json then cuts e-07 to e-7
    return sign + (f"{mantissa}e-{-power}" if power < 0 else f"{mantissa}e+{power:02d}")


def _shortest(value: float) -> tuple[str, int]:
    """The shortest round-trip digits of ``abs(value)`` and the exponent ``e`` of 0.DIGITS x 10^e."""
    _, digits, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    assert isinstance(exp, int)
    return text, exp + len(text)


def go_json(value: Any) -> str:
    """``json.Marshal`` of plain data (maps in the given order: the template's own order stands
    in for the Go struct's field order, which changes nothing about escaping)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_go_string(str(k))}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise TypeError(f"cannot marshal {type(value).__name__}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def json_valid(text: str) -> bool:
    """``json.Valid``: RFC 8259 (Python's reader also takes ``NaN``/``Infinity``; Go does not)."""
    try:
        json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return False
    return True


def go_unmarshal(text: str) -> Any:
    """``json.Unmarshal`` into plain data (lone surrogates become U+FFFD, as in Go)."""

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return go_text(value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {go_text(k): fix(v) for k, v in value.items()}
        return value

    return fix(json.loads(text, parse_constant=_reject_constant))


def go_quote_inner(value: str) -> str:
    """``strconv.Quote(value)`` with its quotes cut, as ``simpleReplaceStrict`` writes a value."""
    out = []
    for char in go_text(value):
        code = ord(char)
        if char in '\\"':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _json_unescape(expression: str) -> str:
    """``json.Unmarshal(fmt.Appendf(nil, "\\"%s\\"", expression), &s)``."""
    value = go_unmarshal(f'"{expression}"')
    if not isinstance(value, str):
        raise ValueError("not a JSON string")
    return value


def trim_space(text: str) -> str:
    """``strings.TrimSpace``."""
    return text.strip(_GO_SPACE)


# --------------------------------------------------------------------------- fasttemplate


def split_tags(text: str) -> list[tuple[str, str | None]]:
    """``fasttemplate.NewTemplate(s, "{{", "}}")``: (text, tag) pairs, the last tag None.
    A ``{{`` with no ``}}`` after it is an error, as there."""
    parts: list[tuple[str, str | None]] = []
    rest = text
    while True:
        start = rest.find("{{")
        if start < 0:
            parts.append((rest, None))
            return parts
        before, rest = rest[:start], rest[start + 2 :]
        end = rest.find("}}")
        if end < 0:
            raise TemplateError(f'Cannot find end tag="}}}}" in the template starting from {rest[:40]!r}')
        parts.append((before, rest[:end]))
        rest = rest[end + 2 :]


class TemplateError(Exception):
    """``template.Replace`` returns an error (the node fails)."""


# --------------------------------------------------------------------------- expressions

_LATE: Final = (
    "item",
    "retries",
    "lastRetry.exitCode",
    "lastRetry.status",
    "lastRetry.duration",
    "lastRetry.message",
    "workflow.status",
    "workflow.failures",
)
"""``variablesToCheck`` in ``expression_template.go``: left unresolved until they exist."""

_KEYWORDS: Final = frozenset(
    {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith", "true", "false", "nil", "let", "if", "else"}
)
_BUILTINS: Final = frozenset(
    {
        "int", "float", "string", "ceil", "floor", "round", "abs", "min", "max", "len", "map", "filter", "all", "any", "none", "one",
        "count", "sum", "mean", "median", "trim", "trimPrefix", "trimSuffix", "upper", "lower", "split", "replace", "repeat",
        "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix", "type", "toJSON", "fromJSON", "first", "last", "keys", "values",
        "join", "reverse", "sort", "uniq", "concat", "flatten", "get", "bitand", "bitor", "bitxor", "bitnand", "bitnot",
        "bitshl", "bitshr", "bitushr", "toBase64", "fromBase64", "now", "duration", "date", "timezone",
    }
)  # fmt: skip
_ALIASES: Final = {"asInt": "int", "asFloat": "float"}
_ARGO_ONLY: Final = frozenset({"sprig", "jsonpath", "toJson"})

_TOKEN: Final = re.compile(
    r"""(?P<space>\s+)|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+)"""
    r"""|(?P<id>[A-Za-z_$][A-Za-z0-9_$]*)|(?P<hash>#)|(?P<op>\*\*|==|!=|<=|>=|\?\?|\?\.|&&|\|\||\.\.|[-+*/%<>!?:()\[\]{},.|;=^~])""",
    re.DOTALL,
)


@lru_cache(maxsize=4096)
def tokens(expression: str) -> tuple[tuple[str, str], ...]:
    """expr-lang's tokens (kind, text), without spaces; raises SyntaxError on what it cannot read."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            raise SyntaxError(f"cannot read {expression[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, match.group(kind)))
        pos = match.end()
    return tuple(out)


def _literal(text: str) -> str:
    if text[0] == "`":
        return text[1:-1]
    value = go_unmarshal('"' + text[1:-1].replace('"', '\\"').replace("\\'", "'") + '"')
    assert isinstance(value, str)
    return value


@dataclass(frozen=True)
class Chain:
    """A variable read: ``workflow.parameters['x']`` is the path ``workflow.parameters.x``."""

    path: str
    start: int
    end: int  # token indexes [start, end)


@lru_cache(maxsize=4096)
def expression_chains(expression: str) -> tuple[Chain, ...]:
    """:func:`chains` of an expression's :func:`tokens` (cached)."""
    return tuple(chains(tokens(expression)))


def chains(toks: Sequence[tuple[str, str]]) -> list[Chain]:
    """Every variable chain in ``toks`` (identifiers that are not functions, keywords or members)."""
    found: list[Chain] = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        after_dot = i > 0 and toks[i - 1][1] in (".", "?.")
        if kind != "id" or after_dot or text in _KEYWORDS or (i + 1 < len(toks) and toks[i + 1][1] == "("):
            i += 1
            continue
        parts = [text]
        j = i + 1
        while j < len(toks):
            if toks[j][1] == "." and j + 1 < len(toks) and toks[j + 1][0] == "id":
                parts.append(toks[j + 1][1])
                j += 2
            elif toks[j][1] == "[" and j + 2 < len(toks) and toks[j + 1][0] == "str" and toks[j + 2][1] == "]":
                parts.append(_literal(toks[j + 1][1]))
                j += 3
            else:
                break
        found.append(Chain(".".join(parts), i, j))
        i = j
    return found


_LOOSER: Final = frozenset(
    {
        "+",
        "-",
        "?",
        ":",
        ",",
        "{",
        "and",
        "or",
        "&&",
        "||",
        "not",
        "!",
        "==",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "??",
        "in",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
        ";",
        "|",
    }
)
"""Operators that bind less tightly than ``/`` (and separators)."""


@lru_cache(maxsize=4096)
def _float_division_only(expression: str) -> bool:
    """Whether every ``/`` divides something that is a float in expr-lang whatever the values
    (a ``)`` closing ``float(...)`` ... or a float literal before it): there golem's
    ``/`` is expr-lang's. Conservative: ``(float(x) * 2) / 3`` passes, ``a / b`` does not."""
    toks = tokens(expression)
    for i, (_, text) in enumerate(toks):
        if text != "/":
            continue
        depth, j = 0, i - 1
        if j >= 0 and toks[j][0] == "num" and ("." in toks[j][1] or "e" in toks[j][1].lower()):
            continue
        # walk back over the left operand (up to an operator that binds less than '/'): a
        # float(...) call at its top level makes the product a float
        saw_float = False
        while j >= 0:
            text_j = toks[j][1]
            if text_j in (")", "]"):
                depth += 1
            elif text_j in ("(", "["):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and text_j in _LOOSER:
                break
            if depth == 0 and text_j == "float" and toks[j + 1][1] == "(":
                saw_float = True
            j -= 1
        if not saw_float:
            return False
    return True


@lru_cache(maxsize=4096)
def _prepared(expression: str) -> tuple[tuple[str, ...], tuple[Chain, ...]]:
    """The words of ``expression`` with ``asInt``/``asFloat`` renamed, and its variable chains
    (last first); raises :class:`Unmodelled` for what golem cannot run as Argo's expr-lang does."""
    toks = tokens(expression)
    out = [text for _, text in toks]
    for i, (kind, text) in enumerate(toks):
        if kind == "id" and i + 1 < len(toks) and toks[i + 1][1] == "(" and not (i > 0 and toks[i - 1][1] == "."):
            if text in _ALIASES:
                out[i] = _ALIASES[text]
            elif text in _ARGO_ONLY:
                raise Unmodelled(f"{text}(...) is Argo's own function; golem has no custom functions: {expression}")
            elif text not in _BUILTINS:
                raise Unmodelled(f"unknown function {text!r}: {expression}")
        if kind == "hash" and i + 1 < len(toks) and toks[i + 1][1] in (".", "["):
            raise Unmodelled(f"member access on #: {expression}")
    found = tuple(reversed(expression_chains(expression)))
    for chain in found:
        if chain.end < len(toks) and toks[chain.end][1] == "(":
            root = chain.path.split(".")[0]
            what = "is Argo's own function; golem has no custom functions" if root in _ARGO_ONLY else "is a method call"
            raise Unmodelled(f"{chain.path}(...) {what}: {expression}")
        if chain.end < len(toks) and toks[chain.end][1] in ("[", "?."):
            raise Unmodelled(f"{chain.path} is indexed with a non-literal: {expression}")
    if not _float_division_only(expression):
        raise Unmodelled(f"'/' whose left side may be an int (golem divides ints as ints, expr-lang as floats): {expression}")
    return tuple(out), found


class Engine:
    """Argo's expression evaluation on the real expr-lang (golem)."""

    def __init__(self) -> None:
        import golem

        self._golem = golem
        self._engine = golem.Engine(strict_vars=False)
        self._results: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}

    def rewrite(self, expression: str, env: Mapping[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
        """The expression for golem (flat variables, ``asInt`` -> ``int``), its variables, and
        the paths it reads that ``env`` lacks. Raises SyntaxError, :class:`Unmodelled`."""
        words, found = _prepared(expression)
        out = list(words)
        variables: dict[str, Any] = {}
        missing: list[str] = []
        for chain in found:
            name = f"v{len(variables)}"
            if chain.path in env:
                value = env[chain.path]
                if not isinstance(value, str):
                    raise Unmodelled(f"{chain.path} is not a string: {expression}")
                variables[name] = value
            else:
                prefix = chain.path + "."
                if any(key.startswith(prefix) for key in env):
                    raise Unmodelled(f"{chain.path} is read as a whole map: {expression}")
                missing.append(chain.path)  # a missing key of a map Argo has (nil), or an unknown name
                name = "_" + chain.path.replace(".", "_")
            out[chain.start : chain.end] = [name] + [""] * (chain.end - chain.start - 1)
        return " ".join(t for t in out if t), variables, missing

    def evaluate(self, expression: str, env: Mapping[str, Any]) -> Any:
        """Run ``expression`` (already JSON-unescaped) in Argo's flat ``env``; raises
        :class:`ExpressionFailed` where Argo's expr.Compile/expr.Run fails or gives nil."""
        source, variables, missing = self.rewrite(expression, env)
        if missing:  # a name Argo's environment lacks altogether fails to compile; a missing map key is nil
            roots = {key.split(".")[0] for key in env}
            unknown = [m for m in missing if m.split(".")[0] not in roots]
            if unknown:
                raise ExpressionFailed(f"unknown name {unknown[0]}")
        outcome = self._outcome(source, variables)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def check_syntax(self, expression: str, env: Mapping[str, Any]) -> None:
        """Raise SyntaxError when ``expression`` does not parse (its variables may be missing)."""
        source, variables, _ = self.rewrite(expression, env)
        outcome = self._outcome(source, variables)
        if isinstance(outcome, SyntaxError):
            raise outcome

    def _outcome(self, source: str, variables: Mapping[str, Any]) -> Any:
        key = (source, tuple(sorted(variables.items())))
        if key not in self._results:
            if len(self._results) > 100_000:
                self._results.clear()
            self._results[key] = self._run(source, variables)
        return self._results[key]

    def _run(self, source: str, variables: Mapping[str, Any]) -> Any:
        """golem's result, or the exception to raise (pure, so :meth:`evaluate` memoizes it)."""
        try:
            result = self._engine.eval(source, variables)
        except self._golem.CompileError as e:
            return SyntaxError(str(e).splitlines()[0])
        except self._golem.GolemError as e:
            message = str(e).splitlines()[0]
            if message.startswith('golem: eval error in "'):
                message = message.rpartition('": ')[2]  # the cause, without the echoed source
            if "collection results unsupported" in message:
                return Unmodelled(f"a list or map result: {source}")
            return ExpressionFailed(message)
        if result is None:
            return ExpressionFailed("nil result")
        return result


class ExpressionFailed(Exception):
    """expr.Compile (a type error) or expr.Run failed, or the result is nil or not marshalable."""


_ENGINE: Engine | None = None


def engine() -> Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine()
    return _ENGINE


def marshal_result(result: Any) -> str:
    """``json.Marshal`` of an expression's result, as ``expressionReplaceCore`` writes it."""
    if isinstance(result, bool):
        text = "true" if result else "false"
    elif isinstance(result, int):
        text = str(result)
    elif isinstance(result, float):
        text = go_float(result)
    elif isinstance(result, str):
        return _go_string(result)[1:-1]
    else:
        raise Unmodelled(f"result of type {type(result).__name__}")
    return go_quote_inner(text)


# --------------------------------------------------------------------------- template.Replace


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("__argo__internal__placeholder-")


def _expression_tag(expression: str, env: Mapping[str, Any], trace: Trace, allow_failure: bool) -> str:
    """``expressionReplaceStrict`` + ``expressionReplaceCore`` with ``strictRegex == nil``;
    ``allow_failure``: ``shouldAllowFailure`` (some value in the environment is an internal
    placeholder)."""
    written_back = "{{=" + expression + "}}"
    try:
        source = _json_unescape(expression)
    except ValueError as e:
        raise TemplateError(f"failed to unmarshall JSON expression: {e}") from e
    try:
        tokens(source)  # a syntax error the tokenizer sees
    except SyntaxError as e:
        if allow_failure:
            trace.unresolved.append(Unresolved(source, f"syntax: {e}"))
            return written_back
        raise TemplateError(f"failed to evaluate expression: {e}") from e
    late = [c.path for c in expression_chains(source) if c.path in _LATE and c.path not in env]
    try:
        if late:  # parsed first (getIdentifiers): a syntax error is an error even then
            engine().check_syntax(source, env)
            trace.unresolved.append(Unresolved(source, f"{late[0]} is not known yet"))
            return written_back
        result = engine().evaluate(source, env)
    except SyntaxError as e:
        if allow_failure:
            trace.unresolved.append(Unresolved(source, f"syntax: {e}"))
            return written_back
        raise TemplateError(f"failed to evaluate expression: {e}") from e
    except ExpressionFailed as e:
        trace.unresolved.append(Unresolved(source, str(e)))
        return written_back
    return marshal_result(result)


def _simple_tag(tag: str, env: Mapping[str, Any]) -> str:
    """``simpleReplaceStrict`` with ``strictRegex == nil``."""
    key = trim_space(tag)
    if key not in env:
        index = tag.rfind("{{")
        if index > 0 and tag[index + 2 :] in env:
            nested = env[tag[index + 2 :]]
            if isinstance(nested, str):
                return "{{" + tag[:index] + go_quote_inner(nested)
        return "{{" + tag + "}}"
    value = env[key]
    if not isinstance(value, str):
        raise TemplateError(f"failed to resolve {{{{{tag}}}}} to string")
    return go_quote_inner(value)


def replace(text: str, env: Mapping[str, Any], trace: Trace | None = None) -> str:
    """``template.Replace(ctx, text, env, allowUnresolved=true)`` (``util/template/replace.go``)."""
    trace = trace if trace is not None else Trace()
    if not json_valid(text):
        raise TemplateError("cannot do template replacements with invalid JSON")
    out = []
    allow_failure = any(_is_placeholder(v) for v in env.values())
    for before, tag in split_tags(text):
        out.append(before)
        if tag is None:
            continue
        if tag.startswith("="):
            fixed = tag[1:].replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")  # jsonutil.Fix
            out.append(_expression_tag(fixed, env, trace, allow_failure))
        else:
            out.append(_simple_tag(tag, env))
    result = "".join(out)
    if not json_valid(result):
        raise TemplateError("cannot finish template replacement because the result was invalid JSON")
    return result


def substitute_params(
    template: Mapping[str, Any], global_params: Mapping[str, str], local_params: Mapping[str, str], trace: Trace
) -> dict[str, Any]:
    """``common.SubstituteParams`` (``workflow/common/util.go``): globals and locals, then inputs."""
    env: dict[str, Any] = {**global_params, **local_params}
    text = replace(go_json(template), env, trace)
    replaced = go_unmarshal(text)
    inputs = (replaced.get("inputs") or {}).get("parameters") or []
    for parameter in inputs:
        if "value" not in parameter:
            raise TemplateError(f"inputs.parameters.{parameter.get('name')} had no value")
        env[f"inputs.parameters.{parameter['name']}"] = str(parameter["value"])
    env["inputs.parameters"] = go_json(inputs)
    result: dict[str, Any] = go_unmarshal(replace(text, env, trace))
    return result


def process_args(
    template: Mapping[str, Any],
    arguments: Mapping[str, str],
    global_params: Mapping[str, str],
    local_params: Mapping[str, str],
    trace: Trace,
) -> dict[str, Any]:
    """``common.ProcessArgs``: input parameters from the arguments (or their defaults), then
    :func:`substitute_params`."""
    new = copy.deepcopy(dict(template))
    for parameter in (new.get("inputs") or {}).get("parameters") or []:
        if "default" in parameter and "value" not in parameter:
            parameter["value"] = parameter["default"]
        if parameter["name"] in arguments:
            parameter["value"] = arguments[parameter["name"]]
    return substitute_params(new, global_params, local_params, trace)


# --------------------------------------------------------------------------- podSpecPatch


def convert_yaml_to_json(text: str) -> str:
    """``util.ConvertYAMLToJSON``: JSON as it is when the trimmed text starts with ``{``, else
    YAML through ``sigs.k8s.io/yaml`` (approximated by PyYAML's safe loader, YAML 1.1 as there)."""
    if trim_space(text).startswith("{"):
        return text
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise NodeFailure("Error applying PodSpecPatch", f"Failed to convert the PodSpecPatch yaml to json: {e}") from e
    return json.dumps(loaded)


_QUANTITY: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?")


def k8s_quantity(value: Any) -> Decimal:
    """``resource.Quantity.UnmarshalJSON``: a JSON string (trimmed) or number that
    ``ParseQuantity`` reads; raises ValueError like "quantities must match the regular expression"."""
    text = (
        value if isinstance(value, str) else json.dumps(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    )
    if text is None:
        raise ValueError(f"cannot unmarshal {type(value).__name__} into a Quantity")
    text = trim_space(text)
    if not _QUANTITY.fullmatch(text):
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    from allotment.quantity import parse_quantity

    sign = -1 if text.startswith("-") else 1
    return sign * parse_quantity(text.lstrip("+-"))


def _check_pod_spec(patch: Any, text: str) -> None:
    """The part of ``json.Unmarshal(patch, &apiv1.PodSpec{})`` that allotment's patches meet:
    a mapping, named containers and volumes, and every resource quantity parses."""

    def fail(why: str) -> NodeFailure:
        return NodeFailure("Error applying PodSpecPatch", f"invalid podSpecPatch {text!r}: {why}")

    if not isinstance(patch, dict):
        raise fail("json: cannot unmarshal into Go value of type v1.PodSpec")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in patch.get(key) or []:
            if not isinstance(container, dict):
                raise fail(f"json: cannot unmarshal into Go struct field PodSpec.{key}")
            resources = container.get("resources") or {}
            if not isinstance(resources, dict):
                raise fail("json: cannot unmarshal into Go struct field Container.resources")
            for section in ("limits", "requests"):
                for name, quantity in (resources.get(section) or {}).items():
                    try:
                        k8s_quantity(quantity)
                    except ValueError as e:
                        raise fail(f"{section}[{name}]: {e}") from e
    for volume in patch.get("volumes") or []:
        size = ((volume or {}).get("emptyDir") or {}).get("sizeLimit") if isinstance(volume, dict) else None
        if size is not None:
            try:
                k8s_quantity(size)
            except ValueError as e:
                raise fail(f"emptyDir.sizeLimit: {e}") from e
    for name, quantity in (patch.get("overhead") or {}).items():
        try:
            k8s_quantity(quantity)
        except ValueError as e:
            raise fail(f"overhead[{name}]: {e}") from e


# patchStrategy / patchMergeKey of k8s.io/api core/v1 types.go (PodSpec, Container, EphemeralContainer).
_CONTAINER: Final = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath"}
_POD_SPEC: Final = {
    "volumes": "name",
    "initContainers": "name",
    "containers": "name",
    "ephemeralContainers": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}
_CONTAINER_LISTS: Final = ("containers", "initContainers", "ephemeralContainers")


def _schema_for(key: str, schema: str) -> str:
    if schema == "podspec" and key in _CONTAINER_LISTS:
        return "container"
    return "other"


def _merge_key(key: str, schema: str) -> str | None:
    if schema == "podspec":
        return _POD_SPEC.get(key)
    if schema == "container":
        return _CONTAINER.get(key)
    return None


def _discard_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


def strategic_merge(original: Mapping[str, Any], patch: Mapping[str, Any], schema: str = "podspec") -> dict[str, Any]:
    """``strategicpatch.StrategicMergePatch(original, patch, apiv1.PodSpec{})`` (k8s.io/apimachinery
    ``pkg/util/strategicpatch/patch.go`` ``mergeMap`` with ``MergeParallelList`` and
    ``IgnoreUnmatchedNulls``): ``$patch: replace|delete`` on maps and list items, null deletes, maps
    merge, lists with a merge key merge by it, other lists are replaced."""
    for key in patch:
        if key.startswith(("$retainKeys", "$setElementOrder", "$deleteFromPrimitiveList")):
            raise Unmodelled(f"strategic-merge directive {key}")
    if "$patch" in patch:
        directive = patch["$patch"]
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return {}
        raise NodeFailure("Error applying PodSpecPatch", f"Error occurred during strategic merge patch: Unknown patch type: {directive}")
    out = copy.deepcopy(dict(original))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
            continue
        if key not in out:
            out[key] = _discard_nulls(copy.deepcopy(value))
            continue
        base = out[key]
        child = _schema_for(key, schema)
        if isinstance(base, dict) and isinstance(value, dict):
            out[key] = strategic_merge(base, value, child)
        elif isinstance(base, list) and isinstance(value, list) and _merge_key(key, schema) is not None:
            out[key] = _merge_list(base, value, str(_merge_key(key, schema)), child)
        else:
            out[key] = _discard_nulls(copy.deepcopy(value))
    return out


def _merge_list(original: list[Any], patch: list[Any], merge_key: str, schema: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" and len(i) == 1 for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    out = [copy.deepcopy(i) for i in original]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise NodeFailure(
                "Error applying PodSpecPatch",
                f"Error occurred during strategic merge patch: map: {item} does not contain declared merge key: {merge_key}",
            )
        same = next((n for n, o in enumerate(out) if isinstance(o, dict) and o.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if same is not None:
                del out[same]
            continue
        if same is None:
            out.append(_discard_nulls(copy.deepcopy({k: v for k, v in item.items() if k != "$patch"})))
        else:
            out[same] = strategic_merge(out[same], item, schema)
    return out


def apply_pod_spec_patch(spec: Mapping[str, Any], patches: Sequence[str]) -> dict[str, Any]:
    """``util.ApplyPodSpecPatch``."""
    merged = dict(spec)
    for text in patches:
        converted = convert_yaml_to_json(text)
        try:
            patch = go_unmarshal(converted)
        except ValueError as e:
            raise NodeFailure("Error applying PodSpecPatch", f"invalid podSpecPatch {text!r}: {e}") from e
        _check_pod_spec(patch, text)
        merged = strategic_merge(merged, patch)
    return merged


# --------------------------------------------------------------------------- the attempt


def build_pod_spec(template: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the pod ``workflowpod.go`` ``createWorkflowPod`` builds from a Container or
    Script template that allotment writes to or that an injection would reach: the main
    container (image, command, args, env, resources, volumeMounts, securityContext) and the
    template's pod-level fields (Argo's own containers and volumes are left out)."""
    body = dict(template.get("container") or template["script"])
    container: dict[str, Any] = {"name": "main", "image": body.get("image")}
    for key in ("command", "args", "env", "resources", "volumeMounts", "securityContext", "workingDir"):
        if key in body:
            container[key] = copy.deepcopy(body[key])
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    for key in (
        "volumes",
        "nodeSelector",
        "tolerations",
        "affinity",
        "serviceAccountName",
        "securityContext",
        "hostAliases",
        "priorityClassName",
        "schedulerName",
    ):
        if key in template:
            spec[key] = copy.deepcopy(template[key])
    return spec


def workflow_spec(document: Mapping[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    return dict(spec["workflowSpec"] if document["kind"] == "CronWorkflow" else spec)


def global_params(document: Mapping[str, Any], submitted: Mapping[str, str] | None = None) -> dict[str, str]:
    """``setGlobalParameters``: the workflow's identity and its parameters (defaults, then ``-p``)."""
    spec = workflow_spec(document)
    name = document.get("metadata", {}).get("name") or (document.get("metadata", {}).get("generateName", "wf-") + "abcde")
    declared = [dict(p) for p in (spec.get("arguments") or {}).get("parameters") or []]
    for parameter in declared:
        if submitted and parameter["name"] in submitted:
            parameter["value"] = submitted[parameter["name"]]
    unknown = sorted(set(submitted or {}) - {p["name"] for p in declared})
    if unknown:
        raise ValueError(f"argo submit: parameter {unknown[0]!r} is not declared by the workflow")
    out = {
        "workflow.name": name,
        "workflow.namespace": document.get("metadata", {}).get("namespace") or "argo",
        "workflow.mainEntrypoint": spec.get("entrypoint", ""),
        "workflow.serviceAccountName": spec.get("serviceAccountName", ""),
        "workflow.uid": "00000000-0000-0000-0000-000000000000",
        "workflow.creationTimestamp": "2026-01-01T00:00:00Z",
    }
    listed = [
        {"name": p["name"], "value": str(p["value"]), **({"description": p["description"]} if "description" in p else {})} for p in declared
    ]
    out["workflow.parameters"] = go_json(listed)
    out["workflow.parameters.json"] = out["workflow.parameters"]
    for parameter in declared:
        out[f"workflow.parameters.{parameter['name']}"] = go_text(str(parameter["value"]))
    return out


@dataclass(frozen=True)
class Attempt:
    """What Argo made of one attempt: the template after substitution and the pod spec."""

    template: dict[str, Any]
    pod_spec: dict[str, Any]
    trace: Trace


def run_attempt(
    document: Mapping[str, Any],
    template_name: str,
    submitted: Mapping[str, str] | None = None,
    retries: int = 0,
    *,
    arguments: Mapping[str, str] | None = None,
    last_retry: Mapping[str, str] | None = None,
) -> Attempt:
    """One attempt (``retries``: 0 first) of ``template_name`` in a rendered workflow,
    submitted with ``-p`` ``submitted``; raises :class:`NodeFailure` where Argo fails the node.
    ``last_retry``: the ``lastRetry.*`` values (``exitCode``, ``status``, ``duration``,
    ``message``) of the attempt before; default: a first attempt's, or after an OOM kill of the
    main container when ``retries`` > 0."""
    spec = workflow_spec(document)
    template = next(t for t in spec["templates"] if t["name"] == template_name)
    globals_ = global_params(document, submitted)
    trace = Trace()
    pod_name = f"{globals_['workflow.name']}-{template_name}-1234567890"
    retry_strategy = template.get("retryStrategy") or spec.get("retryStrategy")
    node_name = f"{globals_['workflow.name']}[0].{template_name}"
    locals_ = {"node.name": node_name, "steps.name": template_name}
    if retry_strategy is None:
        locals_["pod.name"] = pod_name
    inputs = dict(arguments or {})
    for parameter in (template.get("inputs") or {}).get("parameters") or []:
        if not {"value", "default"} & set(parameter):
            inputs.setdefault(parameter["name"], f"{parameter['name']}-argument")  # what the caller's task would pass
    try:
        processed = process_args(template, inputs, globals_, locals_, trace)
        if retry_strategy is not None:
            last = dict(last_retry or ({"exitCode": "0", "status": "", "duration": "0", "message": ""} if retries == 0 else {}))
            if retries > 0 and not last:  # after an OOM kill of the main container (inferFailedReason, operator.go)
                last = {"exitCode": "137", "status": "Failed", "duration": "12", "message": "main: OOMKilled (exit code 137)"}
            local = {"pod.name": pod_name, "retries": str(retries), **{f"lastRetry.{k}": v for k, v in last.items()}}
            processed = substitute_params(processed, globals_, local, trace)
        patches = []
        for patch in (spec.get("podSpecPatch"), processed.get("podSpecPatch")):
            if patch:
                once = process_args({**processed, "podSpecPatch": patch}, {}, globals_, {"pod.name": pod_name}, trace)
                patches.append(once["podSpecPatch"])
    except TemplateError as e:
        raise NodeFailure("Failed to substitute the template variables", str(e), trace) from e
    try:
        pod_spec = apply_pod_spec_patch(build_pod_spec(processed), patches)
    except NodeFailure as e:
        raise NodeFailure(e.stage, e.message, trace) from e
    return Attempt(processed, pod_spec, trace)


def pod_for(template: Mapping[str, Any], parameters: Mapping[str, str], retries: int = 0) -> dict[str, Any]:
    """The Pod Argo would create for one template of a workflow whose parameters are
    ``parameters`` (all of them, defaults included)."""
    declared = [{"name": k, "value": v} for k, v in parameters.items()]
    document = {
        "kind": "Workflow",
        "metadata": {"name": "wf"},
        "spec": {"arguments": {"parameters": declared}, "templates": [dict(template)]},
    }
    attempt = run_attempt(document, template["name"], retries=retries)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": template["name"]}, "spec": attempt.pod_spec}
