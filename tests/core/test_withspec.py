"""The runtime `with` grammar: the examples of issue 2, the env form, and strict errors that
point at the offending part."""

from __future__ import annotations

import pytest
from allotment import AllotmentError, Resources
from allotment.withspec import WITH_KEYS, check_steps, parse_with, parse_withs

KEYS = "keys are cpu, memory, gpu, gpu_type, gpu_vendor, disk, shared_memory"


@pytest.mark.parametrize(
    ("text", "step", "backend", "resources"),
    [
        ("kubernetes:cpu=8,memory=32768", None, "kubernetes", Resources(cpu=8, memory=32768)),
        ("batch:gpu=2", None, "batch", Resources(gpu=2)),
        ("memory=65536", None, None, Resources(memory=65536)),
        ("train.kubernetes:memory=64Gi", "train", "kubernetes", Resources(memory=65536)),
        ("train:memory=64Gi", "train", None, Resources(memory=65536)),
        ("kubernetes", None, "kubernetes", Resources()),
        ("local:cpu=500m,disk=10G", None, "local", Resources(cpu=0.5, disk=9537)),
        (
            "gpu_type=H100,gpu=1,gpu_vendor=nvidia,shared_memory=1Gi",
            None,
            None,
            Resources(gpu=1, gpu_type="H100", gpu_vendor="nvidia", shared_memory=1024),
        ),
        ("my_step-2:cpu=2", "my_step-2", None, Resources(cpu=2)),
    ],
)
def test_grammar_examples(text: str, step: str | None, backend: str | None, resources: Resources) -> None:
    spec = parse_with(text)
    assert (spec.text, spec.origin, spec.kind) == (text, "--with", "with")
    assert (spec.step, spec.backend) == (step, backend)
    assert spec.resources == resources
    assert str(spec.source) == f"with --with {text!r}"


def test_a_number_without_unit_is_mib_for_memory_and_cores_for_cpu() -> None:
    assert parse_with("memory=2048,cpu=2,disk=100,shared_memory=64").resources == Resources.normalized(
        memory=2048, cpu=2000, disk=100, shared_memory=64
    )


def test_applies_to() -> None:
    every = parse_with("memory=1")
    assert every.applies_to("a", "kubernetes") and every.applies_to("b", "batch")
    k8s = parse_with("kubernetes:memory=1")
    assert k8s.applies_to("a", "kubernetes") and not k8s.applies_to("a", "batch")
    one = parse_with("train:memory=1")
    assert one.applies_to("train", "batch") and not one.applies_to("prep", "batch")
    both = parse_with("train.batch:memory=1")
    assert both.applies_to("train", "batch")
    assert not both.applies_to("train", "kubernetes")
    assert not both.applies_to("prep", "batch")


def test_parse_withs_env_form() -> None:
    specs = parse_withs("kubernetes:cpu=8; batch:gpu=2 ;train:memory=64Gi", "env ALLOTMENT_WITH")
    assert [(s.text, s.backend, s.step) for s in specs] == [
        ("kubernetes:cpu=8", "kubernetes", None),
        ("batch:gpu=2", "batch", None),
        ("train:memory=64Gi", None, "train"),
    ]
    assert str(specs[0].source) == "with env ALLOTMENT_WITH 'kubernetes:cpu=8'"
    assert parse_withs("") == ()
    assert parse_withs("   ") == ()


def test_parse_withs_list_form_and_set_kind() -> None:
    specs = parse_withs(["cpu=1", "train:memory=1Gi"], "--set", kind="set")
    assert [s.kind for s in specs] == ["set", "set"]
    assert str(specs[1].source) == "set --set 'train:memory=1Gi'"


