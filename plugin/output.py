"""Printing documents: multi-document YAML (PyYAML, imported only here) or JSON.
Key order is the order the documents were built in, so the same input prints the same bytes.

YAML goes through libyaml's emitter (``yaml.CSafeDumper``) when PyYAML was built with it, and
through the pure-Python ``yaml.SafeDumper`` otherwise: the two write the same bytes for the
plain data printed here (str, int, float, bool, None, lists, dicts), and libyaml's is about
ten times faster, which is most of ``allotment render``'s time for a large workflow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

__all__ = ["dump", "yaml_dumper"]


@cache
def yaml_dumper(native: bool = True) -> type[Any]:
    """The dumper class: a safe dumper that never writes anchors or aliases (a repeated object is
    written out again). ``native``: libyaml's ``CSafeDumper`` where available (else, and with
    ``native=False``, the pure-Python ``SafeDumper``)."""
    import yaml

    base: type[Any] = getattr(yaml, "CSafeDumper", yaml.SafeDumper) if native else yaml.SafeDumper

    class _Dumper(base):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return _Dumper


def dump(documents: Sequence[Any], fmt: str = "yaml") -> str:
    """``documents`` as ``yaml`` (``---``-separated) or ``json`` (one array)."""
    if fmt == "json":
        return json.dumps(list(documents), indent=2) + "\n"
    import yaml

    text: str = yaml.dump_all(list(documents), Dumper=yaml_dumper(), sort_keys=False, default_flow_style=False, width=120)
    return text
