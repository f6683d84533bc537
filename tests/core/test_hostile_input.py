"""Issue 9's red-team findings in the core, one test each: every input is hostile, so the core
raises only :class:`AllotmentError`, fast, with a short message that names the field, and
never rounds a value against the rules (docs/design.md §1, §7.2).

The bounds: 10⁶ cores, 1 EiB (memory, disk, shared memory), 65,536 GPUs, factor 16; a value
written as text is at most 64 characters; a policy or profile file at most 1 MiB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from allotment import AllotmentError, Resources, resources
from allotment.batch import compile_batch
from allotment.decorators import Layer, StepSpec, kubernetes
from allotment.errors import MAX_MESSAGE, shown
from allotment.fields import MAX_MIB, PARSERS
from allotment.policy import Policy, load_policy
from allotment.profiles import Profile, get_profile
from allotment.resolve import Resolved, resolve
from allotment.withspec import parse_runtime

HUGE_INT = 10**5000  # str() of it raises ValueError (Python's 4300-digit limit)
NINES = "9" * 999_000
ONE_AND_A_MILLION_ZEROS = "1" + "0" * 1_000_000


def resolved_with(policy: Policy | None = None, **fields: Any) -> Resolved:
    return resolve(StepSpec("train").add(Layer("resources", Resources(**fields))), policy=policy)


def raises_fast(call: Callable[[], object], field: str | None = None, seconds: float = 0.5) -> AllotmentError:
    """``call`` raises an AllotmentError (nothing else), within ``seconds``, with a short message naming ``field``."""
    began = time.perf_counter()
    with pytest.raises(AllotmentError) as caught:
        call()
    assert time.perf_counter() - began < seconds
    message = str(caught.value)
    assert len(message) <= MAX_MESSAGE
    if field is not None:
        assert field in message
    return caught.value


# -- runtime input: a million digits ------------------------------------------------------------


def test_a_million_nines_of_memory_from_a_run_fails_fast_with_a_short_message() -> None:
    """Was: about 40 s of CPU per resolution (int(Decimal) is quadratic) and a 4 MB error line."""
    error = raises_fast(lambda: parse_runtime({"tasks": {"crunch": "memory=" + NINES}}, "dag_run.conf['allotment']", accepted="x"))
    message = str(error)
    assert "memory=" in message and "is 999000 characters long" in message and "at most 64 characters" in message
    assert len(message) < 1000
    raises_fast(lambda: Resources(memory=NINES), "memory")


def test_cpu_of_a_one_and_a_million_zeros_is_an_allotment_error_not_decimal_overflow() -> None:
    """Was: decimal.Overflow (an ArithmeticError), which Airflow retried instead of failing for good."""
    raises_fast(lambda: parse_runtime({"with": "cpu=" + ONE_AND_A_MILLION_ZEROS}, "conf", accepted="x"), "cpu")
    raises_fast(lambda: Resources(cpu=ONE_AND_A_MILLION_ZEROS), "cpu")
    raises_fast(lambda: parse_runtime({"tasks": {"t": {"cpu": ONE_AND_A_MILLION_ZEROS}}}, "conf", accepted="x"), "cpu")


@pytest.mark.parametrize("field", list(PARSERS))
def test_every_field_rejects_a_million_characters_fast(field: str) -> None:
    for text in (NINES, ONE_AND_A_MILLION_ZEROS, "1" * 65, "x" * 10**6):
        raises_fast(lambda text=text: PARSERS[field](text), field)  # type: ignore[misc]


@pytest.mark.parametrize("field", ["cpu", "memory", "gpu", "disk", "shared_memory", "retry_memory_factor"])
def test_sixty_four_characters_are_still_read(field: str) -> None:
    text = "1" if field != "memory" else "16"
    padded = "0" * (64 - len(text)) + text
    assert PARSERS[field](padded) == PARSERS[field](text)
    with pytest.raises(AllotmentError, match="is 65 characters long"):
        PARSERS[field]("0" + padded)


# -- huge ints and Decimals, and building the message --------------------------------------------


@pytest.mark.parametrize(
    "value",
    [HUGE_INT, -HUGE_INT, Decimal("1E+999999"), Decimal("-1E+999999"), Decimal("1E-999999")],
    ids=["huge-int", "huge-negative-int", "1E+999999", "-1E+999999", "1E-999999"],
)
@pytest.mark.parametrize("field", ["cpu", "memory", "gpu", "disk", "shared_memory", "retry_memory_factor"])
def test_huge_numbers_give_an_allotment_error_not_a_value_error_while_building_the_message(field: str, value: object) -> None:
    """Was: ValueError ("Exceeds the limit (4300 digits)") from repr() in the error's own message."""
    error = raises_fast(lambda: Resources(**{field: value}), field)
    assert type(error) is AllotmentError
    if isinstance(value, int):
        assert "int of about 5001 digits>" in str(error)


