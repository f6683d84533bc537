"""The ``allotment`` command: ``explain``, ``render`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AllotmentError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["main"]

_DESCRIPTION = """\
allotment: one compute-resource spec for workflow steps, compiled for Kubernetes
(Airflow KubernetesPodOperator, Argo/Hera) and AWS Batch.

Units: cpu in cores (4, 0.5, '500m'); memory, disk and shared_memory in MiB when a plain
number, or a quantity ('16Gi', '16G'); gpu a whole number."""

_WITH_HELP = (
    "runtime floor, repeatable: 'kubernetes:cpu=8,memory=32768', 'batch:gpu=2', 'memory=64Gi' "
    "(every step), 'train:memory=64Gi' or 'train.kubernetes:memory=64Gi' (one step). Combined by "
    "maximum with the step's own values; a lone backend ('kubernetes') only chooses the backend. "
    "Also from env ALLOTMENT_WITH (';'-separated)."
)
_SET_HELP = (
    "explicit override, repeatable, same grammar as --with: replaces the value (may lower it); "
    "allowed without a policy; with one, only where it says runtime.set: true. Also env ALLOTMENT_SET."
)


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain = sub.add_parser(
        "explain",
        help="show each step's final values, their sources and what they become",
        description="Per step: each field's final value, the source it came from (@resources, "
        "@kubernetes, @batch, with, default, set), the values other sources gave, "
        "and what the backend makes of it.",
    )
    _common(explain)
    explain.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format (default table)")
    render = sub.add_parser(
        "render", help="print what each step compiles to", description="Print what each step compiles to for a target, as YAML or JSON."
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
    """Run the CLI; returns the exit status (0 ok, 1 a bad spec or input, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.paths and getattr(args, "target", None) != "limitrange":
        parser.error(f"{args.command}: give at least one PATH (a Python file or a folder)")
    try:
        return _run(args)
    except AllotmentError as e:
        print(f"allotment: error: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from .settings import load_settings, using_settings

    settings = load_settings(
        cli={"with": args.with_, "set": args.set_, "backend": args.backend, "policy": args.policy, "profile": args.profile}
    )
    # In force while user files are imported too: a face that resolves a step as its file loads
    # (an Airflow operator does) uses the CLI's settings.
    with using_settings(settings):
        return _command(args, settings)


def _command(args: argparse.Namespace, settings: Settings) -> int:
    from .discover import iter_steps

    paths = [Path(p) for p in args.paths]
    if args.command == "run":
        from .run import run_command

        return run_command(paths, settings, steps=args.steps, report=args.report, retries=args.retries)
    if args.command == "explain":
        from .explain import explain, format_table
        from .output import dump
        from .withspec import check_steps

        steps = list(iter_steps(paths))
        check_steps([*settings.withs, *settings.sets], [s.name for s in steps])
        items = []
        for step in steps:
            resolved = settings.resolve(step.spec, step=step.name, backend=step.backend, defaults=step.defaults, extra=step.extra)
            pinned = step.spec.backend if step.spec else None
            items.append(explain(resolved, settings.profile, file=step.file.as_posix(), pinned_by=f"@{pinned}" if pinned else None))
        sys.stdout.write(format_table(items) if args.output == "table" else dump([i.as_dict() for i in items], "json"))
        return 0
    from .faces import load_target
    from .output import dump

    renderer = load_target(args.target)
    documents = renderer(paths, settings, {"namespace": args.namespace, "platform": args.platform})
    sys.stdout.write(dump(documents, args.output))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
