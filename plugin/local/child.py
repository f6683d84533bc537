"""The child side of the local executor, run by path: ``python -P child.py WORKDIR``.

It imports the standard library only, so it runs before anything of the step is loaded. In order:

1. pin itself to the step's cores (``sched_setaffinity``) and, under the rlimit cap, set
   ``RLIMIT_DATA`` (the cgroup, when used, was joined by the shell that exec'd this interpreter);
2. take the parent's ``sys.path``, working directory and main module, as ``multiprocessing``'s
   ``spawn`` start method does (``multiprocessing.spawn.prepare``), so the step's callable can be
   unpickled by reference;
3. unpickle the callable and its arguments from ``WORKDIR/call.pkl``, call it, and write the
   outcome to ``WORKDIR/result.pkl`` (written whole, then renamed into place): the pickled return
   value, or the exception (pickled where it can be) with its traceback text.

Exit status 0 means an outcome was written; the parent reads the rest from the file.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from typing import Any

PROTOCOL = pickle.HIGHEST_PROTOCOL
BOOTSTRAP_ENV = "ALLOTMENT_LOCAL_BOOTSTRAPPING"
"""Set in the child's environment while it re-imports the parent's main module."""


def _high_water_bytes() -> int | None:
    """The largest peak resident set of this process (``VmHWM``) and of the children it waited for
    (``RUSAGE_CHILDREN``). Not ``RUSAGE_SELF``: Linux carries the parent's high-water mark across the
    fork and exec that started this process, so it would report the parent; a child of this one
    carries at most this process's own mark, which belongs to the step."""
    own: int | None = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    own = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    try:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    except (ImportError, OSError):
        children = 0
    return None if own is None else max(own, children)


def _write(workdir: str, outcome: dict[str, Any]) -> None:
    outcome["hwm_bytes"] = _high_water_bytes()
    tmp = os.path.join(workdir, "result.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f, protocol=PROTOCOL)
    os.replace(tmp, os.path.join(workdir, "result.pkl"))


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _failure(status: str, exc: BaseException) -> dict[str, Any]:
    """An outcome for ``exc``; under memory pressure its traceback may be cut short, never lost silently."""
    if status == "error" and exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
        exc.__traceback__ = exc.__traceback__.tb_next  # start at the step's own frame, not at main() here
    try:
        text = "".join(traceback.format_exception(exc))
    except MemoryError:
        text = f"{_qualname(exc)}: (the traceback could not be formatted: out of memory)\n"
    message = ""
    try:
        message = str(exc)
    except Exception as e:  # a broken __str__ must not hide the failure
        message = f"(str() of the exception failed: {type(e).__name__})"
    exc.__traceback__ = None  # drop the frames (and what they hold) before pickling
    try:
        pickled: bytes | None = pickle.dumps(exc, protocol=PROTOCOL)
    except Exception:
        pickled = None
    return {
        "status": status,
        "type": _qualname(exc),
        "is_memory_error": isinstance(exc, MemoryError),
        "message": message,
        "traceback": text,
        "error": pickled,
    }


def main(argv: list[str]) -> int:
    workdir = argv[1]
    me = os.getpid()
    with open(os.path.join(workdir, "setup.pkl"), "rb") as f:
        setup = pickle.load(f)
    if setup["cores"] is not None:
        os.sched_setaffinity(0, setup["cores"])
    if setup["rlimit_data_bytes"] is not None:
        import resource

        cap = setup["rlimit_data_bytes"]
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    try:
        import multiprocessing.spawn

        # While the parent's main module is re-imported, a run_step() at its top level (no
        # `if __name__ == "__main__":` guard) would start children without end: it raises instead.
        os.environ[BOOTSTRAP_ENV] = "1"
        try:
            multiprocessing.spawn.prepare(setup["prep"])
        finally:
            os.environ.pop(BOOTSTRAP_ENV, None)
    except BaseException as exc:
        outcome = _failure("main_error", exc)
        outcome["main"] = setup["prep"].get("init_main_from_path") or setup["prep"].get("init_main_from_name")
        _write(workdir, outcome)
        return 0
    try:
        with open(os.path.join(workdir, "call.pkl"), "rb") as f:
            fn, args, kwargs = pickle.load(f)
    except BaseException as exc:
        _write(workdir, _failure("load_error", exc))
        return 0
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:
        if os.getpid() != me:  # a process the step forked came back through here
            os._exit(1)
        del fn, args, kwargs
        _write(workdir, _failure("error", exc))
        return 0
    if os.getpid() != me:
        os._exit(0)
    try:
        data = pickle.dumps(value, protocol=PROTOCOL)
    except BaseException as exc:
        outcome = _failure("unpicklable", exc)
        outcome["value_type"] = f"{type(value).__module__}.{type(value).__qualname__}"
        del value
        _write(workdir, outcome)
        return 0
    del value
    _write(workdir, {"status": "ok", "value": data})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