def test_a_huge_int_through_a_decorator_and_its_options() -> None:
    def step() -> None: ...

    raises_fast(lambda: resources(memory=HUGE_INT)(step), "memory")
    raises_fast(lambda: kubernetes(namespace=HUGE_INT)(step), "namespace")
    raises_fast(lambda: kubernetes(tolerations=[HUGE_INT])(step), "tolerations")
    error = raises_fast(lambda: resources(HUGE_INT))  # positional: "takes keyword arguments only"
    assert "takes keyword arguments only, got <an int of about 5001 digits>" in str(error)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"caps": {"memory": HUGE_INT}}, "memory"),
        ({"caps": {"cpu": Decimal("1E+999999")}}, "cpu"),
        ({"runtime": {"caps": {"gpu": HUGE_INT}}}, "gpu"),
        ({"runtime": {"with": HUGE_INT}}, "runtime.with"),
        ({"caps": {"memory": ONE_AND_A_MILLION_ZEROS}}, "memory"),
        ({"gpu_types": ["x" * 10**6]}, "gpu_type"),
    ],
    ids=["caps-int", "caps-decimal", "runtime-caps-int", "runtime-with-int", "caps-text", "gpu-types"],
)
def test_policy_from_mapping_with_huge_values(data: dict[str, Any], field: str) -> None:
    raises_fast(lambda: Policy.from_mapping(data, origin="p.yaml"), field)


def test_shown_never_raises_and_stays_short() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert shown(Hostile()) == "<Hostile object>"
    assert shown(HUGE_INT) == "<an int of about 5001 digits>"
    assert shown([HUGE_INT]) == "<list object>"  # repr of the list raises: shown by its type
    assert shown("x" * 10**6) == f"{'x' * 80!r}... (1000000 characters)"
    assert shown("ok") == "'ok'"
    error = raises_fast(lambda: Resources(cpu=Hostile()), "cpu")
    assert str(error) == "cpu=<Hostile object> from Resources(...) is a Hostile; use a number of cores (4, 0.5, '2') or millicores ('500m')"


def test_a_pointer_into_a_long_spec_is_a_window_around_the_carets() -> None:
    error = raises_fast(lambda: parse_runtime({"with": "cpu=2," + "x" * 5000 + "=1"}, "conf", accepted="x"))
    text, carets = str(error).split("\n")[1:]
    assert len(text) < 200 and text.startswith("    cpu=2,xxx") and text.endswith("...")
    assert carets.strip() and set(carets.strip()) == {"^"}
    assert text[carets.index("^")] == "x"  # the carets still point at the unknown key


def test_control_characters_in_a_pointer_are_shown_as_question_marks() -> None:
    error = raises_fast(lambda: parse_runtime({"with": "cpu=\x1b[31m"}, "conf", accepted="x"), "cpu")
    assert "\x1b" not in str(error).split("\n", 1)[1]


# -- precision: Decimal's 28-digit context rounded down ------------------------------------------


def test_a_cpu_finer_than_a_millicore_past_28_digits_is_an_error() -> None:
    """Was: accepted as 1m (the default context rounded to 28 digits)."""
    for value in ("0.0010000000000000000000000000001", Decimal("0.0010000000000000000000000000001"), "1.0000000000000000000000000000001"):
        error = raises_fast(lambda value=value: Resources(cpu=value), "cpu")
        assert "is finer than 1m" in str(error)
    assert Resources(cpu="0.0010000000000000000000000000000").cpu == 1


def test_memory_past_28_digits_rounds_up() -> None:
    """Was: 1024 MiB (rounded down)."""
    assert Resources(memory="1.00000000000000000000000000001Gi").memory == 1025
    assert Resources(disk="1.0000000000000000000000000000001Mi").disk == 2
    with pytest.raises(AllotmentError, match="is not a whole number of MiB"):
        Resources(memory="1024.00000000000000000000000000001")
    with pytest.raises(AllotmentError, match="is not a whole number of MiB"):
        Resources(memory=Decimal("1024.00000000000000000000000000001"))
    assert Resources(memory=Decimal("16384.0000000000000000000000000000")).memory == 16384


# -- retry growth against the hard maximum -------------------------------------------------------


