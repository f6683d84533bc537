"""Where the time goes: one profiled run of a workload, summarised per function.

``python bench/profiling.py KIND JSON-ARGS`` runs :func:`bench.child.measure`'s workload of
``KIND`` (``dagbag`` or ``hera``) once under pyinstrument (a sampling profiler; install it into
the venv only, ``pip install pyinstrument``: it is no dependency of allotment) and prints one
JSON line: the total sampled time and, per function, its **inclusive** time (the function and
everything it calls; a recursive function counted once per stack) as a share of the total. The
harness keeps the functions that are allotment's own (files under ``plugin/``, ``airflow/``
and ``argo/`` of this repository, or an installed ``allotment`` package), the workload's own
module, and the largest others, so RESULTS.md shows where each missed goal spends its time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OURS = tuple(str(ROOT / folder) + "/" for folder in ("plugin", "airflow", "argo"))


def owner(path: str) -> str:
    """``allotment`` for allotment's own code, else the top-level package (or file) a path belongs to."""
    if path.startswith(OURS) or "/site-packages/allotment/" in path:
        return "allotment"
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith("<"):
        return path
    return Path(path).name


def summarise(root: Any, top: int = 40) -> dict[str, Any]:
    """Inclusive time per function of a pyinstrument frame tree, largest first."""
    inclusive: dict[tuple[str, str, int], float] = {}

    def walk(frame: Any, on_stack: frozenset[tuple[str, str, int]]) -> None:
        key = (frame.function or "?", frame.file_path or "?", frame.line_no or 0)
        if key not in on_stack:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
            on_stack = on_stack | {key}
        for child in frame.children:
            walk(child, on_stack)

    walk(root, frozenset())
    total = root.time or 1e-9
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])
    out = []
    for (function, path, line), seconds in rows:
        short = path.split("/site-packages/", 1)[-1].replace(str(ROOT) + "/", "")
        out.append({"function": function, "where": f"{short}:{line}", "owner": owner(path), "share": seconds / total})
    ours = [r for r in out if r["owner"] == "allotment"][:top]
    others = [r for r in out if r["owner"] != "allotment"][:top]
    return {"total_s": total, "ours": ours, "others": others}


def main() -> None:
    from pyinstrument import Profiler

    sys.path.insert(0, str(HERE))
    import child

    kind, args = sys.argv[1], json.loads(sys.argv[2])
    profiler = Profiler(interval=0.001)
    child.PROFILER = profiler
    child.measure(kind, args)
    session = profiler.last_session
    if session is None:
        raise SystemExit("nothing was profiled")
    root = session.root_frame()
    if root is None:
        raise SystemExit("nothing was profiled")
    print("\n" + json.dumps(summarise(root)))


if __name__ == "__main__":
    main()
