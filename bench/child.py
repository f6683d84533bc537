"""One measurement in a fresh interpreter: ``python bench/child.py KIND JSON-ARGS``.

The harness (:mod:`bench.harness`) starts this once per sample, so every sample pays its own
imports, as a fresh Airflow parse process or a fresh ``allotment render`` does. It prints one
JSON line: ``seconds`` (wall time of the measured part, perf_counter), ``cpu`` (its CPU time,
process_time), ``maxrss_kib`` (the
process's peak resident memory after it, KiB), ``maxrss_before_kib`` (before it), and what the
kind checked (``tasks``, ``bytes``, ...). A kind that finds the work did not happen as it should
(an import error in a DAG file, a task missing) exits non-zero: a benchmark of broken work is no
figure.

Kinds:

``code``       ``{"setup": str, "code": str, "freeze": bool}``: run ``setup`` untimed (then
               ``gc.freeze()`` when ``freeze``, as Airflow's DAG processor manager does before
               it forks a parsing process), then time ``code``.
``dagbag``     ``{"folder": str, "tasks": int, "preload": [module, ...]}``: import ``preload``
               (untimed; Airflow itself is always loaded first, as in the DAG processor), call
               ``gc.freeze()`` (as the DAG processor manager does before it forks), then
               time ``DagBag(dag_folder=folder)`` (Airflow 3.3 has no ``include_examples``; the harness
               sets ``AIRFLOW__CORE__LOAD_EXAMPLES=False``); it must hold one DAG
               of ``tasks`` tasks and no import error.
``hera``       ``{"file": str, "preload": [module, ...], "install": bool}``: import ``preload`` (and
               call ``allotment.argo.install()`` when ``install``), untimed; then time importing
               ``file`` (building its ``workflow``) plus ``workflow.to_yaml()``.
``resolve``    ``{"count": int}``: time ``count`` specs decorated, resolved for Kubernetes and
               compiled to Kubernetes fields (:func:`bench.workloads.spec` input dicts).
``pydantic``   ``{"count": int}``: time a pydantic model validating the same ``count`` input dicts.
``emit``       ``{"file": str, "native": bool}``: time :func:`allotment.output.dump` of the JSON
               documents in ``file`` with libyaml's emitter (``native``) or the pure-Python one.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

PROFILER: Any = None
"""A pyinstrument profiler that :class:`Timed` starts and stops around the measured part
(:mod:`bench.profiling` sets it); None when only timing."""


class Timed:
    """Times the block (perf_counter) and records the peak RSS before it; profiles it too when
    :data:`PROFILER` is set."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu = 0.0
        self.before = 0
        self.after = 0

    def __enter__(self) -> Timed:
        self.before = _maxrss_kib()
        if PROFILER is not None:
            PROFILER.start()
        self._start = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu = time.process_time() - self._cpu
        self.after = _maxrss_kib()
        if PROFILER is not None:
            PROFILER.stop()