def test_empty_spec_between_separators() -> None:
    with pytest.raises(AllotmentError) as info:
        parse_withs("kubernetes:cpu=8;;batch:gpu=2", "env ALLOTMENT_WITH")
    assert str(info.value) == (
        "from env ALLOTMENT_WITH 'kubernetes:cpu=8;;batch:gpu=2' has an empty spec between separators; separate specs with a single ';'"
    )
    with pytest.raises(AllotmentError, match="has an empty spec between separators"):
        parse_withs("cpu=1;")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kubernets",
            "from --with 'kubernets' names no backend (did you mean 'kubernetes'?) and holds no key=value; "
            "backends are kubernetes, batch, local; a spec is e.g. 'kubernetes:cpu=8' or 'memory=64Gi'\n    kubernets\n    ^^^^^^^^^",
        ),
        (
            "foo",
            "from --with 'foo' names no backend and holds no key=value; "
            "backends are kubernetes, batch, local; a spec is e.g. 'kubernetes:cpu=8' or 'memory=64Gi'\n    foo\n    ^^^",
        ),
        (
            "kubernetes:cpus=1",
            f"from --with 'kubernetes:cpus=1' unknown key 'cpus'; {KEYS}\n    kubernetes:cpus=1\n               ^^^^",
        ),
        (
            "kubernetes:retry_memory_factor=2",
            f"from --with 'kubernetes:retry_memory_factor=2' unknown key 'retry_memory_factor'; {KEYS}\n"
            "    kubernetes:retry_memory_factor=2\n"
            "               ^^^^^^^^^^^^^^^^^^^",
        ),
        (
            "kubernetes:cpu=lots",
            "cpu='lots' from --with 'kubernetes:cpu=lots' is not a CPU quantity; "
            "use a number of cores (4, 0.5, '2') or millicores ('500m')\n"
            "    kubernetes:cpu=lots\n"
            "                   ^^^^",
        ),
        (
            "train:cpu=8,memory=16gb",
            "step 'train': memory='16gb' from --with 'train:cpu=8,memory=16gb' is not a quantity; "
            "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'\n"
            "    train:cpu=8,memory=16gb\n"
            "                       ^^^^",
        ),
        (
            "batch:gpu=0.5",
            "gpu='0.5' from --with 'batch:gpu=0.5' is not a whole number; use a whole number >= 0 "
            "(0 means no GPU; for part of a GPU use a MIG gpu_type such as '1g.10gb')\n"
            "    batch:gpu=0.5\n"
            "              ^^^",
        ),
        (
            "kubernetes:cpu=1,cpu=2",
            "from --with 'kubernetes:cpu=1,cpu=2' key 'cpu' is repeated; give each key once\n"
            "    kubernetes:cpu=1,cpu=2\n"
            "                     ^^^",
        ),
        ("", "from --with '' is empty; write e.g. 'kubernetes:cpu=8,memory=32768'"),
        ("  ", "from --with '  ' is empty; write e.g. 'kubernetes:cpu=8,memory=32768'"),
        (
            "kubernetes:",
            f"from --with 'kubernetes:' has no key=value after ':'; {KEYS}\n    kubernetes:\n               ^",
        ),
        (
            "kubernetes:cpu",
            f"from --with 'kubernetes:cpu' 'cpu' is not key=value; {KEYS}\n    kubernetes:cpu\n               ^^^",
        ),
        (
            "kubernetes:cpu=",
            f"from --with 'kubernetes:cpu=' 'cpu=' is not key=value; {KEYS}\n    kubernetes:cpu=\n               ^^^^",
        ),
        (
            "kubernetes:cpu=1,,memory=2",
            f"from --with 'kubernetes:cpu=1,,memory=2' '' is not key=value; {KEYS}\n    kubernetes:cpu=1,,memory=2\n                     ^",
        ),
        (
            "9x:cpu=1",
            "from --with '9x:cpu=1' '9x' is neither a backend nor a step name; backends are kubernetes, batch, local\n    9x:cpu=1\n    ^^",
        ),
        (
            "train.:cpu=1",
            "from --with 'train.:cpu=1' 'train.' is neither a backend nor a step name; backends are kubernetes, batch, local\n"
            "    train.:cpu=1\n    ^^^^^^",
        ),
    ],
)
def test_strict_errors_point_at_the_offending_part(text: str, message: str) -> None:
    with pytest.raises(AllotmentError) as info:
        parse_with(text)
    assert str(info.value) == message


def test_caret_sits_under_the_offending_part() -> None:
    text = "train.kubernetes:cpu=8,gpu=two"
    with pytest.raises(AllotmentError) as info:
        parse_with(text)
    line, caret = str(info.value).splitlines()[-2:]
    start = caret.index("^")
    assert line[start : len(caret)] == "two"


def test_set_must_choose_a_value() -> None:
    with pytest.raises(AllotmentError) as info:
        parse_with("kubernetes", "--set", kind="set")
    assert str(info.value) == "from --set 'kubernetes' chooses no value; write e.g. 'train:memory=2048'\n    kubernetes\n    ^^^^^^^^^^"


def test_with_keys_are_resource_fields_only() -> None:
    assert WITH_KEYS == ("cpu", "memory", "gpu", "gpu_type", "gpu_vendor", "disk", "shared_memory")
    for key in ("image", "command", "volumes", "service_account", "namespace"):
        with pytest.raises(AllotmentError, match=f"unknown key '{key}'"):
            parse_with(f"{key}=x")


def test_errors_are_allotment_errors_carrying_their_parts() -> None:
    with pytest.raises(AllotmentError) as info:
        parse_with("kubernetes:memory=16gb", "env ALLOTMENT_WITH")
    error = info.value
    assert (error.field, error.value, error.source) == ("memory", "16gb", "env ALLOTMENT_WITH 'kubernetes:memory=16gb'")
    assert isinstance(error, ValueError)


def test_check_steps_rejects_an_unknown_step() -> None:
    specs = parse_withs("kubernetes:cpu=1;trian:cpu=1")
    with pytest.raises(AllotmentError) as info:
        check_steps(specs, ["train", "prep"])
    assert str(info.value) == (
        "from --with 'trian:cpu=1' names step 'trian', which does not exist (did you mean step 'train'?); "
        "steps are prep, train; backends are kubernetes, batch, local\n"
        "    trian:cpu=1\n"
        "    ^^^^^"
    )
    check_steps(parse_withs("train:cpu=1;train.batch:gpu=1;kubernetes:cpu=2"), ["train"])


def test_check_steps_catches_a_misspelt_backend_read_as_a_step() -> None:
    with pytest.raises(
        AllotmentError, match=r"names step 'kubernets', which does not exist \(did you mean the backend 'kubernetes'\?\); steps are"
    ):
        check_steps(parse_withs("kubernets:cpu=1"), ["train"])
    with pytest.raises(AllotmentError, match=r"steps are \(none\)"):
        check_steps(parse_withs("train:cpu=1"), [])


def test_a_step_name_may_hold_dots_like_an_airflow_task_in_a_task_group() -> None:
    grouped = parse_with("grp.train:memory=8Gi")
    assert (grouped.step, grouped.backend) == ("grp.train", None)
    pinned = parse_with("grp.train.kubernetes:memory=8Gi")
    assert (pinned.step, pinned.backend) == ("grp.train", "kubernetes")
    assert pinned.applies_to("grp.train", "kubernetes") and not pinned.applies_to("train", "kubernetes")
    check_steps([grouped, pinned], ["grp.train"])
