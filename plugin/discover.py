"""Finding steps: import a Python file (or every file under a folder) and collect the
callables that carry an allotment spec, in the order the file defines them.

Faces can find more (an Airflow task inside a ``@dag`` function is no module global):
:data:`allotment.faces.STEP_FINDERS` names a finder per face, called only when the file
imported that engine, so looking at a plain file never imports Airflow.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .decorators import StepSpec, innermost, spec_of
from .errors import AllotmentError, debug_cause
from .faces import import_hint
from .model import Resources
from .sources import Source

if TYPE_CHECKING:
    from .resolve import Resolved
    from .settings import Settings

__all__ = ["DEBUG_HINT", "Step", "find_steps", "in_file", "iter_steps", "load_module", "python_files"]

DEBUG_HINT = "run with ALLOTMENT_DEBUG=1 to see the traceback"
"""How a message tells a user where the traceback is (the CLI prints it under ``ALLOTMENT_DEBUG=1``)."""


@dataclass(frozen=True)
class Step:
    """A step found in a module: a decorated callable, or a face's task.

    ``backend``: the backend the object itself implies (a KubernetesPodOperator runs on
    Kubernetes), else None. ``defaults``: workflow-level defaults for it. ``extra``: further
    step sources (an operator's ``resources=``), each with its source. ``resolver``: how the
    engine itself resolves the step, ``resolver(settings, conf=...)`` (a face's, so that
    ``explain`` takes the engine's own path, its config and a run's conf included); None:
    :meth:`Settings.resolve <allotment.settings.Settings.resolve>` of the fields above.
    ``configure``: the settings the engine runs the step with, given the caller's (a face adds
    its engine's own config, e.g. Airflow's ``[allotment]`` section); None: the caller's.
    """

    name: str
    spec: StepSpec | None
    obj: Any
    file: Path
    backend: str | None = None
    defaults: tuple[tuple[Resources, Source], ...] = ()
    extra: tuple[tuple[Resources, Source], ...] = ()
    face: str | None = None
    """The engine whose face found the step (a key of :data:`allotment.faces.STEP_FINDERS`:
    ``airflow``, ``hera``); None for a decorated function found among a module's globals."""
    resolver: Callable[..., Resolved] | None = field(default=None, compare=False, repr=False)
    configure: Callable[[Settings], Settings] | None = field(default=None, compare=False, repr=False)

    def settings_for(self, settings: Settings) -> Settings:
        """The settings the step's engine uses, given the caller's (see ``configure``)."""
        return self.configure(settings) if self.configure is not None else settings

    def resolve(self, settings: Settings, *, conf: Any = None) -> Resolved:
        """The step resolved as its engine resolves it, under ``settings`` (``conf``: a run's
        configuration, for a face whose engine takes one, e.g. Airflow's ``dag_run.conf``)."""
        if self.resolver is not None:
            return self.resolver(settings, conf=conf)
        if conf is not None:
            raise AllotmentError(
                f"is no task of an engine that takes a run's conf ({type(self.obj).__name__} in {self.file})",
                step=self.name,
                field="--conf",
                has_value=False,
                accepted="use --conf with Airflow DAG files (it previews dag_run.conf); use --with/--set for other steps",
            )
        return settings.resolve(self.spec, step=self.name, backend=self.backend, defaults=self.defaults, extra=self.extra)


def python_files(paths: Iterable[str | Path]) -> list[Path]:
    """The ``.py`` files named, or found under the folders named (sorted, no hidden or cache dirs)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*.py") if not any(part.startswith((".", "__pycache__")) for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise AllotmentError("does not exist", field="path", value=str(path), accepted="name a .py file or a folder")
    return files


def load_module(path: Path) -> ModuleType:
    """Import ``path`` as a module of its own (its folder is on ``sys.path`` while it loads).

    An :class:`AllotmentError` raised while it loads (a bad spec) is re-raised naming the file;
    any other exception, a ``SystemExit`` included, is an :class:`AllotmentError` naming the file
    and the exception (its traceback stays on the error's ``__context__``).
    """
    resolved = path.resolve()
    name = "allotment_user_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise AllotmentError("cannot be imported", field="path", value=str(path))
    module = importlib.util.module_from_spec(spec)
    folder = str(resolved.parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except AllotmentError as e:
        del sys.modules[name]
        raise in_file(e, path) from debug_cause(e)
    except Exception as e:
        del sys.modules[name]
        hint = import_hint(e)
        accepted = f"{hint}; {DEBUG_HINT}" if hint else f"fix the file; {DEBUG_HINT}"
        raise AllotmentError(f"{path} failed to import: {type(e).__name__}: {e}", accepted=accepted) from debug_cause(e)
    except SystemExit as e:
        del sys.modules[name]
        raise AllotmentError(
            f"{path} exited while it was imported (SystemExit {e.code!r})",
            accepted="put the code that runs the file as a script under `if __name__ == '__main__':`",
        ) from debug_cause(e)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def find_steps(module: ModuleType, file: Path | None = None) -> list[Step]:
    """The steps faces find in the module (when it imported their engine), then the decorated
    callables among its globals; each once, in definition order."""
    from .faces import STEP_FINDERS, load_finder

    file = file or Path(getattr(module, "__file__", "?"))
    steps: list[Step] = []
    for trigger in STEP_FINDERS:
        if trigger in sys.modules:
            steps += [step if step.face else replace(step, face=trigger) for step in load_finder(trigger)(module, file)]
    seen: set[int] = {id(innermost(step.obj)) for step in steps}
    for obj in list(vars(module).values()):
        spec = spec_of(obj)
        if spec is None:
            continue
        key = id(innermost(obj))
        if key in seen:
            continue
        seen.add(key)
        steps.append(Step(spec.name, spec, obj, file))
    return steps


def in_file(error: AllotmentError, file: str | Path) -> AllotmentError:
    """``error`` naming ``file`` first (``dags/train.py: step 'train': ...``), once."""
    text = str(error)
    if text.startswith(f"{file}:") or text.startswith(f"{file} "):
        return error
    named = AllotmentError(f"{file}: {text}")
    named.__cause__ = error
    return named


def iter_steps(paths: Iterable[str | Path], errors: list[AllotmentError] | None = None) -> Iterator[Step]:
    """Every step in every file under ``paths``. ``errors``: where a file that fails to load (or
    whose steps cannot be read) is reported, naming the file, while the other files are still
    read; without it the first such error is raised."""
    for file in python_files(paths):
        if errors is None:
            yield from find_steps(load_module(file), file)
            continue
        try:
            found = find_steps(load_module(file), file)
        except AllotmentError as e:
            errors.append(in_file(e, file))
            continue
        except Exception as e:  # a face's finder met something it did not expect
            failed = AllotmentError(f"{file}: its steps cannot be read: {type(e).__name__}: {e}", accepted=DEBUG_HINT)
            failed.__cause__ = e
            errors.append(failed)
            continue
        yield from found
