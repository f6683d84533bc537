"""A small registry of lazy imports: how the core reaches a face (Airflow, Argo, Batch)
without importing it. Nothing here imports a face until a target is asked for.

A render target is ``"module:function"``; the function takes ``(paths, settings, options)``
(options: the CLI's ``namespace`` and ``platform``, None when not given) and returns a list
of documents (plain dicts) to print. The core's own targets (``kubernetes``, ``batch``,
``limitrange``) are registered the same way.

:data:`ENGINE_FACES` and :func:`connect_engines` let an engine's own build paths carry the
specs without any call from the user: every step decorator calls :func:`connect_engines`,
which calls the face's ``connect`` function for each engine module that is imported (Hera:
register its pre-build hooks, so ``w.to_yaml()``, ``w.create()`` and ``hera generate yaml``
see the specs). Where a step is decorated before the engine is imported, a one-shot import
hook calls it right after the engine module has loaded. The core names engines by module
name only and never imports one.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from .errors import AllotmentError, debug_cause

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

__all__ = [
    "ENGINE_FACES",
    "IMPORT_HINTS",
    "RENDER_TARGETS",
    "RUNNERS",
    "STEP_FINDERS",
    "connect_engines",
    "face_package",
    "import_hint",
    "load_finder",
    "load_runner",
    "load_target",
]

RENDER_TARGETS: Final[dict[str, tuple[str, str]]] = {
    "kubernetes": ("allotment.kubernetes.render:render", ""),
    "airflow": ("allotment.airflow.render:render", "airflow"),
    "argo": ("allotment.argo.render:render", "argo"),
    "batch": ("allotment.batch.render:render", ""),
    "limitrange": ("allotment.kubernetes.limitrange:render", ""),
}
"""Target -> (``module:function``, the extra that installs its face)."""

STEP_FINDERS: Final[dict[str, str]] = {
    "airflow": "allotment.airflow.discover:find_steps",
    "hera": "allotment.argo.discover:find_steps",
}
"""Engine module -> a finder ``(module, file) -> list[allotment.discover.Step]`` for the steps
that engine's objects hold. Called only when the engine is already imported."""

ENGINE_FACES: Final[dict[str, tuple[str, str]]] = {
    "hera.workflows": ("allotment.argo.hooks:install", "argo"),
}
"""Engine module -> (the face function, the extra that installs its face). The function takes no
arguments and is idempotent; it makes the engine's own build paths apply the specs of
decorated steps. See :func:`connect_engines`."""

RUNNERS: Final[dict[str, str]] = {
    "hera": "allotment.argo.run:plan_file",
}
"""Engine module -> a runner ``(module, file) -> allotment.run.Plan | None`` for ``allotment run``:
the plan of what the file's engine objects run (None: the file has none). Called only when the
engine is already imported."""

IMPORT_HINTS: Final[dict[str, str]] = {
    "airflow": "allotment.airflow.hints:import_hint",
}
"""Engine module -> a function ``(exception) -> str | None``: advice for an exception raised while
a user's file was imported, when that engine's misuse explains it (None: no advice). Called only
when the engine is already imported."""

Renderer = Callable[[Sequence[Path], Any, Mapping[str, Any]], list[dict[str, Any]]]


def load_target(target: str) -> Renderer:
    """The renderer for ``target``, imported now."""
    if target not in RENDER_TARGETS:
        raise AllotmentError("is not a render target", field="target", value=target, accepted=f"targets are {', '.join(RENDER_TARGETS)}")
    where, extra = RENDER_TARGETS[target]
    module_name, _, function = where.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        hint = f"pip install 'allotment[{extra}]'" if extra else "reinstall allotment"
        raise AllotmentError(f"needs a face that cannot be imported ({e})", field="target", value=target, accepted=hint) from debug_cause(e)
    renderer: Renderer = getattr(module, function)
    return renderer


