"""Hostile (and benign) submit-parameter values for the Argo injection tests, each with the
outcome it must have, written by hand from the rule in argo/README.md ("Submit parameters are
hostile input"), not computed by the code under test.

An outcome is per kind of parameter: ``cpu`` (millicores), ``gpu`` (a count) and ``mib``
(memory, disk and shared memory: MiB); a kind that is not named must fail the node. With no
policy the ranges are 1m..1000000 cores, 0..65536 GPUs and 1Mi..1Ei.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

BREAKOUT: Final = (
    '1"}}}],"hostNetwork":true,"serviceAccountName":"cluster-admin","containers":[{"name":"main",'
    '"securityContext":{"privileged":true},"resources":{"requests":{"cpu":"1'
)
"""The breakout of issue 9: through ``aggregate-cpu`` of workflows/overrides_and_retries.py as
it rendered before the fix, a pod with hostNetwork, cluster-admin and a privileged container."""

HOSTPATH: Final = '64Gi"}}],"volumes":[{"name":"root","hostPath":{"path":"/"}}],"x":[{"a":"1'
"""The same through the raw pass-through branch of a memory, disk or shared-memory parameter."""


@dataclass(frozen=True)
class Case:
    """``value`` submitted for one parameter; ``accepts``: kind -> amount (held units)."""

    id: str
    value: str
    accepts: dict[str, int] = field(default_factory=dict)


MAX_MILLICORES: Final = 10**9
MAX_GPU: Final = 2**16
MAX_MIB: Final = 2**40

CATALOGUE: Final[tuple[Case, ...]] = (
    # -- JSON breakouts of the podSpecPatch string, and of the template's JSON
    Case("issue-breakout", BREAKOUT),
    Case("close-string-add-field", '1","hostNetwork":true,"x":"1'),
    Case("close-objects-privileged", '1"}},"securityContext":{"privileged":true},"y":{"z":{"a":"1'),
    Case("hostpath-volume", HOSTPATH),
    Case("pre-escaped-quote", '1\\",\\"hostNetwork\\":true,\\"x\\":\\"1'),
    Case("unicode-escaped-quote", "1\\u0022,\\u0022hostNetwork\\u0022:true"),
    Case("trailing-backslash", "1\\"),
    Case("duplicate-key", '1","cpu":"64'),
    Case("strategic-replace", '1","$patch":"replace'),
    Case("strategic-delete", '1"},"$patch":"delete","x":{"a":"1'),
    Case("strategic-retain-keys", '1","$retainKeys":["containers"],"x":"1'),
    Case("html-markup", "<script>alert(1)</script>"),
    # -- YAML breakouts (a patch that is not JSON is read as YAML)
    Case("yaml-new-key", "1\nhostNetwork: true"),
    Case("yaml-indented-block", "1\n  securityContext:\n    privileged: true"),
    Case("yaml-flow-mapping", "{hostNetwork: true}"),
    Case("yaml-sequence", "- 1"),
    Case("yaml-anchor", "&a 1"),
    Case("yaml-python-tag", "!!python/object/apply:os.system ['id']"),
    Case("yaml-comment", "1 # comment"),
    # -- expr-lang: the value is data, never code
    Case("expr-close-string", "1' + '2"),
    Case("expr-ternary", "' ? 1 : 2 ? '"),
    # -- template markers: Argo's, and Jinja's
    Case("argo-simple-tag", "{{workflow.name}}"),
    Case("argo-expression-tag", "{{=toJson(workflow.parameters)}}"),
    Case("argo-retries-tag", "{{retries}}"),
    Case("argo-close-then-open", "}}{{=1"),
    Case("argo-open", "{{"),
    Case("argo-close", "}}"),
    Case("argo-input-tag", "{{inputs.parameters.shard}}"),
    Case("argo-internal-placeholder", "__argo__internal__placeholder-0"),
    Case("jinja-expression", "{{ 2 * 2 }}"),
    Case("jinja-statement", "{% if true %}1{% endif %}"),
    Case("jinja-comment", "{# c #}1"),
    # -- whitespace and control characters
    Case("newline-after", "2\n"),
    Case("newline-before", "\n2"),
    Case("crlf", "2\r\n"),
    Case("tab", "\t2"),
    Case("space-before", " 2"),
    Case("space-after", "2 "),
    Case("nul", "2\x00"),
    Case("bell", "2\x07"),
    Case("delete-char", "2\x7f"),
    Case("line-separator", "2\u2028"),
    Case("byte-order-mark", "\ufeff2"),
    Case("empty", ""),
    # -- numbers: zero, signs, NaN, infinities, exponents, sizes
    Case("zero", "0", {"gpu": 0}),
    Case("negative", "-1"),
    Case("negative-zero", "-0"),
    Case("plus-sign", "+1", {"mib": 1}),  # a quantity of 1 byte: rounded up to 1Mi
    Case("exponent-beyond-float64", "1e309"),
    Case("exponent-huge", "1e308"),
    Case("exponent-bytes", "1e9", {"mib": 954}),
    Case("exponent-underflow", "1e-999999"),
    Case("nan", "NaN"),
    Case("nan-lower", "nan"),
    Case("inf", "inf"),
    Case("infinity", "Infinity"),
    Case("minus-inf", "-inf"),
    Case("thirty-nines", "9" * 30),
    Case("int64-overflow", "9223372036854775808"),
    Case("hundred-digits", "1" * 100),
    Case("hundred-thousand-nines", "9" * 100_000),
    Case("hex", "0x10"),
    Case("underscore", "1_000"),
    Case("exponent-and-suffix", "1e3m"),
    Case("percent", "100%"),
    # -- digits that are not ASCII
    Case("arabic-indic-digits", "\u0661\u0666"),
    Case("fullwidth-digit", "\uff14"),
    Case("superscript-two", "\u00b2"),
    Case("mathematical-bold-four", "\U0001d7d2"),
    # -- amounts, and values meant for other fields
    Case("cpu-finer-than-1m", "0.0005", {"mib": 1}),
    Case("millicores", "500m", {"cpu": 500, "mib": 1}),  # as memory: 0.5 bytes, rounded up to 1Mi
    Case("cores", "2", {"cpu": 2000, "gpu": 2, "mib": 2}),
    Case("half", "0.5", {"cpu": 500, "mib": 1}),
    Case("leading-dot", ".5", {"cpu": 500, "mib": 1}),
    Case("trailing-dot", "5.", {"mib": 5}),
    Case("fraction", "1.5", {"cpu": 1500, "mib": 2}),
    Case("whole-float", "2.0", {"cpu": 2000, "mib": 2}),
    Case("gibibytes", "64Gi", {"mib": 65536}),
    Case("gigabytes", "1G", {"mib": 954}),
    Case("mebibytes-plain", "65536", {"cpu": 65_536_000, "gpu": 65536, "mib": 65536}),
    Case("bytes-unit", "64GB"),
    Case("lowercase-unit", "64gi"),
    Case("spaced-unit", "64 Gi"),
    Case("exbibyte", "1Ei", {"mib": MAX_MIB}),
    Case("beyond-exbibyte", "2Ei"),
    Case("nanobyte", "1n", {"mib": 1}),
    Case("million-cores", "1000000", {"cpu": MAX_MILLICORES, "mib": 1_000_000}),
    Case("beyond-million-cores", "1000001", {"mib": 1_000_001}),
    Case("beyond-gpus", "65537", {"cpu": 65_537_000, "mib": 65537}),
    Case("resource-key", "nvidia.com/gpu"),
    Case("gpu-type", "H100"),
    Case("bool", "true"),
    Case("null", "null"),
    Case("json-list", "[1]"),
    Case("json-object", '{"cpu": 1}'),
    Case("service-account", "cluster-admin"),
)
"""The catalogue: every id once."""

BENIGN: Final = tuple(c for c in CATALOGUE if c.accepts)
