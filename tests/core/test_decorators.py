"""@resources, @kubernetes, @batch: any order, any wrapper, never change how the function runs."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from allotment import AllotmentError, Resources, batch, kubernetes, resources, spec_of
from allotment.decorators import StepSpec, innermost
from allotment.resolve import resolve


def by_decorator(spec: StepSpec | None) -> dict[str, Any]:
    assert spec is not None
    return {layer.decorator: (layer.resources, dict(layer.options)) for layer in spec.layers}


def decorate_in_order(order: tuple[str, ...]) -> Callable[..., Any]:
    def train(x: int, *, y: int = 2) -> tuple[int, int]:
        return x, y

    # Fresh decorator objects per step, applied innermost first.
    makers = {
        "resources": lambda: resources(cpu=4, memory="16Gi", gpu=1, gpu_type="H100", shared_memory=8192),
        "kubernetes": lambda: kubernetes(cpu=2, memory=32768, qos="guaranteed", node_selector={"pool": "gpu"}),
    }
    func: Callable[..., Any] = train
    for name in reversed(order):
        func = makers[name]()(func)
    return func


def test_any_order_gives_the_same_spec() -> None:
    specs = [spec_of(decorate_in_order(order)) for order in itertools.permutations(["resources", "kubernetes"])]
    first = by_decorator(specs[0])
    assert first == {
        "resources": (Resources(cpu=4, memory=16384, gpu=1, gpu_type="H100", shared_memory=8192), {}),
        "kubernetes": (Resources(cpu=2, memory=32768), {"qos": "guaranteed", "node_selector": {"pool": "gpu"}}),
    }
    for spec in specs:
        assert spec is not None
        assert spec.name == "train"
        assert spec.backend == "kubernetes"
        assert by_decorator(spec) == first
    resolved = [resolve(s, backend="local").winners for s in specs]
    assert resolved[0] == resolved[1]
    assert {k: v.value for k, v in resolved[0].items()} == {
        "cpu": 4000,
        "memory": 32768,
        "gpu": 1,
        "gpu_type": "H100",
        "shared_memory": 8192,
    }


def test_three_decorators_any_order() -> None:
    results = []
    for order in itertools.permutations(["resources", "kubernetes", "wraps"]):

        def step(a: int) -> int:
            return a * 2

        func: Any = step
        for name in reversed(order):
            if name == "resources":
                func = resources(cpu=1, memory=2048)(func)
            elif name == "kubernetes":
                func = kubernetes(cpu=3, namespace="ml")(func)
            else:
                func = plain_wrapper(func)
        assert func(21) == 42
        results.append(by_decorator(spec_of(func)))
    assert all(r == results[0] for r in results)
    assert results[0]["kubernetes"] == (Resources(cpu=3), {"namespace": "ml"})


def test_decorator_returns_the_function_itself_and_it_runs_the_same() -> None:
    calls: list[tuple[Any, ...]] = []

    def step(a: int, b: str = "x", *args: int, **kwargs: int) -> dict[str, Any]:
        calls.append((a, b, args, kwargs))
        return {"a": a, "b": b, "args": args, "kwargs": kwargs}

    original_code = step.__code__
    decorated = resources(cpu=2)(kubernetes(memory=1024)(step))
    assert decorated is step
    assert decorated.__code__ is original_code
    assert decorated.__name__ == "step"
    assert decorated(1, "y", 3, 4, k=5) == {"a": 1, "b": "y", "args": (3, 4), "kwargs": {"k": 5}}
    assert calls == [(1, "y", (3, 4), {"k": 5})]


def test_bare_decorator_form() -> None:
    @kubernetes
    @resources
    def step() -> int:
        return 7

    assert step() == 7
    spec = spec_of(step)
    assert spec is not None
    assert spec.backend == "kubernetes"
    assert [(layer.decorator, layer.resources) for layer in spec.layers] == [("resources", Resources()), ("kubernetes", Resources())]


def plain_wrapper(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


class TaskDecorator:
    """Like Airflow's _TaskDecorator: an object holding the callable in ``.function``."""

    def __init__(self, function: Callable[..., Any], **kwargs: Any) -> None:
        self.function = function
        self.kwargs = kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def task(func: Callable[..., Any]) -> TaskDecorator:
    return TaskDecorator(func, image="python:3.12")