def test_retry_growth_without_a_cap_is_held_to_the_memory_maximum() -> None:
    """Was: 2^44 MiB after 7 OOM kills, and OverflowError near 300."""
    resolved = resolved_with(memory=64 * 1024, retry_memory_factor=16)
    growth = resolved.retry_growth()
    assert growth is not None and growth.cap is None and growth.limit == MAX_MIB
    asked = [growth.memory_after(k) for k in range(0, 399)]
    assert asked[:3] == [65536, 65536 * 16, 65536 * 256]
    assert asked == sorted(asked) and max(asked) == MAX_MIB == asked[-1]
    assert growth.memory_after(7) == MAX_MIB  # 2^16 * 2^28 = 2^44 > 2^40
    assert growth.memory_after(10**18) == MAX_MIB
    eighth = resolved.with_memory_after(7, try_number=8)
    assert eighth.value("memory") == MAX_MIB
    assert eighth.notes[-2] == (
        "memory growth after 7 OOM kills held at 1073741824Gi (1Ei), the most memory allotment accepts (more than any machine has)"
    )
    assert resolved.with_memory_after(299).value("memory") == MAX_MIB
    assert growth.ladder() == (65536, 65536 * 16, 65536 * 256, 65536 * 4096)
    # ...and the grown memory compiles for every target, within the maximum.
    assert compile_batch(eighth, "ec2").submit_overrides["containerOverrides"]["resourceRequirements"][-1] == {
        "type": "MEMORY",
        "value": str(MAX_MIB),
    }


def test_retry_growth_under_a_cap_notes_the_cap_even_beyond_the_maximum() -> None:
    policy = Policy.from_mapping({"caps": {"memory": "1Ti"}}, origin="p.yaml")
    resolved = resolved_with(memory=64 * 1024, retry_memory_factor=16, policy=policy)
    held = resolved.with_memory_after(399, policy)
    assert held.value("memory") == 1024 * 1024
    assert "held at 1024Gi by the cap 1024Gi of policy p.yaml (would be more than 1073741824Gi)" in held.notes[-2]


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("load", [load_policy, get_profile], ids=["policy", "profile"])
@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("p.yaml", b"caps:\n  cpu: 4\n  memory: \xff\n", "is not UTF-8 text (byte 0xff at offset 25)"),
        ("p.json", b'{"caps": {"cpu": "\xc3("}}', "is not UTF-8 text (byte 0xc3 at offset 18)"),
        ("p.yaml", b"{1: 2, foo: 3}\n", "has the key 1, which is not text"),
        ("p.yaml", b"? [a, b]\n: 1\n", "is not valid YAML"),
        ("p.yaml", b"caps: {memory: " + b"9" * 10**6 + b"}\n", "is not valid YAML"),
        ("p.toml", b"[caps]\nmemory = " + b"9" * 10**6 + b"\n", "is not valid TOML"),
        ("p.toml", b"[caps]\nmemory = " + b"9" * 2**20 + b"\n", "is larger than 1024 KiB"),
        ("p.json", b'{"caps": {"memory": ' + b"9" * 5000 + b"}}", "is not valid JSON"),
        ("p.json", b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
        ("p.yaml", b"[" * 100_000, "is not valid YAML"),
    ],
    ids=[
        "yaml-byte",
        "json-byte",
        "mixed-keys",
        "list-key",
        "yaml-million-digits",
        "toml-million-digits",
        "toml-too-large",
        "json-long-int",
        "json-deep",
        "yaml-deep",
    ],
)
def test_hostile_files_give_one_error_naming_the_file(
    tmp_path: Path, load: Callable[[str], object], name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    error = raises_fast(lambda: load(str(path)), seconds=5)
    assert problem in str(error)
    assert f"file {str(path)!r}" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("yaml", "problem"),
    [
        ("caps: {1: 2, cpu: 3}", "policy p.yaml caps has the key 1, which is not text"),
        ("runtime: {true: 1}", "policy p.yaml has the key True in runtime, which is not text"),
        ("caps: {memory: '" + "9" * 10**6 + "'}", "memory='9999"),
        ("runtime: false", "policy p.yaml has a bad 'runtime' section"),
        ("runtime: {with: 1}", "runtime.with is 1; use true or false"),
        ("gpu_types: ['H 100']", "gpu_type='H 100' from policy p.yaml gpu_types is not a GPU type"),
    ],
    ids=["caps-key", "runtime-key", "caps-million-digits", "runtime-false", "runtime-with-int", "gpu-type"],
)
def test_hostile_policy_content(tmp_path: Path, yaml: str, problem: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml)
    import yaml as pyyaml

    data = pyyaml.safe_load(yaml)
    error = raises_fast(lambda: Policy.from_mapping(data, origin="p.yaml"))
    assert problem in str(error)
    raises_fast(lambda: load_policy(path), seconds=5)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({1: 2, "foo": 3}, "has the key 1, which is not text"),
        ({"gpu_types": {1: "x"}, "label": "a/b"}, "has the key 1 in gpu_types, which is not text"),
        ({"gpu_types": {"H100": "x"}, "label": "not a label"}, "has label 'not a label', which is not a node label key"),
        ({"gpu_types": {"H100": "bad value!"}, "label": "example.com/gpu"}, "has label value 'bad value!'"),
        ({"gpu_types": {"H100": {"UPPER.com/x": "v"}}}, "gpu_types.H100 has label 'UPPER.com/x'"),
        ({"gpu_types": {"H 100": "h"}, "label": "a/b"}, "gpu_type='H 100' from cluster profile p.yaml gpu_types is not a GPU type"),
        ({"gpu_types": {"H100": "h"}, "label": "a/b", "name": HUGE_INT}, "has name <an int of about 5001 digits>"),
        ([1, 2], "is a list, not a mapping"),
    ],
    ids=["key", "gpu-type-key", "label", "label-value", "label-key", "gpu-type", "name", "list"],
)
def test_hostile_profile_content(data: Any, problem: str) -> None:
    error = raises_fast(lambda: Profile.from_mapping(data, origin="p.yaml"))
    assert problem in str(error)


