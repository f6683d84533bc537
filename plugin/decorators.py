"""The step decorators: ``@resources``, ``@kubernetes``, ``@batch``.

They record a spec on the function and return it unchanged, so the function runs exactly as
before. On an object that wraps a callable (Airflow's ``@task.kubernetes``, Hera's
``@script``, anything ``functools.wraps`` made) the spec goes on the innermost function,
so the decorators work in any order. Each decorated step also connects the faces of the
engines the program imports (:func:`allotment.faces.connect_engines`), so that an engine's
own build paths apply the spec. Parameters keep Metaflow's names; the documented
defaults (``cpu=1``, ``memory=4096``) are the seed defaults that fill only what no source
sets (docs/design.md §2), so a value not passed is recorded as not given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, TypeVar, Unpack, overload

from .errors import AllotmentError, shown
from .fields import FIELDS

if TYPE_CHECKING:
    from .model import Resources

__all__ = [
    "ATTR",
    "BACKENDS",
    "UNSET",
    "Layer",
    "StepSpec",
    "agree_option",
    "batch",
    "defer_errors_while",
    "innermost",
    "kubernetes",
    "resources",
    "spec_of",
]

ATTR: Final = "__allotment__"
BACKENDS: Final = ("kubernetes", "batch", "local")
"""Backends a step can run on; ``local`` is the embedded default."""

_WRAPPED_ATTRS: Final = ("__wrapped__", "function", "wrapped_function", "python_callable")

F = TypeVar("F")


class ResourceFields(TypedDict, total=False):
    """Keyword arguments every step decorator takes (units as in :mod:`allotment.fields`)."""

    cpu: int | float | str
    memory: int | str
    gpu: int
    gpu_type: str
    gpu_vendor: str
    disk: int | str
    shared_memory: int | str
    retry_memory_factor: float


class KubernetesOptions(ResourceFields, total=False):
    """``@kubernetes`` takes the resource fields and these."""

    qos: Literal["burstable", "guaranteed"]
    namespace: str
    image: str
    node_selector: Mapping[str, str]
    tolerations: Sequence[Mapping[str, Any]]


class BatchOptions(ResourceFields, total=False):
    """``@batch`` takes the resource fields and these."""

    queue: str
    job_definition: str
    platform: Literal["ec2", "fargate", "eks"]


@dataclass(frozen=True)
class Layer:
    """What one decorator on a step said: its resources and its backend options."""

    decorator: str
    resources: Resources
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def source(self) -> str:
        """How sources name this layer: ``@resources``, ``@kubernetes``, ``@batch``."""
        return f"@{self.decorator}"

    @property
    def backend(self) -> str | None:
        """The backend this layer pins the step to, if any."""
        return self.decorator if self.decorator in BACKENDS else None


@dataclass(frozen=True)
class StepSpec:
    """Everything the decorators recorded on one step. ``error``: a decorator's error kept on the
    step while a face defers errors (:func:`defer_errors_while`); :func:`spec_of` raises it."""

    name: str
    layers: tuple[Layer, ...] = ()
    error: AllotmentError | None = field(default=None, compare=False, repr=False)

    def layer(self, decorator: str) -> Layer | None:
        """The layer a decorator added, if it was applied."""
        return next((layer for layer in self.layers if layer.decorator == decorator), None)

    @property
    def backend(self) -> str | None:
        """The backend a backend decorator pins this step to (None: the deployment's)."""
        pinned = [layer.backend for layer in self.layers if layer.backend]
        return pinned[0] if pinned else None

    def options(self, backend: str) -> Mapping[str, Any]:
        """The backend decorator's options (``qos``, ``queue``, ...), empty if there is none."""
        layer = self.layer(backend)
        return layer.options if layer else MappingProxyType({})

    def add(self, layer: Layer) -> StepSpec:
        """A new spec with ``layer`` added; a repeated decorator or a second backend is an error."""
        if self.layer(layer.decorator) is not None:
            raise AllotmentError(f"has @{layer.decorator} twice", step=self.name, accepted="apply each decorator once")
        if layer.backend and self.backend:
            raise AllotmentError(
                f"has both @{self.backend} and @{layer.backend}",
                step=self.name,
                accepted="a step runs on one backend; keep one backend decorator and choose others at deploy time with --with",
            )
        return StepSpec(self.name, self.layers + (layer,))


def innermost(obj: Any) -> Any:
    """The function at the bottom of a chain of wrappers (``__wrapped__``, ``.function``, ...)."""
    seen: set[int] = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        for attr in _WRAPPED_ATTRS:
            inner = getattr(obj, attr, None) if not isinstance(obj, type) else None
            if inner is not None and callable(inner):
                obj = inner
                break
        else:
            break
    return obj


def step_name(obj: Any) -> str:
    """A step's name: the innermost function's ``__name__``."""
    return str(getattr(innermost(obj), "__name__", repr(obj)))


def spec_of(obj: Any) -> StepSpec | None:
    """The spec recorded on ``obj`` or on any function it wraps, or None. A spec whose decorator
    failed while errors were deferred (:func:`defer_errors_while`) raises that error here."""
    found = getattr(innermost(obj), ATTR, None)
    if not isinstance(found, StepSpec):
        return None
    if found.error is not None:
        raise found.error.with_traceback(None) from None
    return found


_DEFER_WHILE: list[Callable[[], bool]] = []


def defer_errors_while(predicate: Callable[[], bool]) -> None:
    """Let a face defer decorator errors: while ``predicate()`` is true, a decorator given bad
    arguments does not raise; the error stays on the step and :func:`spec_of` raises it when the
    spec is read. Airflow's face defers while Airflow imports a DAG file, so that its cluster
    policy reports the error as the file's one-line import error rather than as a traceback
    through allotment's frames. Registering the same predicate twice has no effect."""
    if predicate not in _DEFER_WHILE:
        _DEFER_WHILE.append(predicate)


def _deferring() -> bool:
    return any(predicate() for predicate in _DEFER_WHILE)


UNSET: Final = (None, "")
"""Values that mean "not given" for an engine argument or a decorator option."""


def agree_option(
    step: str,
    argument: str,
    given: object,
    where: str,
    option: str,
    from_spec: object,
    decorator: str,
    *,
    accepted: str | None = None,
) -> Any:
    """An engine's own ``argument`` (``given``, e.g. an operator's ``namespace=``) or the backend
    decorator's ``option`` (``from_spec``): whichever is given; both, differing, is an error that
    names both (``namespace='prod' on KubernetesPodOperator conflicts with namespace='ml' from
    @kubernetes``). ``where`` says where ``given`` was written (``on BatchOperator``,
    ``of Script 'train'``). Returns None when neither is given."""
    if given not in UNSET and from_spec not in UNSET and given != from_spec:
        raise AllotmentError(
            f"{argument}={shown(given)} {where} conflicts with {option}={shown(from_spec)} from @{decorator}",
            step=step,
            accepted=accepted or f"give the {argument} in one place",
        )
    return given if given not in UNSET else (from_spec if from_spec not in UNSET else None)


_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_TOLERATION_KEYS: Final = ("key", "operator", "value", "effect", "tolerationSeconds")


def _check_options(decorator: str, step: str, options: dict[str, Any]) -> dict[str, Any]:
    def bad(name: str, problem: str, accepted: str) -> AllotmentError:
        return AllotmentError(problem, step=step, field=name, value=options[name], source=f"@{decorator}", accepted=accepted)

    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "qos":
            if value not in ("burstable", "guaranteed"):
                raise bad(name, "is not a QoS class", "use 'burstable' (requests only) or 'guaranteed' (limits = requests)")
        elif name in ("namespace", "queue", "job_definition", "image"):
            if not isinstance(value, str) or not value:
                raise bad(name, "is not a non-empty string", "use a name")
            if name == "namespace" and not (len(value) <= 63 and _NAME.fullmatch(value)):
                raise bad(name, "is not a namespace name", "use at most 63 lower-case letters, digits and '-'")
        elif name == "platform":
            if value not in ("ec2", "fargate", "eks"):
                raise bad(name, "is not a Batch platform", "use 'ec2', 'fargate' or 'eks'")
        elif name == "node_selector":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise bad(name, "is not a mapping of label to value", "use e.g. {'pool': 'gpu'}")
            value = MappingProxyType(dict(sorted(value.items())))
        elif name == "tolerations":
            if (
                isinstance(value, (str, bytes))
                or not isinstance(value, Sequence)
                or not all(isinstance(t, Mapping) and set(t) <= set(_TOLERATION_KEYS) for t in value)
            ):
                raise bad(name, "is not a list of tolerations", f"use dicts with keys from {', '.join(_TOLERATION_KEYS)}")
            value = tuple(MappingProxyType(dict(t)) for t in value)
        out[name] = value
    return out


_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "resources": (),
    "kubernetes": ("qos", "namespace", "image", "node_selector", "tolerations"),
    "batch": ("queue", "job_definition", "platform"),
}


