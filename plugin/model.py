"""``allotment.Resources``: one step's resource request, immutable.

Every field is optional: ``None`` means "this source did not say", which is different
from a default. Defaults (cpu 1 core, memory 4096 MiB) are filled in by resolution and only
where no source set a value (docs/design.md §2), so they are not part of this model.

Units held (docs/design.md §1): ``cpu`` in millicores, ``memory``/``disk``/``shared_memory`` in MiB,
``gpu`` as a count. The constructor takes the forms users write (``cpu=0.5``,
``memory="16Gi"``); ``Resources(cpu=4).cpu == 4000``. Use :meth:`Resources.normalized` to
build one from values already in the held units.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer, field_validator

from .errors import AllotmentError, FieldError, debug_cause, shown
from .fields import FIELDS, PARSERS
from .quantity import format_cpu, format_mib

__all__ = ["Resources", "describe_value"]


_EMPTY: dict[type[Resources], Resources] = {}
"""The empty spec of each Resources class, built once (:meth:`Resources.normalized`)."""


class Resources(BaseModel):
    """A resource request. Frozen; :func:`allotment.merge.merge` returns new ones.

    Fields: ``cpu`` (millicores), ``memory`` (MiB), ``gpu`` (count), ``gpu_type``,
    ``gpu_vendor``, ``disk`` (MiB, local disk), ``shared_memory`` (MiB, the size
    of ``/dev/shm``), ``retry_memory_factor`` (memory grows by this after each OOM kill).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False, defer_build=True)

    cpu: int | None = None
    memory: int | None = None
    gpu: int | None = None
    gpu_type: str | None = None
    gpu_vendor: str | None = None
    disk: int | None = None
    shared_memory: int | None = None
    retry_memory_factor: float | None = None

    _source: ClassVar[str] = "Resources(...)"

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _allotment_error(e, source=self._source) from debug_cause(e)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """As pydantic's, but a bad value is an :class:`AllotmentError` like the constructor's."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as e:
            raise _allotment_error(e, source=cls._source) from debug_cause(e)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """As pydantic's, but a bad value is an :class:`AllotmentError` like the constructor's."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as e:
            raise _allotment_error(e, source=cls._source) from debug_cause(e)

    @field_validator(*FIELDS, mode="before")
    @classmethod
    def _parse(cls, value: object, info: Any) -> object:
        if value is None:
            return None
        return PARSERS[info.field_name](value)

    @field_serializer("cpu")
    def _cpu_out(self, cpu: int | None) -> str | None:
        # Serialized as a Kubernetes quantity so that validating the dump gives the same spec.
        return None if cpu is None else format_cpu(cpu)

    @classmethod
    def normalized(cls, **values: object) -> Resources:
        """Build from values already in the held units (cpu in millicores, sizes in MiB)."""
        if not values:
            empty = _EMPTY.get(cls)
            if empty is None:
                empty = _EMPTY[cls] = cls.model_construct()  # frozen: one empty spec per class serves every caller
            return empty
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise AllotmentError(f"unknown field(s) {', '.join(unknown)}", accepted=f"fields are {', '.join(FIELDS)}")
        return cls.model_construct(**values)  # type: ignore[arg-type]

    @classmethod
    def from_input(
        cls, data: Resources | Mapping[str, object] | None, *, step: str | None = None, source: str = "Resources(...)"
    ) -> Resources:
        """Validate what a user wrote (a mapping of fields, or a Resources) and name ``step`` and
        ``source`` in any error."""
        if data is None:
            return cls()
        if isinstance(data, Resources):
            return data
        if not isinstance(data, Mapping):
            raise AllotmentError(
                f"got a {type(data).__name__}",
                step=step,
                source=source,
                accepted="use allotment.Resources or a dict of fields such as {'cpu': 4, 'memory': '16Gi'}",
            )
        unknown = [key for key in data if key not in FIELDS]
        if unknown:
            raise AllotmentError(f"unknown field {unknown[0]!r}", step=step, source=source, accepted=f"fields are {', '.join(FIELDS)}")
        values: dict[str, object] = {}
        for name, raw in data.items():
            if raw is None:
                continue
            try:
                values[name] = PARSERS[name](raw)
            except FieldError as e:
                raise e.with_context(step=step, source=source) from debug_cause(e)
        return cls.model_construct(**values)  # type: ignore[arg-type]

    def items(self) -> Iterator[tuple[str, object]]:
        """The fields that are set, in field order."""
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def is_empty(self) -> bool:
        """True when no field is set."""
        return next(self.items(), None) is None

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={describe_value(name, value)!r}" for name, value in self.items())
        return f"Resources({shown})"

    __str__ = __repr__


def describe_value(field: str, value: object) -> str:
    """A value in the words a user reads: ``cpu 1500 -> '1500m'``, ``memory 16384 -> '16Gi'``."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return shown(value)  # beyond every bound; str() of a long int raises
    if field == "cpu" and isinstance(value, int):
        return format_cpu(value)
    if field in ("memory", "disk", "shared_memory") and isinstance(value, int):
        return format_mib(value)
    return str(value)


def _allotment_error(error: ValidationError, *, source: str) -> AllotmentError:
    """The first problem of a pydantic ValidationError as an AllotmentError, without pydantic internals."""
    first = error.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first.get("loc", ()))
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, AllotmentError):
        return inner.with_context(source=source)
    if first.get("type") == "extra_forbidden":
        return AllotmentError(f"unknown field {field!r}", source=source, accepted=f"fields are {', '.join(FIELDS)}")
    return AllotmentError(first.get("msg", "is not valid"), field=field or None, value=first.get("input"), source=source)
