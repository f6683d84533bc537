"""Shared pieces of the fuzz suite: how many inputs each target runs, hostile values, and the
one oracle (docs/design.md §7.2): the only exception that may escape is ``AllotmentError``, its
message is short and names the field (or the key, or the file) that was wrong.

``ALLOTMENT_FUZZ_LONG=1`` is the long mode: every target runs :data:`LONG_FACTOR` times its
CI share, over 100,000 inputs in all; otherwise CI's share, a few thousand inputs in all, in
well under a minute on two cores. The counts per target are in ``tests/fuzz/README.md``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import string
import tempfile
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml
from allotment.decorators import BACKENDS
from allotment.errors import MAX_MESSAGE, AllotmentError
from allotment.fields import FIELDS
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG_MODE = os.environ.get("ALLOTMENT_FUZZ_LONG") == "1"
LONG_FACTOR: int = 25

T = TypeVar("T")


def examples(ci: int) -> Callable[[T], T]:
    """Hypothesis settings for a fuzz target: ``ci`` inputs, or :data:`LONG_FACTOR` times as many in the long mode."""
    count = ci * LONG_FACTOR if LONG_MODE else ci
    return settings(  # type: ignore[return-value]
        max_examples=count,
        deadline=None,  # the targets bound their own time (raises_only_allotment_errors)
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        database=None,
        print_blob=True,
    )


def check_error(error: AllotmentError, names: Iterable[str] | None = None) -> str:
    """An AllotmentError's message: at most MAX_MESSAGE characters, naming one of ``names``."""
    message = str(error)
    assert len(message) <= MAX_MESSAGE, len(message)
    wanted = [n for n in (names or ()) if n]
    if wanted:
        assert any(n in message for n in wanted), (message, wanted)
    if error.field is not None:
        assert str(error.field)[:40] in message, (message, error.field)
    return message


def outcome(call: Callable[[], T], names: Iterable[str] | None = None) -> T | AllotmentError:
    """``call()``'s result, or the AllotmentError it raised (checked); any other exception escapes."""
    try:
        return call()
    except AllotmentError as error:
        check_error(error, names)
        return error


# -- hostile values ------------------------------------------------------------------------------


class BrokenRepr:
    """An object whose repr raises (a broken __repr__ in user code)."""

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


class LyingStr(str):
    """A str whose own methods lie: it claims to be short and to end in 'Gi'."""

    def __len__(self) -> int:
        return 1

    def endswith(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def __str__(self) -> str:
        return "16Gi"


class OddFloat(float):
    def __repr__(self) -> str:
        return "not a number"


class OddInt(int):
    def __repr__(self) -> str:
        return "x" * 10_000


digits = st.text("0123456789", min_size=1, max_size=40)
suffixes = st.sampled_from(
    [
        "",
        "Ki",
        "Mi",
        "Gi",
        "Ti",
        "Pi",
        "Ei",
        "n",
        "u",
        "m",
        "k",
        "M",
        "G",
        "T",
        "P",
        "E",
        "KiB",
        "MiB",
        "GiB",
        "GB",
        "kB",
        "B",
        "K",
        "i",
        "gb",
    ]
)
exponents = st.builds(
    lambda e, s, d: f"{e}{s}{d}", st.sampled_from("eE"), st.sampled_from(["", "+", "-"]), st.text("0123456789", min_size=1, max_size=6)
)
numbers = st.one_of(
    digits,
    st.builds(lambda a, b: f"{a}.{b}", digits, st.text("0123456789", max_size=40)),
    st.builds(lambda b: f".{b}", digits),
)
quantity_like = st.builds(
    lambda sign, number, tail: f"{sign}{number}{tail}",
    st.sampled_from(["", "+", "-", " ", "0"]),
    numbers,
    st.one_of(suffixes, exponents),
)
long_texts = st.builds(
    lambda piece, times: piece * times, st.sampled_from(["9", "0", "1.", "e9", "x", "Gi", "١", " "]), st.integers(1, 300_000)
)
unicode_digits = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=6)
texts = st.one_of(
    quantity_like,
    st.text(max_size=30),
    st.text(string.digits + ".+-eE_ kKmMGTPEin", max_size=70),
    unicode_digits,
    long_texts,
)
huge_ints = st.one_of(st.integers(-(2**70), 2**70), st.builds(lambda e, s: s * 10**e, st.integers(0, 6000), st.sampled_from([1, -1])))
decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(lambda c, e: Decimal(f"{c}E{e}"), st.integers(-(10**40), 10**40), st.integers(-999_999, 999_999)),
    st.builds(Decimal, numbers),
)
scalar_values = st.one_of(
    texts,
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    decimals,
    st.booleans(),
    st.none(),
    st.binary(max_size=10),
    st.builds(BrokenRepr),
    st.builds(LyingStr, st.one_of(st.sampled_from(["16Gi", "x", ""]), long_texts)),
    st.builds(OddFloat, st.floats()),
    st.builds(OddInt, huge_ints),
    st.builds(complex, st.floats(), st.floats()),
    st.builds(object),
)
hostile_values = st.recursive(
    scalar_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), inner, max_size=3),
        st.tuples(inner),
    ),
    max_leaves=6,
)
"""Anything a caller might pass as a field's value."""