def test_a_good_profile_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nlabel: example.com/gpu\ngpu_types: {H100: h100-sxm, A100-80GB: {example.com/gpu: a100, x/mem: '80'}}\n")
    profile = get_profile(str(path))
    assert profile.node_selector("H100") == {"example.com/gpu": "h100-sxm"}
    assert profile.node_selector("A100-80GB") == {"example.com/gpu": "a100", "x/mem": "80"}
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a byte-order mark is fine
    assert get_profile(str(path)).node_selector("H100") == {"example.com/gpu": "h100-sxm"}


# -- one parser per field, the same rules ----------------------------------------------------------


@pytest.mark.parametrize("text", ["1_6", "١٦", " 2 ", "2 ", "\t2", "+2", "2e0", "0x10", "NaN", "Infinity", "16.0.0", "", "٢"])
def test_retry_memory_factor_takes_text_as_the_other_numeric_fields_do(text: str) -> None:
    """Was: "1_6", Arabic-Indic "١٦" and " 2 " accepted (Decimal's own lax grammar)."""
    with pytest.raises(AllotmentError, match=r"^retry_memory_factor=.* is not a number"):
        PARSERS["retry_memory_factor"](text)
    for field in ("gpu",):  # the strictest: digits only
        with pytest.raises(AllotmentError):
            PARSERS[field](text)
    for field in ("cpu", "memory"):
        if text not in ("+2", "2e0"):  # Kubernetes quantities may carry a sign and an exponent
            with pytest.raises(AllotmentError):
                PARSERS[field](text)


@pytest.mark.parametrize("text", ["2", "1.5", "16", "1.", ".50", "016"])
def test_retry_memory_factor_plain_numbers(text: str) -> None:
    if float(text) < 1:
        with pytest.raises(AllotmentError, match="is out of range"):
            PARSERS["retry_memory_factor"](text)
    else:
        assert PARSERS["retry_memory_factor"](text) == float(text)


def test_resolution_with_hostile_runtime_input_raises_only_allotment_errors() -> None:
    for conf in (
        {"with": "memory=" + NINES},
        {"with": ["cpu=1e999999"]},
        {"tasks": {"x" * 10**5: "memory=1Gi"}},
        {"tasks": {"t": {"memory": HUGE_INT}}},
        {"set": "t:gpu=" + "9" * 5000},
    ):
        raises_fast(lambda conf=conf: resolve(None, step="t", withs=parse_runtime(conf, "conf", accepted="x", steps=["t"])[0]))


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


@pytest.mark.parametrize(
    "conf",
    [{HUGE_INT: 1}, {"tasks": {HUGE_INT: "memory=1Gi"}}, {"tasks": {"t": {HUGE_INT: 1}}}, {"tasks": {_BrokenRepr(): "memory=1Gi"}}],
    ids=["key", "task-key", "field-key", "broken-repr-key"],
)
def test_parse_runtime_with_python_keys_that_cannot_be_printed(conf: dict[Any, Any]) -> None:
    raises_fast(lambda: parse_runtime(conf, "conf", accepted="x", steps=["t"]))


def test_parse_runtime_rejects_a_task_key_that_is_not_text() -> None:
    raises_fast(lambda: parse_runtime({"tasks": {("t",): "memory=1Gi"}}, "conf", accepted="x"))


def test_parse_withs_rejects_a_list_item_that_is_not_text() -> None:
    from allotment.withspec import parse_withs

    raises_fast(lambda: parse_withs(["memory=1Gi", 5]))  # type: ignore[list-item]
