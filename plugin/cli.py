"""The ``allotment`` command: ``explain``, ``render`` and ``run`` (steps on this machine, :mod:`allotment.run`).

Every problem a user meets is one message on stderr (``allotment: error: ...``), never a
traceback; ``ALLOTMENT_DEBUG=1`` adds the traceback, with every exception of its chain. Each step's
error is reported (one failing step does not hide the next), and a closing line on stderr sums
the run up for CI: ``allotment: explain: 3 steps (1 local, 1 kubernetes, 1 batch) in 1 file, 0
errors``. A command that finds nothing for its target says what it found and exits 1.

Exit status: 0 done; 1 an error, or nothing matched; 2 bad usage; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DEBUG_ENV, AllotmentError, AllotmentWarning, debugging, show_whole_chain

if TYPE_CHECKING:
    from .discover import Step
    from .explain import Explained
    from .render import Tally
    from .resolve import Resolved
    from .settings import Settings

__all__ = ["DEBUG_ENV", "build_parser", "main", "resolve_step"]

"""Set to 1 to see the traceback of every error the command reports."""

_DESCRIPTION = """\
allotment: one compute-resource spec for workflow steps, compiled for Kubernetes
(Airflow KubernetesPodOperator, Argo/Hera) and AWS Batch.

Units: cpu in cores (4, 0.5, '500m'); memory, disk and shared_memory in MiB when a plain
number, or a quantity ('16Gi', '16G'); gpu a whole number.

