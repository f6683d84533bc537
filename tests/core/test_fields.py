"""Every field of docs/design.md §1: accepted input, held unit, and the wording of each error."""

from __future__ import annotations

import math

import pytest
from allotment import AllotmentError, Resources, kubernetes, resources
from allotment.errors import FieldError
from allotment.fields import (
    GPU_VENDORS,
    PARSERS,
    parse_cpu,
    parse_gpu,
    parse_gpu_type,
    parse_gpu_vendor,
    parse_mib,
    parse_retry_memory_factor,
)

MEMORY_ACCEPTED = "use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
CPU_ACCEPTED = "use a number of cores (4, 0.5, '2') or millicores ('500m')"


# -- memory, disk, shared_memory: MiB --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mib"),
    [
        (4096, 4096),
        (1, 1),
        ("16384", 16384),
        ("16Gi", 16384),
        ("16384Mi", 16384),
        ("16GiB", 16384),
        ("16G", 15259),
        ("16GB", 15259),
        ("1Ti", 1024 * 1024),
        ("1TB", math.ceil(10**12 / 2**20)),
        ("1Ki", 1),  # rounded up to a whole MiB
        ("1", 1),
        ("1k", 1),
        ("1.5Gi", 1536),
        (2048.0, 2048),
    ],
)
@pytest.mark.parametrize("field", ["memory", "disk", "shared_memory"])
def test_memory_like_fields_are_held_in_mib(field: str, value: object, mib: int) -> None:
    assert parse_mib(value, field) == mib
    assert getattr(Resources(**{field: value}), field) == mib


def test_16g_is_exact_decimal_rounded_up() -> None:
    assert parse_mib("16G") == math.ceil(16 * 10**9 / 2**20) == 15259
    assert parse_mib("16GB") == 15259
    assert parse_mib("16GiB") == 16384


