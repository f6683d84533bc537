"""``allotment run FILE``: the Hera workflows of a file, run on this machine (docs/run.md).

The Argo face's runner (:data:`allotment.faces.RUNNERS` ``hera``). For every ``Workflow``,
``WorkflowTemplate``, ``CronWorkflow`` and ``ClusterWorkflowTemplate`` among the file's globals (in
definition order) it builds the manifest Argo would get (without allotment's Kubernetes fields,
which play no part here) and interprets it the way Argo's controller does, from the entrypoint:

* a ``dag`` template runs its tasks in dependency order (``dependencies``, or ``depends`` made of
  task names, ``&&`` and ``.Succeeded``); a task waits for every task it depends on, ties go in
  the order the DAG lists them; a ``steps`` template runs its groups in order, and the steps of a
  group one after the other (Argo runs them side by side; later groups see the outputs of earlier
  ones only, as in Argo);
* ``withItems`` and ``withParam`` fan a task out into nodes named ``task(0:item)`` as Argo names
  them; ``{{item}}`` and ``{{item.key}}`` are replaced;
* a ``script`` template runs through the local executor (:class:`allotment.facade.LocalRun`) under
  the spec its Hera template carries (``@resources`` on the source function, ``attach``), with the
  workflow's ``defaults(...)``: its ``source`` with ``{{inputs.parameters.*}}``,
  ``{{workflow.parameters.*}}``, ``{{workflow.name}}`` and ``{{workflow.namespace}}`` replaced,
  written to a file and run by its ``command`` (``python``: this interpreter); literal ``env``
  values are set; its ``retryStrategy.limit`` (or, with ``retry_memory_factor`` and no strategy,
  the one the Argo face adds) gives the retries, memory growing only after an OOM kill;
* its outputs pass on as Argo passes them: ``{{tasks.NAME.outputs.result}}`` (or ``steps.``) is
  the script's stdout with one trailing newline removed (its last 256 KiB), and
  ``{{tasks.NAME.outputs.parameters.P}}`` the file ``valueFrom.path`` names, written by this
  try (else ``valueFrom.default``, else the step fails as the node would); of a fanned-out task,
  the JSON lists Argo aggregates;
* a ``container`` template (and any other kind: resource, suspend, http...) is skipped with a
  note: it needs its image. A step that reads the outputs of a skipped one fails with a message.

Refused before anything runs (an error naming the template and what is not covered): ``when``,
``depends`` with ``||``, ``!`` or results other than ``Succeeded``, ``continueOn``,
``templateRef``, ``withSequence``, input artifacts, ``{{=...}}`` expressions and other variables,
script ``args`` (Hera's runner scripts), ``env`` from secrets. Not run, with a note: ``onExit``
handlers and lifecycle hooks. Not applied: the image, volumes, ``workingDir``, timeouts and
output artifacts.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from allotment.facade import AllotmentError, LocalRun, Resources, Source, StepRun, StepSpec
from hera.shared import global_config
from hera.workflows import Workflow

from .hooks import plan_sources
from .options import template_spec
from .render import find_workflows
from .retry import DEFAULT_RETRY

__all__ = ["WorkflowPlan", "plan_file"]

_TAG: Final = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_DEPENDS_WORD: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_RESULT_LIMIT: Final = 256 * 1024
_RUNNER_MODULE: Final = "hera.workflows.runner"
_WHY: Final = "\0why:"
"""Scope keys that say why a variable has no value (a skipped node, an aggregation Argo would refuse)."""


class _Stop(Exception):
    """A step failed: the run stops (fail-fast, as a DAG does by default)."""


@contextlib.contextmanager
def _without_allotment_hooks() -> Iterator[None]:
    """Build without allotment's pre-build hooks (they add the Kubernetes fields, and resolve for
    Kubernetes, neither of which a local run needs); a user's own hooks still run."""
    saved = global_config._pre_build_hooks
    if saved:
        global_config._pre_build_hooks = {
            cls: [h for h in hooks if not getattr(h, "__allotment_hook__", False)] for cls, hooks in saved.items()
        }
    try:
        yield
    finally:
        global_config._pre_build_hooks = saved


def _manifest(workflow: Workflow) -> dict[str, Any]:
    with _without_allotment_hooks():
        built = workflow.build()
    data: dict[str, Any] = built.model_dump(by_alias=True, exclude_none=True, mode="json")
    return data