Exit status: 0 done, 1 an error or nothing found for the command, 2 bad usage.
Errors are one line each; ALLOTMENT_DEBUG=1 shows their tracebacks."""

_WITH_HELP = (
    "runtime floor, repeatable: 'kubernetes:cpu=8,memory=32768', 'batch:gpu=2', 'memory=64Gi' "
    "(every step), 'train:memory=64Gi' or 'train.kubernetes:memory=64Gi' (one step). Combined by "
    "maximum with the step's own values; a lone backend ('kubernetes') only chooses the backend. "
    "One spec per --with (repeat it); env ALLOTMENT_WITH takes several, ';'-separated."
)
_SET_HELP = (
    "explicit override, repeatable, same grammar as --with: replaces the value (may lower it); "
    "allowed without a policy; with one, only where it says runtime.set: true. Also env ALLOTMENT_SET."
)
_PARAMETER_HELP = (
    "preview an Argo submit parameter, repeatable, as 'argo submit -p' takes it: 'train-memory=64Gi' "
    "(<template>-cpu, -memory, -gpu, -disk, -shared-memory). It replaces the compiled value, as Argo "
    "does, and the policy checks it as runtime input (runtime.caps)."
)

TARGET_WORDS = {
    "kubernetes": "steps that run on Kubernetes",
    "batch": "steps that run on AWS Batch",
    "airflow": "the tasks of Airflow DAG files that carry allotment resources",
    "argo": "Hera workflows (Workflow, WorkflowTemplate, CronWorkflow)",
    "limitrange": "the policy's caps",
}
"""What each render target renders, in the words its empty result uses."""

_STEP_KINDS = "a function with @resources, @kubernetes or @batch, an Airflow task or a Hera template that carries allotment resources"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        return version("allotment")
    except PackageNotFoundError:  # pragma: no cover - a source tree without an install
        return __version__


class _Help(argparse.HelpFormatter):
    """argparse's help, wrapped without breaking words at hyphens (``train-memory=64Gi`` stays whole)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="Python files, or folders searched for *.py (none for --target limitrange)"
    )
    parser.add_argument("--with", dest="with_", action="append", default=[], metavar="SPEC", help=_WITH_HELP)
    parser.add_argument("--set", dest="set_", action="append", default=[], metavar="SPEC", help=_SET_HELP)
    parser.add_argument(
        "--backend",
        choices=("kubernetes", "batch", "local"),
        help="backend of steps without a backend decorator (default: the one --with names, else local; env ALLOTMENT_BACKEND)",
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="policy file (.yaml/.toml/.json) with caps and runtime rules (env ALLOTMENT_POLICY)"
    )
    parser.add_argument(
        "--profile",
        metavar="NAME|FILE",
        help="cluster profile mapping gpu_type to node labels: nvidia-gfd (default), gke, "
        "eks-karpenter, or a .yaml/.toml/.json file (env ALLOTMENT_PROFILE)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="allotment", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"allotment {_version()}", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain = sub.add_parser(
        "explain",
        formatter_class=_Help,
        help="show each step's final values, their sources and what they become",
        description="Per step: each field's final value, the source it came from (@resources, "
        "@kubernetes, @batch, with, default, set, submit parameter), the values other sources gave, "
        "and what the backend makes of it.",
    )
    _common(explain)
    explain.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE", help=_PARAMETER_HELP)
    explain.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format (default table)")
    explain.add_argument(
        "--conf",
        metavar="JSON",
        help='preview an Airflow run: its dag_run.conf, e.g. \'{"allotment": {"tasks": {"train": "memory=64Gi"}}}\', '
        "applied and policy-checked as the running task applies it",
    )
    render = sub.add_parser(
        "render",
        formatter_class=_Help,
        help="print what each step compiles to",
        description="Print what each step compiles to for a target, as YAML or JSON.",
    )
    _common(render)
    render.add_argument(
        "--target",
        required=True,
        choices=("kubernetes", "airflow", "argo", "batch", "limitrange"),
        help="kubernetes: container resources, volumes, volumeMounts, nodeSelector, tolerations per "
        "step; airflow: the V1Pod of every resourced task in DAG files; argo: the Workflow, "
        "WorkflowTemplate and CronWorkflow objects of Hera files; batch: the SubmitJob request and the "
        "job-definition fields per step; limitrange: the policy's caps "
        "as a LimitRange/ResourceQuota",
    )
    render.add_argument("--namespace", help="namespace of the rendered LimitRange (target limitrange)")
    render.add_argument(
        "--platform",
        choices=("ec2", "fargate", "eks"),
        help="AWS Batch platform of steps whose @batch names none (target batch; default ec2)",
    )
    render.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    run = sub.add_parser(
        "run",
        help="run the steps on this machine, each under its cpu, memory and GPUs, and report what they used",
        description="Run the decorated functions of Python files (in file order), or the script templates of the Hera "
        "workflows they define (in DAG and Steps order, parameters passed on), each in a child process under "
        "its resolved cpu, memory and GPUs (the local backend); print a table of what each try used. "
        "See docs/run.md for what is covered.",
    )
    _common(run)
    run.add_argument(
        "--step",
        dest="steps",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this step, repeatable (a Hera task or template: with the steps it needs)",
    )
    run.add_argument("--report", metavar="FILE", help="write the JSON report of every try to FILE")
    run.add_argument("--retries", type=int, metavar="N", help="tries after a failed one, for every step (default: each step's own)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 done, 1 an error or nothing matched, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.paths and getattr(args, "target", None) != "limitrange":
        parser.error(f"{args.command}: give at least one PATH (a Python file or a folder)")
    run = _Run(args)
    try:
        with run.collecting_warnings():
            run.execute()
    except KeyboardInterrupt:
        print("allotment: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as other tools do
        with contextlib.suppress(Exception):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except AllotmentError as e:
        run.fail(run.locate(e))
    except Exception as e:  # a face or an engine failed in a way allotment did not foresee
        failed = AllotmentError(f"{type(e).__name__}: {e}", accepted=f"this is a bug or an engine's error; {_debug_hint()}")
        failed.__cause__ = e
        run.fail(failed)
    return run.finish()


def _debug_hint() -> str:
    return f"run with {DEBUG_ENV}=1 to see the traceback"


def _print_traceback(error: BaseException) -> None:
    """``error``'s traceback with every exception of its chain, suppressed contexts included."""
    show_whole_chain(error)
    traceback.print_exception(error, file=sys.stderr)


def resolve_step(step: Step, settings: Settings, *, conf: object = None) -> Resolved:
    """How ``explain`` resolves one step: as its engine resolves it (a face's resolver, e.g. an
    Airflow task's own, with a previewed run's ``conf``), else from its decorators and sources."""
    return step.resolve(settings, conf=conf)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Run:
    """One command: its settings, what it found and every error, and the closing summary."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.paths = [Path(p) for p in args.paths]
        self.files: int | None = None
        self.documents: int | None = None
        self.tally: Tally | None = None
        self.errors: list[AllotmentError] = []
        self.warned: list[str] = []
        self.nothing = False
        self.shown_notes: set[str] = set()
        self.run_status: int | None = None

    # -- reporting ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def collecting_warnings(self) -> Iterator[None]:
        """AllotmentWarnings become ``allotment: warning: ...`` lines, each once; others pass."""
        original = warnings.showwarning

        def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
            if not issubclass(category, AllotmentWarning):
                original(message, category, filename, lineno, file, line)
                return
            text = str(message)
            if text not in self.warned:
                self.warned.append(text)

        with warnings.catch_warnings():
            warnings.simplefilter("always", AllotmentWarning)
            warnings.showwarning = show
            yield

    def fail(self, error: AllotmentError) -> None:
        self.errors.append(error)

    def locate(self, error: AllotmentError) -> AllotmentError:
        """``error`` naming the file of the step it names, where it names no file yet (an error a
        face raised while building a workflow)."""
        text = str(error)
        if error.step is None or not self.paths or any(text.startswith(f"{p}") for p in self.paths):
            return error
        from .discover import in_file, iter_steps, python_files

        try:
            files = sorted({step.file.as_posix() for step in iter_steps(self.paths, []) if step.name == error.step})
        except AllotmentError:
            files = []
        if not files:  # the step cannot be found again (its file failed to load): with one file, that is the one
            listed = python_files(self.paths)
            files = [listed[0].as_posix()] if len(listed) == 1 else []
        if len(files) != 1:
            return error
        return in_file(error, files[0])

    def finish(self) -> int:
        for text in self.warned:
            if text not in self.shown_notes:  # explain's table shows its steps' warnings already
                print(f"allotment: warning: {text}", file=sys.stderr)
        errors = [*(self.tally.errors if self.tally is not None else []), *self.errors]
        debug = debugging()
        for error in errors:
            if debug:
                _print_traceback(error)
            print(f"allotment: error: {error}", file=sys.stderr)
        print(f"allotment: {self.summary(len(errors))}", file=sys.stderr)
        return 1 if errors or self.nothing or self.run_status else 0

    def summary(self, errors: int) -> str:
        """``explain: 3 steps (1 local, 1 kubernetes, 1 batch) in 1 file, 0 errors``."""
        what = self.args.command if self.args.command in ("explain", "run") else f"render --target {self.args.target}"
        parts: list[str] = []
        if self.documents is not None:
            parts.append(_plural(self.documents, "document"))
        counted = self.tally
        target = getattr(self.args, "target", None)
        if counted is not None and (counted.steps or self.args.command == "explain" or target in ("kubernetes", "batch")):
            by_backend = [f"{counted.resolved.count(b)} {b}" for b in dict.fromkeys(counted.resolved)]
            by_backend += [f"{counted.skipped.count(b)} {b}, not rendered" for b in dict.fromkeys(counted.skipped)]
            parts.append(_plural(len(counted.steps), "step") + (f" ({'; '.join(by_backend)})" if by_backend else ""))
        if self.files is not None:
            files = _plural(self.files, "file")
            parts = [*parts[:-1], f"{parts[-1]} in {files}"] if parts else [files]
        tail = _plural(errors, "error")
        if self.warned:
            tail += f", {_plural(len(self.warned), 'warning')}"
        return f"{what}: {', '.join([*parts, tail])}"

    # -- the commands -------------------------------------------------------------------------

    def execute(self) -> None:
        from .discover import python_files
        from .render import tally
        from .settings import load_settings, using_settings

        args = self.args
        settings = load_settings(
            cli={"with": args.with_, "set": args.set_, "backend": args.backend, "policy": args.policy, "profile": args.profile}
        )
        if self.paths:
            self.files = len(python_files(self.paths))
        # In force while user files are imported too: a face that resolves a step as its file loads
        # (an Airflow operator does) uses the CLI's settings.
        with using_settings(settings), tally() as counted:
            self.tally = counted
            if args.command == "explain":
                self.explain(settings, counted)
            elif args.command == "run":
                from .run import run_command

                self.run_status = run_command(self.paths, settings, steps=args.steps, report=args.report, retries=args.retries)
            else:
                self.render(settings, counted)

    def explain(self, settings: Settings, counted: Tally) -> None:
        from .discover import in_file, iter_steps
        from .explain import explain, format_table, with_submitted
        from .output import dump
        from .withspec import check_steps

        conf = _json_option("--conf", self.args.conf)
        steps = list(iter_steps(self.paths, counted.errors))
        counted.steps += steps
        if not steps:
            self.nothing_found()
            return
        check_steps([*settings.withs, *settings.sets], [s.name for s in steps])
        submitted = self.submitted(steps, settings) if self.args.parameter else {}
        self.say_pinned(settings, steps)
        items: list[Explained] = []
        for index, step in enumerate(steps):
            try:
                engine = step.settings_for(settings)
                resolved = resolve_step(step, engine, conf=conf)
                if index in submitted:
                    resolved = with_submitted(resolved, submitted[index], engine.policy)
                pinned = step.spec.backend if step.spec else None
                items.append(
                    explain(
                        resolved,
                        engine.profile,
                        file=step.file.as_posix(),
                        pinned_by=f"@{pinned}" if pinned else None,
                        policy=engine.policy,
                    )
                )
                counted.resolved.append(resolved.backend)
            except AllotmentError as e:
                counted.errors.append(in_file(e, step.file))
        self.shown_notes = {note.removeprefix("warning: ") for item in items for note in item.notes}
        sys.stdout.write(format_table(items) if self.args.output == "table" else dump([i.as_dict() for i in items], "json"))

    def render(self, settings: Settings, counted: Tally) -> None:
        from .faces import load_target
        from .output import dump

        args = self.args
        renderer = load_target(args.target)
        documents = renderer(self.paths, settings, {"namespace": args.namespace, "platform": args.platform})
        self.documents = len(documents)
        if args.target == "limitrange":
            from .kubernetes.limitrange import side_effects

            for note in dict.fromkeys(side_effects(document) for document in documents):
                print(f"allotment: note: {note}", file=sys.stderr)
        if not documents and not counted.errors:
            self.nothing_found()
            return
        sys.stdout.write(dump(documents, args.output))

    # -- what was found -----------------------------------------------------------------------

    def nothing_found(self) -> None:
        """Say what the command found, for a command that found nothing to explain or render."""
        from .discover import iter_steps

        self.nothing = True
        counted = self.tally
        assert counted is not None
        where = ", ".join(p.as_posix() for p in self.paths)
        files = self.files or 0
        if files == 0:
            self.fail(AllotmentError(f"no Python files in {where}", accepted=f"{self.args.command} reads .py files, or folders of them"))
            return
        if self.args.command == "explain":
            if counted.errors:
                return  # the files that failed to load are the story
            self.fail(AllotmentError(f"0 steps in {where} ({_plural(files, 'file')})", accepted=f"a step is {_STEP_KINDS}"))
            return
        target = self.args.target
        if not counted.steps:  # a face's target: find the steps only to say what there is
            counted.steps += iter_steps(self.paths, [])
        steps = counted.steps
        if target in ("kubernetes", "batch") and counted.skipped:
            on = sorted(set(counted.skipped))
            found = f"{_plural(len(steps), 'step')} in {where}, none runs on {target} (they run on {', '.join(on)})"
            accepted = ", ".join(f"--target {b}" for b in on if b in TARGET_WORDS) or "choose another target"
            self.fail(AllotmentError(f"nothing to render for --target {target}: {found}", accepted=f"render them with {accepted}"))
            return
        names = ", ".join(s.name for s in steps[:8]) + (", ..." if len(steps) > 8 else "")
        found = f"{_plural(len(steps), 'step')} in {where} ({_plural(files, 'file')})" + (f": {names}" if steps else "")
        others = [t for t in ("kubernetes", "batch") if t != target] if steps else []
        hint = f"; for plain steps use {' or '.join(f'--target {t}' for t in others)}" if others and target in ("argo", "airflow") else ""
        self.fail(
            AllotmentError(
                f"nothing to render for --target {target}: {found}", accepted=f"--target {target} renders {TARGET_WORDS[target]}{hint}"
            )
        )

    def say_pinned(self, settings: Settings, steps: Sequence[Step]) -> None:
        """Once per runtime spec that names a backend: the steps it does not move, pinned elsewhere."""
        for spec in settings.withs:
            if spec.backend is None or spec.step is not None:
                continue
            pinned = [(s.name, s.spec.backend if s.spec and s.spec.backend else s.backend) for s in steps]
            held = [(name, on) for name, on in pinned if on is not None and on != spec.backend]
            if not held:
                continue
            shown = ", ".join(f"{name!r} (pinned to {on})" for name, on in held)
            print(
                f"allotment: note: {spec.origin} {spec.text!r} does not move {shown}: a step pinned to a backend "
                "runs there whatever the deployment chooses",
                file=sys.stderr,
            )

    def submitted(self, steps: Sequence[Step], settings: Settings) -> dict[int, dict[str, tuple[str, str]]]:
        """Step index -> field -> (parameter, value) for ``-p``: each parameter checked against
        the parameters the Argo face declares for these files (``render --target argo``)."""
        from .explain import parameter_fields, parse_parameter

        given = [parse_parameter(text) for text in self.args.parameter]
        argo = [(i, s) for i, s in enumerate(steps) if s.face == "hera"]
        if not argo:
            where = ", ".join(p.as_posix() for p in self.paths)
            raise AllotmentError(
                f"sets an Argo submit parameter, but no Hera template in {where} carries allotment resources",
                source=f"-p {self.args.parameter[0]!r}",
                accepted="give -p with Hera workflow files",
            )
        declared = _declared_parameters(self.paths, settings)
        out: dict[int, dict[str, tuple[str, str]]] = {}
        for name, value in given:
            if name not in declared:
                off = ""
                if settings.policy is not None and not settings.policy.allows_submit_parameters():
                    off = f"; policy {settings.policy.origin} turns them off (runtime.with: false)"
                if not off:
                    off = " (a template with overridable(False) declares none)"
                raise AllotmentError(
                    f"names no parameter the workflows declare{off}",
                    source=f"-p {name}={value}",
                    accepted=f"their resource parameters are {', '.join(sorted(n for n, ours in declared.items() if ours)) or '(none)'}",
                )
            if not declared[name]:
                print(
                    f"allotment: note: -p {name}={value} is a parameter of the workflow, not a resource: it changes nothing here",
                    file=sys.stderr,
                )
                continue
            matched = [(i, field) for template, field in parameter_fields(name) for i, s in argo if _template_name(s) == template]
            if not matched:
                raise AllotmentError(
                    "is declared, but allotment cannot tell which step it sizes (a template named otherwise than its function?)",
                    source=f"-p {name}={value}",
                    accepted=f"steps are {', '.join(sorted({s.name for _, s in argo}))}",
                )
            for index, field in matched:
                out.setdefault(index, {})[field] = (name, value)
        return out


def _template_name(step: Step) -> str:
    """The Argo template of a Hera step: a Container template's own name, or the name Hera gives a
    script's template, its function's name with '_' as '-' (``hera.workflows.script``)."""
    name = getattr(step.obj, "name", None)
    return name if isinstance(name, str) else step.name.replace("_", "-")


def _declared_parameters(paths: Sequence[Path], settings: Settings) -> dict[str, bool]:
    """Parameter name -> whether it is one of allotment's, for the workflows under ``paths`` as the
    Argo face renders them (so a template with ``overridable(False)`` declares none)."""
    from .faces import load_target

    declared: dict[str, bool] = {}
    for document in load_target("argo")(paths, settings, {}):
        spec = document.get("spec") or {}
        arguments = spec.get("arguments") or (spec.get("workflowSpec") or {}).get("arguments") or {}
        for parameter in arguments.get("parameters") or []:
            description = str(parameter.get("description") or "")
            declared[str(parameter.get("name"))] = description.startswith("allotment:")
    return declared


def _json_option(option: str, text: str | None) -> object:
    """A JSON option's value (None when not given)."""
    if text is None:
        return None
    import json

    try:
        return json.loads(text)
    except ValueError as e:
        raise AllotmentError(
            f"is not JSON ({e})", field=option, value=text, accepted='write e.g. \'{"allotment": {"with": "memory=64Gi"}}\''
        ) from None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