def load_finder(engine: str) -> Callable[[Any, Path], list[Any]]:
    """The step finder of the face for ``engine`` (see :data:`STEP_FINDERS`), imported now."""
    module_name, _, function = STEP_FINDERS[engine].partition(":")
    finder: Callable[[Any, Path], list[Any]] = getattr(importlib.import_module(module_name), function)
    return finder


def import_hint(error: BaseException) -> str | None:
    """The first advice a face of an imported engine has for ``error`` (see :data:`IMPORT_HINTS`);
    None when none has any, or a face's adviser cannot be loaded (advice never hides the error)."""
    for engine, where in IMPORT_HINTS.items():
        if engine not in sys.modules:
            continue
        module_name, _, function = where.partition(":")
        try:
            adviser = getattr(importlib.import_module(module_name), function)
            hint = adviser(error)
        except Exception:
            continue
        if isinstance(hint, str) and hint:
            return hint
    return None


def load_runner(engine: str) -> Callable[[Any, Path], Any]:
    """The ``allotment run`` runner of the face for ``engine`` (see :data:`RUNNERS`), imported now."""
    module_name, _, function = RUNNERS[engine].partition(":")
    runner: Callable[[Any, Path], Any] = getattr(importlib.import_module(module_name), function)
    return runner


def face_package(
    name: str, file: str, folder: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__path__``, ``__getattr__`` and ``__dir__`` for a module that stands in for a face's
    missing ``__init__.py`` (``plugin/airflow.py`` for the ``airflow/`` folder).

    ``__path__`` makes the module a package whose submodules are the face folder's files:
    ``allotment/<folder>/`` beside the module when installed (wheel or strict editable), the
    repository's top-level ``<folder>/`` in a source tree (a plain editable install maps
    ``allotment`` to ``plugin/``). ``__getattr__`` imports a public name from the submodule
    ``exports`` names for it, on first use, and keeps it in ``namespace`` (the module's globals).
    """
    here = Path(file)
    source_tree = here.parent.name == "plugin" and (here.parent.parent / "pyproject.toml").is_file()
    path = [str(here.parent.parent / folder if source_tree else here.with_suffix(""))]

    def __getattr__(attr: str) -> Any:
        if attr not in exports:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        value = getattr(importlib.import_module(f"{name}.{exports[attr]}"), attr)
        namespace[attr] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return path, __getattr__, __dir__


def _connect(engine: str) -> None:
    where, extra = ENGINE_FACES[engine]
    module_name, _, function = where.partition(":")
    try:
        connect: Callable[[], None] | None = getattr(importlib.import_module(module_name), function, None)
    except ImportError as e:
        raise AllotmentError(
            f"a decorated step and {engine} are both loaded, but allotment's face for {engine} cannot be imported ({e})",
            accepted=f"install the versions allotment supports: pip install 'allotment[{extra}]'",
        ) from e
    if connect is not None:  # None: the face module is itself being imported (it imported the engine); it connects when loaded
        connect()


class _AfterImport:
    """A one-shot import hook: finds an engine module through the other finders and connects its
    face right after the module's code has run, then leaves ``sys.meta_path``."""

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != self.engine:
            return None
        spec: ModuleSpec | None = None
        for finder in [f for f in sys.meta_path if f is not self]:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        loader = spec.loader if spec is not None else None
        run: Callable[[ModuleType], None] | None = getattr(loader, "exec_module", None)
        if run is None:
            return spec  # not found, or a loader without exec_module: left alone; a later decorated step connects
        engine, hook = self.engine, self

        def exec_module(module: ModuleType) -> None:
            run(module)
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
            _connect(engine)

        setattr(loader, "exec_module", exec_module)  # noqa: B010 - this loader instance serves this one spec
        return spec


def connect_engines() -> None:
    """Called by every step decorator: connect the face of each engine in :data:`ENGINE_FACES`
    that is imported now, and arm a one-shot import hook for each that is not (so a step module
    decorated before the engine is imported is covered too)."""
    for engine in ENGINE_FACES:
        if engine in sys.modules:
            _connect(engine)
        elif not any(isinstance(f, _AfterImport) and f.engine == engine for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterImport(engine))