def _text(value: Any) -> str:
    """A parameter value as Argo holds it: a string (JSON for lists and maps)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


@dataclass
class _Outputs:
    """What a node gives the nodes after it (None: it gave nothing, e.g. a skipped container)."""

    result: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    """Why the node did not run here (a container template...), else None."""


@dataclass(frozen=True)
class _Template:
    """One template of the manifest, with the Hera object (for its spec) where there is one."""

    name: str
    data: Mapping[str, Any]
    spec: StepSpec | None

    @property
    def kind(self) -> str:
        for kind in ("dag", "steps", "script", "container", "containerSet", "resource", "suspend", "http", "data", "plugin"):
            if kind in self.data:
                return kind
        return "unknown"


def _depends_on(task: Mapping[str, Any], where: str) -> list[str]:
    """The task names a DAG task waits for: ``dependencies``, or a ``depends`` of names, ``&&`` and ``.Succeeded``."""
    if "depends" in task and "dependencies" in task:
        raise AllotmentError(f"{where} has both depends and dependencies", accepted="Argo refuses that too: use one")
    if "dependencies" in task:
        return list(task["dependencies"] or [])
    expression = str(task.get("depends") or "").strip()
    if not expression:
        return []
    names: list[str] = []
    for part in re.split(r"\s*&&\s*", expression):
        part = part.strip().removeprefix("(").removesuffix(")").strip()
        if not _DEPENDS_WORD.fullmatch(part):
            raise AllotmentError(
                f"{where}: depends {expression!r} is not covered by allotment run",
                accepted="allotment run takes task names joined by && (with .Succeeded); "
                "it runs no branch that || or ! or a failure would choose",
            )
        name, dot, outcome = part.partition(".")
        if dot and outcome != "Succeeded":
            raise AllotmentError(
                f"{where}: depends {expression!r} waits for {part!r}, which allotment run does not cover",
                accepted="allotment run stops at the first failure, so only .Succeeded (or a plain task name) is meaningful here",
            )
        names.append(name)
    return names


def _order(tasks: Sequence[Mapping[str, Any]], where: str) -> list[Mapping[str, Any]]:
    """The tasks in dependency order; among ready ones, the order the DAG lists them."""
    by_name = {str(t["name"]): t for t in tasks}
    needs = {name: _depends_on(t, f"{where} task {name!r}") for name, t in by_name.items()}
    for name, deps in needs.items():
        for dep in deps:
            if dep not in by_name:
                raise AllotmentError(
                    f"{where} task {name!r} depends on {dep!r}, which is no task of that DAG", accepted=f"tasks are {', '.join(by_name)}"
                )
    done: set[str] = set()
    ordered: list[Mapping[str, Any]] = []
    while len(ordered) < len(by_name):
        ready = [name for name in by_name if name not in done and all(d in done for d in needs[name])]
        if not ready:
            cycle = sorted(set(by_name) - done)
            raise AllotmentError(f"{where} has a dependency cycle among {', '.join(cycle)}", accepted="Argo refuses cycles too")
        done.add(ready[0])
        ordered.append(by_name[ready[0]])
    return ordered


class _Interpreter:
    """Runs one workflow's manifest from its entrypoint (see the module docs)."""

    def __init__(self, workflow: Workflow, manifest: Mapping[str, Any], file: Path) -> None:
        self.file = file
        self.kind = str(manifest.get("kind") or type(workflow).__name__)
        spec = manifest.get("spec") or {}
        if self.kind == "CronWorkflow":
            spec = spec.get("workflowSpec") or {}
        self.spec: Mapping[str, Any] = spec
        metadata = manifest.get("metadata") or {}
        self.name = str(metadata.get("name") or (str(metadata.get("generateName") or "workflow-") + "local"))
        self.label = f"{self.kind} {metadata.get('name') or metadata.get('generateName') or ''}".strip()
        self.namespace = str(metadata.get("namespace") or "default")
        hera = {str(t.name): t for t in workflow.templates or [] if getattr(t, "name", None)}
        self.templates = {
            str(t["name"]): _Template(str(t["name"]), t, template_spec(hera[t["name"]]) if t["name"] in hera else None)
            for t in spec.get("templates") or []
        }
        self.defaults: tuple[tuple[Resources, Source], ...] = tuple(plan_sources(workflow))
        self.globals: dict[str, str] = {"workflow.name": self.name, "workflow.namespace": self.namespace}
        for p in (spec.get("arguments") or {}).get("parameters") or []:
            value = p.get("value", p.get("default"))
            if value is not None:
                self.globals[f"workflow.parameters.{p['name']}"] = _text(value)
        self.entrypoint = str(spec.get("entrypoint") or "")
        self.run: LocalRun | None = None

    # --- checking, before anything runs ---------------------------------------------------------

    def template(self, name: str, where: str) -> _Template:
        if name not in self.templates:
            raise AllotmentError(
                f"{where} names template {name!r}, which {self.label} does not define",
                accepted=f"templates are {', '.join(self.templates)}",
            )
        return self.templates[name]

    def check(self) -> None:
        """Refuse what allotment run does not cover, before any step runs (module docs)."""
        if not self.entrypoint:
            raise AllotmentError(f"{self.label} in {self.file.as_posix()} has no entrypoint", accepted="set entrypoint= on the workflow")
        seen: set[str] = set()
        self._check(self.template(self.entrypoint, f"{self.label}'s entrypoint"), seen)

    def _check(self, template: _Template, seen: set[str]) -> None:
        if template.name in seen:
            return
        seen.add(template.name)
        where = f"{self.label} template {template.name!r}"
        if (template.data.get("inputs") or {}).get("artifacts"):
            raise AllotmentError(
                f"{where} takes input artifacts, which allotment run does not pass", accepted="pass parameters, or run the workflow on Argo"
            )
        for child, child_where in self._children(template, where):
            for key in ("when", "continueOn", "withSequence", "templateRef", "inline"):
                if key in child:
                    raise AllotmentError(
                        f"{child_where} uses {key}, which allotment run does not cover", accepted="see docs/run.md for what it covers"
                    )
            self._check(self.template(str(child.get("template")), child_where), seen)
        if template.kind == "dag":
            _order(template.data["dag"].get("tasks") or [], where)
        if template.kind == "script":
            script = template.data["script"]
            args = [str(a) for a in script.get("args") or []]
            if args:
                runner = " (a Hera runner script, constructor='runner')" if _RUNNER_MODULE in args else ""
                raise AllotmentError(
                    f"{where} has script args{runner}, which allotment run does not cover",
                    accepted="use Hera's default inline scripts, whose source holds the function body",
                )
            for variable in script.get("env") or []:
                if "valueFrom" in variable:
                    raise AllotmentError(
                        f"{where} takes env {variable.get('name')!r} from a secret or config map, which allotment run does not read",
                        accepted="give it a literal value, or run the workflow on Argo",
                    )

    def _children(self, template: _Template, where: str) -> list[tuple[Mapping[str, Any], str]]:
        if template.kind == "dag":
            return [(t, f"{where} task {t.get('name')!r}") for t in template.data["dag"].get("tasks") or []]
        if template.kind == "steps":
            return [(s, f"{where} step {s.get('name')!r}") for group in template.data.get("steps") or [] for s in group]
        return []

    def names(self) -> set[str]:
        """Every task, step, template and step-spec name reachable from the entrypoint."""
        found: set[str] = set()
        stack = [self.entrypoint] if self.entrypoint in self.templates else []
        seen: set[str] = set()
        while stack:
            template = self.templates.get(stack.pop())
            if template is None or template.name in seen:
                continue
            seen.add(template.name)
            found.add(template.name)
            if template.spec is not None:
                found.add(template.spec.name)
            for child, _ in self._children(template, ""):
                found.add(str(child.get("name")))
                stack.append(str(child.get("template")))
        return found

    def matches(self, template_name: str, wanted: set[str], seen: frozenset[str] = frozenset()) -> bool:
        """True when ``template_name`` or anything it runs is named by ``wanted``."""
        template = self.templates.get(template_name)
        if template is None or template_name in seen:
            return False
        if template_name in wanted or (template.spec is not None and template.spec.name in wanted):
            return True
        return any(
            str(c.get("name")) in wanted or self.matches(str(c.get("template")), wanted, seen | {template_name})
            for c, _ in self._children(template, "")
        )

    # --- running -------------------------------------------------------------------------------

    def substitute(self, text: str, scope: Mapping[str, str], where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("="):
                raise AllotmentError(
                    f"{where} has the expression {match.group(0)!r}, which allotment run does not evaluate",
                    accepted="use plain {{...}} variables",
                )
            if key in scope:
                return scope[key]
            why = scope.get(_WHY + key) or (scope.get(_WHY + key.split(".outputs.", 1)[0]) if ".outputs." in key else None)
            if why is not None:
                raise AllotmentError(f"{where} reads {match.group(0)}, which has no value here: {why}", accepted="run the workflow on Argo")
            raise AllotmentError(
                f"{where} reads {match.group(0)}, which allotment run cannot resolve",
                accepted="it knows inputs.parameters, workflow.parameters, workflow.name, workflow.namespace, "
                "tasks.<task>.outputs (steps.<step>.outputs), item and item.<key>",
            )

        return _TAG.sub(replace, text)

    def inputs(self, template: _Template, arguments: Mapping[str, str], where: str) -> dict[str, str]:
        """The template's input parameters: the task's argument, else the template's value or default."""
        values: dict[str, str] = {}
        for p in (template.data.get("inputs") or {}).get("parameters") or []:
            name = str(p["name"])
            if name in arguments:
                values[name] = arguments[name]
            elif p.get("value") is not None:
                values[name] = _text(p["value"])
            elif p.get("default") is not None:
                values[name] = _text(p["default"])
            else:
                raise AllotmentError(
                    f"{where}: input parameter {name!r} of template {template.name!r} gets no value",
                    accepted="pass it in the task's arguments, or give it a default",
                )
        return values

    def execute(self, run: LocalRun, wanted: set[str]) -> None:
        self.run = run
        run.note(f"{self.label} ({self.file.as_posix()}), entrypoint {self.entrypoint!r}")
        for handler, what in ((self.spec.get("onExit"), "onExit handler"), (self.spec.get("hooks"), "lifecycle hooks")):
            if handler:
                run.note(f"{self.label}: its {what} ({handler if isinstance(handler, str) else ', '.join(handler)}) does not run here")
        self.run_template(self.template(self.entrypoint, "the entrypoint"), {}, "", wanted)

    def run_template(self, template: _Template, arguments: Mapping[str, str], node: str, wanted: set[str]) -> _Outputs:
        where = f"{self.label} template {template.name!r}"
        scope = {**self.globals, **{f"inputs.parameters.{k}": v for k, v in self.inputs(template, arguments, node or where).items()}}
        if template.kind == "dag":
            return self.run_dag(template, scope, node, wanted)
        if template.kind == "steps":
            return self.run_steps(template, scope, node, wanted)
        label = node or template.name
        if template.kind == "script":
            return self.run_script(template, scope, label)
        why = f"{template.kind} template {template.name!r}: it needs its image"
        assert self.run is not None
        self.run.note(f"{label}: skipped, a {why}; allotment run runs script templates only")
        return _Outputs(skipped=why)

    def run_script(self, template: _Template, scope: Mapping[str, str], label: str) -> _Outputs:
        assert self.run is not None
        script = template.data["script"]
        where = f"{label} (template {template.name!r})"
        source = self.substitute(str(script.get("source") or ""), scope, where)
        env = {str(v["name"]): self.substitute(_text(v.get("value", "")), scope, where) for v in script.get("env") or []}
        retry = template.data.get("retryStrategy")
        if retry is None and template.spec is not None:
            factor = self.run.resolve(template.spec.name, template.spec, defaults=self.defaults).value("retry_memory_factor")
            retry = DEFAULT_RETRY if factor and factor != 1 else None
        retries = 0
        if retry is not None:
            policy = str(retry.get("retryPolicy") or "OnFailure")
            retries = int(retry.get("limit") or 0) if policy in ("OnFailure", "Always") else 0
            if policy not in ("OnFailure", "Always") and retry.get("limit"):
                self.run.note(f"{label}: retryPolicy {policy} retries Argo's own errors; a failure here is not retried")
        step = self.run.run_script(
            label,
            template.spec,
            source,
            [str(c) for c in script.get("command") or ["python"]],
            name=template.spec.name if template.spec is not None else None,
            defaults=self.defaults,
            retries=retries,
            env=env,
        )
        if not step.ok:
            raise _Stop(label)
        return self.outputs(template, step, label)

    def outputs(self, template: _Template, step: StepRun, label: str) -> _Outputs:
        assert self.run is not None
        result = step.stdout[:-1] if step.stdout.endswith("\n") else step.stdout
        parameters: dict[str, str] = {}
        for p in (template.data.get("outputs") or {}).get("parameters") or []:
            source = p.get("valueFrom") or {}
            name = str(p["name"])
            path = source.get("path")
            if path is None:
                if p.get("value") is not None:
                    parameters[name] = _text(p["value"])
                    continue
                raise AllotmentError(
                    f"{label}: output parameter {name!r} of template {template.name!r} "
                    f"takes its value from {', '.join(source) or 'nowhere'}",
                    accepted="allotment run reads output parameters from valueFrom.path",
                )
            file = Path(str(path))
            try:
                fresh = file.stat().st_mtime >= step.started
                text = file.read_text(encoding="utf-8", errors="replace") if fresh else None
            except OSError:
                text = None
            if text is None:
                if source.get("default") is not None:
                    parameters[name] = _text(source["default"])
                    continue
                self.run.failed.append(label)
                raise AllotmentError(
                    f"output parameter {name!r} reads {path}, which the script did not write (Argo fails the node the same way)",
                    step=label,
                    accepted="write the file in the script, or give the output valueFrom.default",
                )
            parameters[name] = text
        if template.data.get("outputs", {}).get("artifacts"):
            self.run.note(f"{label}: output artifacts are not kept by allotment run")
        return _Outputs(result=result, parameters=parameters)

    def _scope_outputs(self, scope: dict[str, str], prefix: str, nodes: Sequence[_Outputs], fanned: bool, where: str) -> None:
        """Add the outputs of one task (its nodes, several when fanned out) to ``scope`` as ``prefix.outputs...``."""
        skipped = next((n.skipped for n in nodes if n.skipped), None)
        if skipped is not None:
            scope[_WHY + prefix] = f"that node did not run ({skipped})"
            return
        if not fanned:
            node = nodes[0]
            if node.result is not None:
                scope[f"{prefix}.outputs.result"] = node.result
            for k, v in node.parameters.items():
                scope[f"{prefix}.outputs.parameters.{k}"] = v
            return
        results: list[Any] | None = []
        for n in nodes:
            if n.result is None:
                continue
            try:
                results.append(json.loads(n.result))  # type: ignore[union-attr]
            except ValueError:
                results = None
                break
        if results is not None:
            scope[f"{prefix}.outputs.result"] = json.dumps(results, separators=(",", ":"))
        else:
            scope[_WHY + f"{prefix}.outputs.result"] = (
                "its nodes' results are not all JSON, and Argo aggregates the results of a fanned-out task as a JSON list "
                "(it fails the workflow the same way)"
            )
        scope[f"{prefix}.outputs.parameters"] = json.dumps([n.parameters for n in nodes if n.parameters], separators=(",", ":"))
        for name in dict.fromkeys(k for n in nodes for k in n.parameters):
            values = [n.parameters[name] for n in nodes if name in n.parameters]
            parsed: list[Any] = []
            for value in values:
                try:
                    item = json.loads(value)
                except ValueError:
                    parsed = []
                    break
                if not isinstance(item, dict | list):
                    parsed = []
                    break
                parsed.append(item)
            scope[f"{prefix}.outputs.parameters.{name}"] = json.dumps(parsed if parsed else values, separators=(",", ":"))

    def items(self, child: Mapping[str, Any], scope: Mapping[str, str], where: str) -> list[Any] | None:
        """The items a task fans out over (None: it does not fan out)."""
        if "withItems" in child:
            return list(child["withItems"] or [])
        if "withParam" in child:
            text = self.substitute(_text(child["withParam"]), scope, where)
            try:
                items = json.loads(text)
            except ValueError:
                items = None
            if not isinstance(items, list):
                raise AllotmentError(f"{where}: withParam is not a JSON list ({text[:80]!r})", accepted="give withParam a JSON list")
            return items
        return None

    def run_child(
        self, child: Mapping[str, Any], scope: Mapping[str, str], node: str, wanted: set[str], where: str
    ) -> tuple[list[_Outputs], bool]:
        """Run one DAG task or step (all its nodes, when it fans out); returns their outputs and whether it fanned out."""
        name = str(child["name"])
        template = self.template(str(child.get("template")), where)
        items = self.items(child, scope, where)
        runs: list[tuple[str, dict[str, str]]] = []
        for index, item in enumerate(items if items is not None else [None]):
            local = dict(scope)
            label = f"{node}.{name}" if node else name
            if items is not None:
                local["item"] = _text(item)
                shown = item
                if isinstance(item, dict):
                    for k, v in item.items():
                        local[f"item.{k}"] = _text(v)
                    shown = ",".join(sorted(f"{k}:{_text(v)}" for k, v in item.items()))
                label = f"{label}({index}:{_text(shown).replace('(', '').replace(')', '')})"
            arguments = {
                str(p["name"]): self.substitute(_text(p.get("value", "")), local, f"{label} argument {p['name']!r}")
                for p in (child.get("arguments") or {}).get("parameters") or []
            }
            runs.append((label, arguments))
        full = not wanted or name in wanted or template.name in wanted or (template.spec is not None and template.spec.name in wanted)
        return [self.run_template(template, arguments, label, set() if full else wanted) for label, arguments in runs], items is not None

    def hit(self, child: Mapping[str, Any], wanted: set[str]) -> bool:
        """True when ``--step`` names the task or step ``child`` or anything it runs."""
        return str(child["name"]) in wanted or self.matches(str(child.get("template")), wanted)

    def run_dag(self, template: _Template, scope: Mapping[str, str], node: str, wanted: set[str]) -> _Outputs:
        where = f"{self.label} template {template.name!r}"
        tasks = _order(template.data["dag"].get("tasks") or [], where)
        chosen = {str(t["name"]) for t in tasks}
        if wanted:  # the tasks --step names (or that run what it names), and every task they wait for
            needs = {str(t["name"]): _depends_on(t, where) for t in tasks}
            todo = [str(t["name"]) for t in tasks if self.hit(t, wanted)]
            chosen = set()
            while todo:
                name = todo.pop()
                if name not in chosen:
                    chosen.add(name)
                    todo += needs[name]
        local = dict(scope)
        for task in tasks:
            name = str(task["name"])
            if name in chosen:
                sub = wanted if wanted and self.hit(task, wanted) else set()
                nodes, fanned = self.run_child(task, local, node, sub, f"{where} task {name!r}")
                self._scope_outputs(local, f"tasks.{name}", nodes, fanned, where)
        return self.template_outputs(template, local, node or template.name)

    def run_steps(self, template: _Template, scope: Mapping[str, str], node: str, wanted: set[str]) -> _Outputs:
        where = f"{self.label} template {template.name!r}"
        groups = [list(group) for group in template.data.get("steps") or []]
        last = len(groups) - 1
        if wanted:  # every group before the last one --step names runs whole; of that one, the named steps
            last = max((i for i, group in enumerate(groups) if any(self.hit(s, wanted) for s in group)), default=-1)
        local = dict(scope)
        for index, group in enumerate(groups[: last + 1]):
            found: dict[str, str] = {}
            for step in group:
                name = str(step["name"])
                hit = bool(wanted) and self.hit(step, wanted)
                if wanted and index == last and not hit:
                    continue
                nodes, fanned = self.run_child(step, local, node, wanted if hit else set(), f"{where} step {name!r}")
                self._scope_outputs(found, f"steps.{name}", nodes, fanned, where)
            local.update(found)
        return self.template_outputs(template, local, node or template.name)

    def template_outputs(self, template: _Template, scope: Mapping[str, str], label: str) -> _Outputs:
        """A DAG or Steps template's own output parameters (``valueFrom.parameter``)."""
        parameters: dict[str, str] = {}
        for p in (template.data.get("outputs") or {}).get("parameters") or []:
            source = p.get("valueFrom") or {}
            if "parameter" not in source:
                raise AllotmentError(
                    f"{label}: output parameter {p['name']!r} of template {template.name!r} is not valueFrom.parameter",
                    accepted="see docs/run.md",
                )
            parameters[str(p["name"])] = self.substitute(str(source["parameter"]), scope, f"{label} output {p['name']!r}")
        return _Outputs(parameters=parameters)


@dataclass
class WorkflowPlan:
    """The workflows of one file, checked, ready to run (:class:`allotment.run.Plan`)."""

    file: Path
    workflows: list[_Interpreter]

    @property
    def names(self) -> list[str]:
        """Every name ``--step`` may give: task, step, template and step-spec names."""
        return sorted({n for w in self.workflows for n in w.names()})

    def run(self, run: LocalRun, steps: Sequence[str]) -> None:
        """Run each workflow (only what ``steps`` need, when given); stop at the first failure."""
        wanted = set(steps)
        for workflow in self.workflows:
            if wanted and not workflow.matches(workflow.entrypoint, wanted):
                continue
            try:
                workflow.execute(run, wanted)
            except _Stop:
                return


def plan_file(module: ModuleType, file: Path) -> WorkflowPlan | None:
    """The plan for the workflows among ``module``'s globals (None: it defines none); what allotment
    run does not cover is refused here, before any step runs."""
    workflows = find_workflows(module)
    if not workflows:
        return None
    interpreters = [_Interpreter(w, _manifest(w), file) for w in workflows]
    for interpreter in interpreters:
        interpreter.check()
    return WorkflowPlan(file, interpreters)