def _maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _pin_one_core() -> None:
    """Run on one core (the first one this process may use), so a throughput is one core's."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _inputs(count: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(HERE))
    from workloads import spec

    return [dict(spec(i).allotment_fields()) for i in range(count)]


def measure(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement of ``kind`` (see the module docs) and return its record."""
    out: dict[str, Any] = {}
    timed = Timed()
    if kind == "code":
        exec(compile(args.get("setup", ""), "<setup>", "exec"), {})
        if args.get("freeze"):
            gc.freeze()
        code = compile(args["code"], "<measured>", "exec")
        with timed:
            exec(code, {})
    elif kind == "dagbag":
        try:
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:  # Airflow before 3.1
            from airflow.models.dagbag import DagBag
        for module in args.get("preload", []):
            importlib.import_module(module)
        # Airflow's DAG processor manager calls gc.freeze() before it forks the processes that parse
        # files, so what it loaded is never traversed by the collector while a file parses.
        gc.freeze()
        with timed:
            bag = DagBag(dag_folder=args["folder"])  # examples off: AIRFLOW__CORE__LOAD_EXAMPLES=False (the harness sets it)
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        tasks = sum(len(d.tasks) for d in bag.dags.values())
        if len(bag.dags) != 1 or tasks != args["tasks"]:
            raise SystemExit(f"expected 1 DAG of {args['tasks']} tasks, got {len(bag.dags)} DAGs of {tasks} tasks")
        out["tasks"] = tasks
        if args.get("pods"):
            out["pods"] = _pods(bag)
    elif kind == "hera":
        for module in args.get("preload", []):
            importlib.import_module(module)
        if args.get("install"):
            importlib.import_module("allotment.argo").install()
        file = Path(args["file"])
        sys.path.insert(0, str(file.parent))
        with timed:
            workflow = importlib.import_module(file.stem).workflow
            text = workflow.to_yaml()
        out["bytes"] = len(text)
        out["templates"] = len(workflow.templates or [])
        if args.get("canonical"):
            out["templates_k8s"] = _template_fields(workflow)
    elif kind in ("resolve", "pydantic"):
        _pin_one_core()
        inputs = _inputs(args["count"])
        if kind == "resolve":
            from allotment import resources
            from allotment.decorators import spec_of
            from allotment.settings import load_settings

            compile_parts = _kubernetes_compiler()
            settings = load_settings(cli={}, env={})
            functions = []
            for i in range(len(inputs)):

                def step() -> None: ...

                step.__name__ = f"step_{i}"
                functions.append(step)
            resources(cpu=1)(lambda: None)  # the spec model loads now, untimed
            with timed:
                for fields, function in zip(inputs, functions, strict=True):
                    resolved = settings.resolve(spec_of(resources(**fields)(function)), backend="kubernetes")
                    compile_parts(resolved, settings.profile)
        else:
            from pydantic import BaseModel

            class Request(BaseModel):
                cpu: int | float | str | None = None
                memory: int | str | None = None
                gpu: int | None = None
                gpu_type: str | None = None
                gpu_vendor: str | None = None
                disk: int | str | None = None
                shared_memory: int | str | None = None
                retry_memory_factor: float | None = None

            Request.model_validate({})  # the model's validator is built now, untimed
            with timed:
                for fields in inputs:
                    Request.model_validate(fields)
        out["count"] = len(inputs)
    elif kind == "emit":
        import yaml
        from allotment.output import yaml_dumper

        documents = json.loads(Path(args["file"]).read_text())
        dumper = yaml_dumper(bool(args["native"]))
        with timed:
            text = yaml.dump_all(documents, Dumper=dumper, sort_keys=False, default_flow_style=False, width=120)
        out["bytes"] = len(text)
        out["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    return {"seconds": timed.seconds, "cpu": timed.cpu, "maxrss_kib": timed.after, "maxrss_before_kib": timed.before, **out}


def _pods(bag: Any) -> list[dict[str, Any]]:
    """What each task's pod asks of Kubernetes (after the timing): per task, in task-id order, the
    main container's ``resources`` and ``volumeMounts`` and the pod's ``volumes``, ``tolerations``
    and ``nodeSelector``, as plain data (Airflow's own ``build_pod_request_obj``, dry run)."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    found = []
    for dag in bag.dags.values():
        for task in sorted(dag.tasks, key=lambda t: t.task_id):
            pod = client.sanitize_for_serialization(task.build_pod_request_obj(None, dry_run=True))
            spec = pod.get("spec") or {}
            main = next(c for c in spec.get("containers", []) if c.get("name") == "base")
            found.append(
                {
                    "task": task.task_id,
                    "resources": main.get("resources") or {},
                    "volumeMounts": main.get("volumeMounts") or [],
                    "volumes": spec.get("volumes") or [],
                    "tolerations": spec.get("tolerations") or [],
                    "nodeSelector": spec.get("nodeSelector") or {},
                }
            )
    return found


def _template_fields(workflow: Any) -> list[dict[str, Any]]:
    """Per script template (name order): its ``resources``, ``volumeMounts``, ``volumes`` and
    ``tolerations`` as built (``to_dict()``, so allotment's hook applies)."""
    found = []
    for template in workflow.to_dict()["spec"]["templates"]:
        script = template.get("script")
        if script is None:
            continue
        found.append(
            {
                "template": template["name"],
                "resources": script.get("resources") or {},
                "volumeMounts": script.get("volumeMounts") or [],
                "volumes": template.get("volumes") or [],
                "tolerations": template.get("tolerations") or [],
            }
        )
    return sorted(found, key=lambda t: t["template"])


def _kubernetes_compiler() -> Any:
    """allotment's compiler of a resolved spec to Kubernetes fields (typed parts, as plain data)."""
    from allotment.kubernetes import compile_pod

    return lambda resolved, profile: compile_pod(resolved, profile).to_dict()


def main() -> None:
    kind, raw = sys.argv[1], sys.argv[2]
    record = measure(kind, json.loads(raw))
    sys.stdout.flush()
    print("\n" + json.dumps(record))


if __name__ == "__main__":
    main()