@pytest.mark.parametrize("wrap", [plain_wrapper, task], ids=["functools.wraps", "function-attribute"])
@pytest.mark.parametrize("outside", [True, False], ids=["allotment-outside", "allotment-inside"])
def test_on_objects_wrapping_a_callable(wrap: Callable[[Any], Any], outside: bool) -> None:
    def train(x: int) -> int:
        return x + 1

    if outside:
        obj = resources(cpu=4, memory="16Gi")(kubernetes(cpu=2)(wrap(train)))
    else:
        obj = wrap(resources(cpu=4, memory="16Gi")(kubernetes(cpu=2)(train)))
    assert obj(1) == 2
    assert innermost(obj) is train
    spec = spec_of(obj)
    assert spec is not None
    assert spec.name == "train"
    assert spec == spec_of(train)
    assert by_decorator(spec) == {"resources": (Resources(cpu=4, memory=16384), {}), "kubernetes": (Resources(cpu=2), {})}
    if wrap is task:
        assert isinstance(obj, TaskDecorator)
        assert obj.kwargs == {"image": "python:3.12"}


def test_mixed_wrapping_between_decorators() -> None:
    def train() -> str:
        return "done"

    obj = resources(cpu=8)(task(plain_wrapper(kubernetes(memory="1Gi")(train))))
    assert obj() == "done"
    assert by_decorator(spec_of(obj)) == {"kubernetes": (Resources(memory=1024), {}), "resources": (Resources(cpu=8), {})}


def test_undecorated_has_no_spec() -> None:
    def step() -> None: ...

    assert spec_of(step) is None
    assert spec_of(plain_wrapper(step)) is None


# -- errors name the step -----------------------------------------------------------------


def test_repeated_decorator_is_an_error_naming_the_step() -> None:
    with pytest.raises(AllotmentError) as info:

        @resources(cpu=1)
        @resources(cpu=2)
        def train() -> None: ...

    assert str(info.value) == "step 'train': has @resources twice; apply each decorator once"
    assert info.value.step == "train"


def test_repeated_decorator_through_a_wrapper_is_an_error() -> None:
    def train() -> None: ...

    with pytest.raises(AllotmentError, match=r"^step 'train': has @kubernetes twice"):
        kubernetes(cpu=1)(task(kubernetes(cpu=2)(train)))


@pytest.mark.parametrize(
    ("decorator", "keyword", "takes"),
    [
        (resources, "cpus", "cpu, memory, gpu, gpu_type, gpu_vendor, disk, shared_memory, retry_memory_factor"),
        (resources, "qos", "cpu, memory, gpu, gpu_type, gpu_vendor, disk, shared_memory, retry_memory_factor"),
        (kubernetes, "queue", "retry_memory_factor, qos, namespace, image, node_selector, tolerations"),
        (batch, "qos", "retry_memory_factor, queue, job_definition, platform"),
    ],
)
def test_unknown_keyword_is_an_error_naming_the_step(decorator: Any, keyword: str, takes: str) -> None:
    def train() -> None: ...

    with pytest.raises(AllotmentError) as info:
        decorator(**{keyword: 1})(train)
    message = str(info.value)
    assert message.startswith(f"step 'train': @{decorator.__name__} got an unknown keyword {keyword!r}; it takes ")
    assert message.endswith(takes)
    assert spec_of(train) is None  # nothing recorded


@pytest.mark.parametrize("order", [(kubernetes, batch), (batch, kubernetes)])
def test_two_backend_decorators_is_an_error(order: tuple[Any, Any]) -> None:
    def train() -> None: ...

    inner, outer = order
    with pytest.raises(AllotmentError) as info:
        outer(cpu=1)(inner(cpu=1)(train))
    assert str(info.value).startswith(f"step 'train': has both @{inner.__name__} and @{outer.__name__}; a step runs on one backend")


def test_bad_field_value_names_step_and_decorator() -> None:
    with pytest.raises(AllotmentError) as info:

        @batch(gpu=0.5)
        def train() -> None: ...

    assert str(info.value).startswith("step 'train': gpu=0.5 from @batch is a fraction of a GPU; use a whole number >= 0")
    assert "MIG" in str(info.value)


