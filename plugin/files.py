"""Reading the small data files allotment takes (policy, cluster profile): YAML, TOML or JSON.

TOML and JSON use the standard library; YAML imports PyYAML only when a YAML file is read,
so ``import allotment`` stays light.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from .errors import AllotmentError

__all__ = ["read_mapping"]


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``, ``.toml`` or ``.json`` file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise AllotmentError(f"cannot be read: {e.strerror}", source=f"{what} file {str(file)!r}") from None
    suffix = file.suffix.lower()
    try:
        if suffix == ".toml":
            data: object = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise AllotmentError(
                "has an unknown format", source=f"{what} file {str(file)!r}", accepted="use a .yaml, .yml, .toml or .json file"
            )
    except AllotmentError:
        raise
    except Exception as e:  # each parser has its own error type
        raise AllotmentError(f"is not valid {suffix[1:].upper()}: {e}", source=f"{what} file {str(file)!r}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AllotmentError("does not hold a mapping at the top level", source=f"{what} file {str(file)!r}")
    return data