def _decorator(decorator: str, func: Any, kwargs: dict[str, Any]) -> Any:
    def apply(target: F) -> F:
        try:
            return record(target)
        except AllotmentError as e:
            inner = innermost(target)
            if isinstance(inner, type) or not callable(inner) or not _deferring():
                raise
            setattr(inner, ATTR, StepSpec(step_name(target), error=e))
            return target

    def record(target: F) -> F:
        inner = innermost(target)
        name = step_name(target)
        current = getattr(inner, ATTR, None)
        if isinstance(current, StepSpec) and current.error is not None:
            return target  # an earlier decorator's error is kept (and raised when the spec is read)
        if isinstance(inner, type) or not callable(inner):
            raise AllotmentError(
                f"@{decorator} was applied to {type(target).__name__} {shown(target)}",
                accepted="apply it to a step function (or a decorator object wrapping one)",
            )
        allowed = FIELDS + _OPTIONS[decorator]
        unknown = [key for key in kwargs if key not in allowed]
        if unknown:
            raise AllotmentError(
                f"@{decorator} got an unknown keyword {shown(unknown[0])}",
                step=name,
                accepted=f"it takes {', '.join(allowed)}",
            )
        from .faces import connect_engines
        from .model import Resources  # pydantic's model machinery loads with the first decorated step

        fields = {k: v for k, v in kwargs.items() if k in FIELDS}
        options = _check_options(decorator, name, {k: v for k, v in kwargs.items() if k not in FIELDS})
        layer = Layer(decorator, Resources.from_input(fields, step=name, source=f"@{decorator}"), MappingProxyType(options))
        current = getattr(inner, ATTR, None)
        spec = current if isinstance(current, StepSpec) else StepSpec(name)
        setattr(inner, ATTR, spec.add(layer))
        connect_engines()  # an engine's own build paths (Hera's w.to_yaml(), ...) apply the spec: allotment.faces
        return target

    if func is not None:
        if kwargs or not callable(func):
            raise AllotmentError(
                f"@{decorator} takes keyword arguments only, got {shown(func)}",
                accepted=f"write @{decorator}(cpu=4, memory='16Gi')",
            )
        return apply(func)
    return apply