def test_memory_16gb_message_is_the_design_wording() -> None:
    with pytest.raises(AllotmentError) as info:

        @resources(memory="16gb")
        def step() -> None: ...

    assert str(info.value) == (
        "step 'step': memory='16gb' from @resources is not a quantity; use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
    )
    error = info.value
    assert (error.step, error.field, error.value, error.source, error.accepted) == ("step", "memory", "16gb", "@resources", MEMORY_ACCEPTED)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("16gb", "is not a quantity"),
        ("1K", "is not a quantity"),
        ("-1Gi", "is not a quantity"),
        ("lots", "is not a quantity"),
        (0, "must be more than 0"),
        (-5, "must be more than 0"),
        ("0Gi", "must be more than 0"),
        (1.5, "is not a whole number of MiB"),
        ("1.5", "is not a whole number of MiB"),
        ("500m", "is in millibytes (did you mean 'Mi'?)"),
        ("5n", "is in nanobytes"),
        (True, "is a bool, not a number"),
        (float("inf"), "is not a finite number"),
        ([1], "is a list"),
    ],
)
@pytest.mark.parametrize("field", ["memory", "disk", "shared_memory"])
def test_memory_like_errors(field: str, value: object, problem: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_mib(value, field)
    message = str(info.value)
    assert message.startswith(f"{field}={value!r} {problem}")
    assert MEMORY_ACCEPTED in message


# -- cpu: millicores -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "millicores"),
    [
        (1, 1000),
        (4, 4000),
        (0.5, 500),
        (0.001, 1),
        ("500m", 500),
        ("2", 2000),
        ("0.25", 250),
        ("1500m", 1500),
        ("1000000u", 1000),
        ("1e-3", 1),
        (1.25, 1250),
    ],
)
def test_cpu_is_held_in_millicores(value: object, millicores: int) -> None:
    assert parse_cpu(value) == millicores
    assert Resources(cpu=value).cpu == millicores


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0.0005", "is finer than 1m (a thousandth of a core), which Kubernetes cannot express"),
        (0.0005, "is finer than 1m"),
        ("1500u", "is finer than 1m"),
        ("0.5m", "is finer than 1m"),
        (0, "must be more than 0"),
        (-1, "must be more than 0"),
        ("0m", "must be more than 0"),
        ("2Gi", "has a unit that is not for CPUs"),
        ("2k", "has a unit that is not for CPUs"),
        ("two", "is not a CPU quantity"),
        ("1_000m", "is not a CPU quantity"),
        (True, "is a bool, not a number"),
        (False, "is a bool, not a number"),
        (float("nan"), "is not a finite number"),
        (None, "is a NoneType"),
    ],
)
def test_cpu_errors(value: object, problem: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_cpu(value)
    message = str(info.value)
    assert message.startswith(f"cpu={value!r} {problem}")
    assert message.endswith(CPU_ACCEPTED)


def test_cpu_finer_than_1m_is_an_error_not_a_rounding() -> None:
    with pytest.raises(AllotmentError, match=r"^step 's': cpu='0.0005' from @kubernetes is finer than 1m"):

        @kubernetes(cpu="0.0005")
        def s() -> None: ...


# -- gpu -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "count"), [(0, 0), (1, 1), (8, 8), ("2", 2), (2.0, 2)])
def test_gpu_count(value: object, count: int) -> None:
    assert parse_gpu(value) == count
    assert Resources(gpu=value).gpu == count


def test_gpu_zero_is_valid_and_means_no_gpu() -> None:
    assert Resources(gpu=0).gpu == 0


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0.5, "is a fraction of a GPU"),
        (1.5, "is a fraction of a GPU"),
        (-1, "is negative"),
        ("one", "is not a whole number"),
        ("0.5", "is not a whole number"),
        (True, "is a bool, not a number"),
    ],
)
def test_gpu_errors_mention_mig(value: object, problem: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_gpu(value)
    message = str(info.value)
    assert message.startswith(f"gpu={value!r} {problem}")
    assert "MIG gpu_type such as '1g.10gb'" in message


# -- gpu_type, gpu_vendor, retry_memory_factor -----------------------------------------------


@pytest.mark.parametrize("value", ["H100", "A100-80GB", "L4", "1g.10gb", "7g.80gb"])
def test_gpu_type(value: str) -> None:
    assert parse_gpu_type(value) == value


@pytest.mark.parametrize("value", ["", "H 100", "-H100", 100, "x" * 64])
def test_gpu_type_errors(value: object) -> None:
    with pytest.raises(FieldError, match=r"is not a GPU type; use a GPU model such as 'H100', 'A100-80GB', 'L4' or a MIG profile") as info:
        parse_gpu_type(value)
    assert str(info.value).startswith(f"gpu_type={value!r}")


@pytest.mark.parametrize("value", [*GPU_VENDORS, "example.com/gpu", "xilinx.com/fpga-xilinx_u200"])
def test_gpu_vendor(value: str) -> None:
    assert parse_gpu_vendor(value) == value


def test_gpu_vendor_keys() -> None:
    assert GPU_VENDORS == {
        "nvidia": "nvidia.com/gpu",
        "amd": "amd.com/gpu",
        "intel": "gpu.intel.com/i915",
        "habana": "habana.ai/gaudi",
        "neuron": "aws.amazon.com/neuron",
    }


@pytest.mark.parametrize("value", ["NVIDIA", "ati", "gpu", "/gpu", "Example.com/gpu", 3])
def test_gpu_vendor_errors(value: object) -> None:
    with pytest.raises(FieldError) as info:
        parse_gpu_vendor(value)
    assert str(info.value) == (
        f"gpu_vendor={value!r} is not a GPU vendor; use one of nvidia, amd, intel, habana, neuron "
        "or an extended-resource key such as 'example.com/gpu'"
    )


@pytest.mark.parametrize(("value", "factor"), [(1, 1.0), (1.5, 1.5), ("2", 2.0), (16, 16.0)])
def test_retry_memory_factor(value: object, factor: float) -> None:
    assert parse_retry_memory_factor(value) == factor


@pytest.mark.parametrize(
    ("value", "problem"), [(0.5, "is out of range"), (17, "is out of range"), ("x", "is not a number"), (True, "is a bool")]
)
def test_retry_memory_factor_errors(value: object, problem: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_retry_memory_factor(value)
    assert str(info.value).startswith(f"retry_memory_factor={value!r} {problem}")
    assert "use a number from 1 (no growth) to 16" in str(info.value)


@pytest.mark.parametrize("field", ["cpu", "memory", "gpu", "disk", "shared_memory", "retry_memory_factor"])
@pytest.mark.parametrize("value", [True, False])
def test_bools_are_rejected_everywhere(field: str, value: bool) -> None:
    with pytest.raises(AllotmentError, match=rf"^{field}={value!r} from Resources\(\.\.\.\) is a bool, not a number; use "):
        Resources(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("cpu", 1e300, "at most 1000000 cores"),
        ("memory", "1e1000", "at most 1Ei"),
        ("disk", "2Ei", "at most 1Ei"),
        ("gpu", 10**30, "at most 65536"),
    ],
)
def test_values_beyond_any_machine_are_errors(field: str, value: object, accepted: str) -> None:
    with pytest.raises(FieldError) as info:
        PARSERS[field](value)
    assert f"{field}={value!r} is more than any machine has" in str(info.value)
    assert str(info.value).endswith(accepted)