def test_positional_argument_is_an_error() -> None:
    with pytest.raises(AllotmentError, match=r"^@resources takes keyword arguments only, got 4; write @resources\(cpu=4, memory='16Gi'\)"):
        resources(4)  # type: ignore[call-overload]


@pytest.mark.parametrize("target", [int, 5, "train"])
def test_applied_to_a_non_function_is_an_error(target: Any) -> None:
    with pytest.raises(AllotmentError, match=r"^@kubernetes was applied to .*; apply it to a step function"):
        kubernetes(cpu=1)(target)


# -- backend options ------------------------------------------------------------------------


def test_kubernetes_options_are_recorded() -> None:
    @kubernetes(
        qos="guaranteed",
        namespace="ml-team",
        image="python:3.12",
        node_selector={"b": "2", "a": "1"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    )
    def train() -> None: ...

    spec = spec_of(train)
    assert spec is not None
    options = spec.options("kubernetes")
    assert options["qos"] == "guaranteed"
    assert options["namespace"] == "ml-team"
    assert options["image"] == "python:3.12"
    assert list(options["node_selector"].items()) == [("a", "1"), ("b", "2")]
    assert [dict(t) for t in options["tolerations"]] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert dict(spec.options("batch")) == {}


def test_options_are_immutable_copies() -> None:
    selector = {"pool": "gpu"}

    @kubernetes(node_selector=selector)
    def train() -> None: ...

    selector["pool"] = "cpu"
    spec = spec_of(train)
    assert spec is not None
    assert spec.options("kubernetes")["node_selector"] == {"pool": "gpu"}
    with pytest.raises(TypeError):
        spec.options("kubernetes")["node_selector"]["pool"] = "x"


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("qos", "besteffort", "is not a QoS class; use 'burstable' (requests only) or 'guaranteed' (limits = requests)"),
        ("qos", None, "is not a QoS class"),
        ("namespace", "ML_Team", "is not a namespace name; use at most 63 lower-case letters, digits and '-'"),
        ("namespace", "", "is not a non-empty string; use a name"),
        ("namespace", 3, "is not a non-empty string"),
        ("image", "", "is not a non-empty string"),
        ("node_selector", {"pool": 1}, "is not a mapping of label to value; use e.g. {'pool': 'gpu'}"),
        ("node_selector", ["pool"], "is not a mapping of label to value"),
        (
            "tolerations",
            [{"key": "a", "color": "red"}],
            "is not a list of tolerations; use dicts with keys from key, operator, value, effect",
        ),
        ("tolerations", "dedicated", "is not a list of tolerations"),
        ("tolerations", ["dedicated"], "is not a list of tolerations"),
    ],
)
def test_kubernetes_options_are_validated(option: str, value: Any, problem: str) -> None:
    def train() -> None: ...

    with pytest.raises(AllotmentError) as info:
        kubernetes(**{option: value})(train)
    assert str(info.value).startswith(f"step 'train': {option}={value!r} from @kubernetes {problem}")


def test_batch_options_are_recorded() -> None:
    @batch(queue="gpu-queue", job_definition="train-jd", platform="fargate", cpu=1)
    def report() -> None: ...

    spec = spec_of(report)
    assert spec is not None
    assert spec.backend == "batch"
    assert dict(spec.options("batch")) == {"queue": "gpu-queue", "job_definition": "train-jd", "platform": "fargate"}


@pytest.mark.parametrize("platform", ["ec2", "fargate", "eks"])
def test_batch_platforms(platform: str) -> None:
    def step() -> None: ...

    batch(platform=platform)(step)
    spec = spec_of(step)
    assert spec is not None
    assert spec.options("batch")["platform"] == platform


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("platform", "lambda", "is not a Batch platform; use 'ec2', 'fargate' or 'eks'"),
        ("platform", "EC2", "is not a Batch platform"),
        ("queue", "", "is not a non-empty string; use a name"),
        ("queue", 5, "is not a non-empty string"),
        ("job_definition", "", "is not a non-empty string"),
    ],
)
def test_batch_options_are_validated(option: str, value: Any, problem: str) -> None:
    def report() -> None: ...

    with pytest.raises(AllotmentError) as info:
        batch(**{option: value})(report)
    assert str(info.value).startswith(f"step 'report': {option}={value!r} from @batch {problem}")