json_scalars = st.one_of(texts, huge_ints, st.floats(allow_nan=False), st.booleans(), st.none())
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
"""What a JSON payload (a run's conf, a submitted parameter) can carry."""


# -- the runtime `with` grammar -------------------------------------------------------------------

names = st.one_of(st.sampled_from(["train", "grp.train", "etl", "_x", "a-b"]), st.text(max_size=10))
targets = st.one_of(
    st.just(""),
    st.sampled_from(BACKENDS).map(lambda b: f"{b}:"),
    names.map(lambda n: f"{n}:"),
    st.builds(lambda n, b: f"{n}.{b}:", names, st.one_of(st.sampled_from(BACKENDS), st.sampled_from(["kubernets", "bach", "lokal"]))),
)
pairs = st.builds(
    lambda k, eq, v: f"{k}{eq}{v}",
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)),
    st.sampled_from(["=", "==", "", " = "]),
    texts,
)
specs = st.one_of(
    st.builds(lambda t, ps, sep: t + sep.join(ps), targets, st.lists(pairs, min_size=0, max_size=4), st.sampled_from([",", ", ", ",,"])),
    st.sampled_from(BACKENDS),
    st.text(max_size=40),
)
spec_strings = st.one_of(specs, st.lists(specs, max_size=3).map(";".join), st.lists(specs, max_size=3).map(" ; ".join))


# -- policy and profile files ---------------------------------------------------------------------

_DIR = Path(tempfile.mkdtemp(prefix="allotment-fuzz-files-"))  # hypothesis runs many inputs per test: one folder
atexit.register(shutil.rmtree, _DIR, True)
_COUNTER = itertools.count()

keys = st.one_of(
    st.sampled_from(["caps", "gpu_types", "runtime", "with", "set", "name", "label", *FIELDS]),
    st.text(max_size=8),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
)
leaf = st.one_of(texts, st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none())
trees = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=15)
policies = st.fixed_dictionaries(
    {},
    optional={
        "caps": st.one_of(st.dictionaries(st.sampled_from(FIELDS), leaf, max_size=4), trees),
        "gpu_types": st.one_of(st.lists(st.one_of(st.sampled_from(["H100", "L4", "A100-80GB"]), st.text(max_size=8)), max_size=3), trees),
        "runtime": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "with": st.one_of(st.booleans(), leaf),
                    "set": st.one_of(st.booleans(), leaf),
                    "caps": st.dictionaries(st.sampled_from(FIELDS), leaf, max_size=3),
                },
            ),
            trees,
        ),
    },
)
profiles = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=12), leaf),
        "label": st.one_of(st.sampled_from(["example.com/gpu", "gpu", "bad label", "UP/x"]), leaf),
        "gpu_types": st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(["H100", "L4", "1g.10gb"]), keys),
                st.one_of(
                    st.text(max_size=10),
                    st.dictionaries(st.one_of(st.sampled_from(["a/b", "example.com/x"]), keys), leaf, max_size=2),
                    leaf,
                ),
                max_size=3,
            ),
            trees,
        ),
    },
)


def as_yaml(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True).encode()


def _as_json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()


def _as_toml(data: Any) -> bytes:
    """A rough TOML writer: enough to reach the loader with tables, strings, numbers and lists."""
    lines: list[str] = []
    tables: list[tuple[str, dict[Any, Any]]] = []
    for key, value in data.items() if isinstance(data, dict) else []:
        if isinstance(value, dict):
            tables.append((str(key), value))
        else:
            lines.append(f"{json.dumps(str(key))} = {json.dumps(value, default=str)}")
    for name, table in tables:
        lines.append(f"[{json.dumps(name)}]")
        lines += [f"{json.dumps(str(k))} = {json.dumps(v, default=str)}" for k, v in table.items() if not isinstance(v, dict)]
    return "\n".join(lines).encode()


def _mutate(content: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    for position, insert in edits:
        at = position % (len(content) + 1)
        content = content[:at] + insert + content[at:]
    return content


def file_bytes(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, bytes]]:
    serialised = st.builds(
        lambda suffix, doc: (suffix, {".yaml": as_yaml, ".yml": as_yaml, ".json": _as_json, ".toml": _as_toml}[suffix](doc)),
        st.sampled_from([".yaml", ".yml", ".json", ".toml"]),
        documents,
    )
    mutated = st.builds(
        lambda pair, edits: (pair[0], _mutate(pair[1], edits)),
        serialised,
        st.lists(
            st.tuples(
                st.integers(0, 10**6),
                st.one_of(
                    st.binary(min_size=1, max_size=4),
                    st.sampled_from([b"\xff", b"\xc3", b"&a ", b"*a", b"!!python/object:os.system ", b"[[[[", b"{1: 2}"]),
                ),
            ),
            max_size=3,
        ),
    )
    raw = st.tuples(st.sampled_from([".yaml", ".json", ".toml", ".txt", ""]), st.binary(max_size=200))
    return st.one_of(serialised, mutated, raw)


def write_file(suffix: str, content: bytes) -> Path:
    path = _DIR / f"f{next(_COUNTER)}{suffix}"
    path.write_bytes(content)
    return path