@overload
def resources(func: F, /) -> F: ...
@overload
def resources(**fields: Unpack[ResourceFields]) -> Callable[[F], F]: ...
def resources(func: Any = None, /, **fields: Any) -> Any:
    """Declare what a step needs, for whichever backend runs it.

    ``cpu``: cores (default 1; ``0.5``, ``"500m"``); ``memory``: MiB or a quantity (default
    4096 MiB; ``"16Gi"``); ``gpu``: count (default none); ``gpu_type``: e.g. ``"H100"``;
    ``gpu_vendor``: ``"nvidia"`` (default), ``"amd"``, ...; ``disk``: MiB or quantity;
    ``shared_memory``: MiB or quantity, the size of ``/dev/shm``; ``retry_memory_factor``:
    memory grows by this factor after each OOM kill. Defaults apply only where no source sets a
    value; every source's values combine by maximum.
    """
    return _decorator("resources", func, fields)


@overload
def kubernetes(func: F, /) -> F: ...
@overload
def kubernetes(**options: Unpack[KubernetesOptions]) -> Callable[[F], F]: ...
def kubernetes(func: Any = None, /, **options: Any) -> Any:
    """Pin a step to Kubernetes; resource fields as :func:`resources` (combined by maximum) plus
    ``qos`` (``"burstable"`` default, ``"guaranteed"``), ``namespace``, ``image``,
    ``node_selector`` and ``tolerations`` (kept and merged with what allotment adds)."""
    return _decorator("kubernetes", func, options)


@overload
def batch(func: F, /) -> F: ...
@overload
def batch(**options: Unpack[BatchOptions]) -> Callable[[F], F]: ...
def batch(func: Any = None, /, **options: Any) -> Any:
    """Pin a step to AWS Batch; resource fields as :func:`resources` (combined by maximum) plus
    ``queue``, ``job_definition`` and ``platform`` (``"ec2"`` default, ``"fargate"``, ``"eks"``)."""
    return _decorator("batch", func, options)
