"""allotment.Resources: the frozen pydantic model of one request, and the error type."""

from __future__ import annotations

import allotment
import pydantic
import pytest
from allotment import AllotmentError, Resources
from allotment.errors import FieldError
from allotment.fields import FIELDS
from hypothesis import given
from hypothesis import strategies as st


def test_allotment_error_is_a_value_error() -> None:
    assert issubclass(AllotmentError, ValueError)
    assert issubclass(FieldError, AllotmentError)
    assert allotment.AllotmentError is AllotmentError


def test_values_are_held_in_spec_units() -> None:
    r = Resources(
        cpu=0.5, memory="16G", gpu=0, disk="16GiB", shared_memory="16GB", gpu_type="H100", gpu_vendor="amd", retry_memory_factor=1.5
    )
    assert (r.cpu, r.memory, r.gpu, r.disk, r.shared_memory) == (500, 15259, 0, 16384, 15259)
    assert (r.gpu_type, r.gpu_vendor, r.retry_memory_factor) == ("H100", "amd", 1.5)


def test_unset_fields_are_none_not_defaults() -> None:
    r = Resources()
    assert all(getattr(r, name) is None for name in FIELDS)
    assert r.is_empty()
    assert list(Resources(memory=1).items()) == [("memory", 1)]


def test_frozen() -> None:
    r = Resources(cpu=4)
    with pytest.raises((pydantic.ValidationError, AttributeError, TypeError)):
        r.cpu = 8  # type: ignore[misc]
    assert r.cpu == 4000


def test_extra_field_is_an_allotment_error_not_a_pydantic_one() -> None:
    with pytest.raises(AllotmentError) as info:
        Resources(cpus=4)
    assert not isinstance(info.value, pydantic.ValidationError)
    assert str(info.value) == (
        "from Resources(...) unknown field 'cpus'; "
        "fields are cpu, memory, gpu, gpu_type, gpu_vendor, disk, shared_memory, retry_memory_factor"
    )


def test_bad_value_is_an_allotment_error_naming_field_value_source_and_forms() -> None:
    with pytest.raises(AllotmentError) as info:
        Resources(memory="16gb")
    assert not isinstance(info.value, pydantic.ValidationError)
    assert str(info.value) == "memory='16gb' from Resources(...) is not a quantity; use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
    assert (info.value.field, info.value.value, info.value.source) == ("memory", "16gb", "Resources(...)")


def test_model_validate_errors_are_allotment_errors() -> None:
    with pytest.raises(AllotmentError, match=r"unknown field 'cpus'"):
        Resources.model_validate({"cpus": 4})
    with pytest.raises(AllotmentError, match=r"memory='16gb' from Resources\(\.\.\.\) is not a quantity"):
        Resources.model_validate({"memory": "16gb"})
    with pytest.raises(AllotmentError, match=r"unknown field 'cpus'"):
        Resources.model_validate_json('{"cpus": 4}')


def test_from_input_names_step_and_source() -> None:
    with pytest.raises(AllotmentError) as info:
        Resources.from_input({"memory": "16gb"}, step="train", source="resources=")
    assert (
        str(info.value)
        == "step 'train': memory='16gb' from resources= is not a quantity; use an int (MiB) or e.g. '16Gi', '16384Mi', '16G'"
    )
    with pytest.raises(AllotmentError, match=r"^step 'train': from resources= unknown field 'ram'; fields are cpu, memory"):
        Resources.from_input({"ram": 1}, step="train", source="resources=")
    with pytest.raises(AllotmentError, match=r"^step 'train': from resources= got a list; use allotment.Resources or a dict"):
        Resources.from_input([1], step="train", source="resources=")  # type: ignore[arg-type]
    assert Resources.from_input(None) == Resources()
    r = Resources(cpu=2)
    assert Resources.from_input(r) is r
    assert Resources.from_input({"cpu": 2, "memory": None}) == Resources(cpu=2)


def test_normalized_takes_held_units() -> None:
    assert Resources.normalized(cpu=500, memory=1500) == Resources(cpu="500m", memory=1500)
    with pytest.raises(AllotmentError, match=r"unknown field\(s\) ram; fields are cpu"):
        Resources.normalized(ram=1)


def test_repr_shows_kubernetes_forms() -> None:
    assert repr(Resources(cpu=0.5, memory=16384)) == "Resources(cpu='500m', memory='16Gi')"
    assert str(Resources(memory=1500)) == "Resources(memory='1500Mi')"


resources_strategy = st.builds(
    Resources.normalized,
    cpu=st.none() | st.integers(1, 10**6),
    memory=st.none() | st.integers(1, 2**24),
    gpu=st.none() | st.integers(0, 16),
    gpu_type=st.none() | st.sampled_from(["H100", "A100-80GB", "1g.10gb"]),
    gpu_vendor=st.none() | st.sampled_from(["nvidia", "amd", "example.com/gpu"]),
    disk=st.none() | st.integers(1, 2**24),
    shared_memory=st.none() | st.integers(1, 2**24),
    retry_memory_factor=st.none() | st.sampled_from([1.0, 1.5, 2.0]),
)


@given(resources_strategy)
def test_model_dump_and_validate_round_trip(r: Resources) -> None:
    assert Resources.model_validate(r.model_dump()) == r
    assert Resources.model_validate_json(r.model_dump_json()) == r
    assert Resources(**r.model_dump()) == r


def test_model_dump_writes_cpu_as_a_quantity() -> None:
    assert Resources(cpu=0.5, memory="16Gi").model_dump(exclude_none=True) == {"cpu": "500m", "memory": 16384}
    assert Resources(cpu=4).model_dump(exclude_none=True) == {"cpu": "4"}
