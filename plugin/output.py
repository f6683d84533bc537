"""Printing documents: multi-document YAML (PyYAML, imported only here) or JSON.
Key order is the order the documents were built in, so the same input prints the same bytes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["dump"]


def dump(documents: Sequence[Any], fmt: str = "yaml") -> str:
    """``documents`` as ``yaml`` (``---``-separated) or ``json`` (one array)."""
    if fmt == "json":
        return json.dumps(list(documents), indent=2) + "\n"
    import yaml

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(list(documents), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
