"""Reading the small data files allotment takes (policy, cluster profile): YAML, TOML or JSON.

TOML and JSON use the standard library; YAML imports PyYAML only when a YAML file is read,
so ``import allotment`` stays light.

A file is input like any other (docs/design.md §7.2): whatever its bytes, reading it gives a
mapping with text keys or an :class:`~allotment.errors.AllotmentError` naming the file. It is
at most :data:`MAX_FILE_BYTES`, UTF-8 (a byte-order mark is allowed), and a parser's own error
(a bad byte, a syntax error, nesting too deep, an int too long) becomes one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .errors import AllotmentError, debug_cause, shown

__all__ = ["MAX_FILE_BYTES", "check_keys", "read_mapping"]

MAX_FILE_BYTES: Final = 1024 * 1024
"""A policy or profile is a few lines; a file over 1 MiB is not one."""


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``, ``.toml`` or ``.json`` file."""
    file = Path(path)
    source = f"{what} file {str(file)!r}"
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise AllotmentError("has an unknown format", source=source, accepted="use a .yaml, .yml, .toml or .json file")
    try:
        with file.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise AllotmentError(f"cannot be read: {e.strerror or e}", source=source) from debug_cause(e)
    if len(raw) > MAX_FILE_BYTES:
        raise AllotmentError(f"is larger than {MAX_FILE_BYTES // 1024} KiB", source=source, accepted=f"a {what} is a few lines")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AllotmentError(
            f"is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})", source=source, accepted="save the file as UTF-8"
        ) from debug_cause(e)
    try:
        if suffix == ".toml":
            import tomllib

            data: object = tomllib.loads(text)
        elif suffix == ".json":
            import json

            data = json.loads(text)
        else:
            import yaml

            # libyaml's loader where PyYAML has it: the same safe types, and it refuses deep
            # nesting at once (the pure-Python one takes a second per thousand '[').
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as e:  # each parser has its own error type; RecursionError and int-size ValueErrors too
        detail = " ".join(str(e).split()) or type(e).__name__
        raise AllotmentError(f"is not valid {suffix[1:].upper()}: {detail}", source=source) from debug_cause(e)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AllotmentError("does not hold a mapping at the top level", source=source)
    check_keys(data, source)
    return data


def check_keys(data: Mapping[Any, Any], source: str, where: str = "") -> None:
    """Raise unless every key of ``data`` is text (YAML also reads ``1:``, ``true:`` or ``null:`` as keys).
    ``where``: the section, e.g. ``caps``."""
    for key in data:
        if not isinstance(key, str):
            raise AllotmentError(
                f"has the key {shown(key)}{f' in {where}' if where else ''}, which is not text",
                source=source,
                accepted="keys are names; quote a key that YAML would read as a number, bool or null",
            )
