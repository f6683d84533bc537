"""Every way a Hera user builds a workflow carries the spec, with ``@resources`` alone (issue 10).

A fresh workflow file (written here, not one of the examples) puts ``@resources`` above and below
Hera's ``@script`` and builds a Workflow, WorkflowTemplate, ClusterWorkflowTemplate and
CronWorkflow, and subclasses of them defined before and after the steps. It never calls
``allotment.argo.install()`` nor allotment's CLI. Run as ``python wf.py`` it writes what
``to_yaml()``, ``to_dict()`` and ``to_file()`` give and calls ``create()``, ``lint()`` and
``create_as_workflow()`` against a stand-in Argo server (:mod:`fake_argo_server`); Hera's own CLI,
``hera generate yaml wf.py``, runs on the same file. Every manifest must equal what ``allotment
render --target argo`` gives for that file and hold the resources, the GPU key, the toleration and
the ``/dev/shm`` volume. Then: a step module decorated before Hera is imported, the Hera behaviour
the mechanism relies on (pinned on the installed release), the guard, and ``install()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import allotment.argo as face
import pytest
import yaml
from allotment import AllotmentError, resources
from allotment.argo.hooks import HOOK_MARK, TEMPLATE_CLASSES, WORKFLOW_CLASSES, workflow_classes
from allotment.argo.render import render
from allotment.settings import load_settings
from allotment.targets import SHM_PATH, SHM_VOLUME, gpu_key
from fake_argo_server import FakeArgoServer
from hera.shared import global_config
from hera.workflows import DAG, Container, Script, Workflow, script

ROOT = Path(__file__).resolve().parents[2]
CLEAN = load_settings(cli={}, env={})
HERA_CLI = Path(sys.executable).parent / "hera"

# The user's file. No `from __future__ import annotations` (Hera reads the step signatures).
WORKFLOW_FILE = '''\
"""A Hera user's workflow file: @resources on @script steps, nothing else from allotment."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hera.workflows import DAG, ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTemplate, WorkflowsService, script

from allotment import resources


@dataclass(kw_only=True)
class EarlyTeam(Workflow):
    """Defined before any step is decorated. (Hera's kind of a subclass is its class name unless set.)"""

    kind: Optional[str] = "Workflow"


@resources(cpu=2, memory="6Gi", gpu=1, shared_memory="1Gi")
@script(image="python:3.12")
def above():
    print("@resources above @script")


@script(image="python:3.12")
@resources(cpu="500m", memory=3072, gpu=2, gpu_vendor="amd", shared_memory=512)
def below():
    print("@resources below @script")


@dataclass(kw_only=True)
class LateTemplate(WorkflowTemplate):
    """Defined after the steps, with defaults of its own."""

    kind: Optional[str] = "WorkflowTemplate"
    namespace: Optional[str] = "team"


class LateCron(CronWorkflow):
    """A plain subclass: Hera makes its kind 'LateCron' (the create() route does not read it)."""


class LateCluster(ClusterWorkflowTemplate):
    pass


class Grandchild(LateTemplate):
    pass


def dag():
    with DAG(name="main"):
        above()
        below()


with Workflow(name="plain", entrypoint="main", namespace="argo") as plain:
    dag()
with WorkflowTemplate(name="template", entrypoint="main", namespace="argo") as template:
    dag()
with ClusterWorkflowTemplate(name="cluster", entrypoint="main") as cluster:
    dag()
with CronWorkflow(name="cron", schedules=["0 2 * * *"], entrypoint="main", namespace="argo") as cron:
    dag()
with EarlyTeam(name="early-team", entrypoint="main", namespace="argo") as early_team:
    dag()
with LateTemplate(name="late-template", entrypoint="main") as late_template:
    dag()
with LateCron(name="late-cron", schedules=["0 3 * * *"], entrypoint="main", namespace="argo") as late_cron:
    dag()
with LateCluster(name="late-cluster", entrypoint="main") as late_cluster:
    dag()
with Grandchild(name="grandchild", entrypoint="main") as grandchild:
    dag()

WORKFLOWS = [plain, template, cluster, cron, early_team, late_template, late_cron, late_cluster, grandchild]

if __name__ == "__main__":
    out = Path(sys.argv[1])
    (out / "to_yaml.yaml").write_text("---\\n".join(w.to_yaml() for w in WORKFLOWS))
    (out / "to_dict.json").write_text(json.dumps([w.to_dict() for w in WORKFLOWS]))
    print(json.dumps([str(w.to_file(out / "files")) for w in WORKFLOWS]))
    if len(sys.argv) > 2:  # the stand-in Argo server
        for w in WORKFLOWS:
            w.workflows_service = WorkflowsService(host=sys.argv[2])
            w.create()
            w.lint()
        template.create_as_workflow()
'''

NAMES = ["plain", "template", "cluster", "cron", "early-team", "late-template", "late-cron", "late-cluster", "grandchild"]
KINDS = {
    "plain": "Workflow",
    "template": "WorkflowTemplate",
    "cluster": "ClusterWorkflowTemplate",
    "cron": "CronWorkflow",
    "early-team": "Workflow",
    "late-template": "WorkflowTemplate",
    "late-cron": "CronWorkflow",
    "late-cluster": "ClusterWorkflowTemplate",
    "grandchild": "WorkflowTemplate",
}
"""The manifest kind each workflow's create() is routed to (Hera's service picks the URL by class)."""

# What each step asks for, in the units docs/design.md §3 writes (whole GiB as Gi, else Mi).
EXPECTED = {
    "above": {"cpu": "2", "memory": "6Gi", "gpu_key": gpu_key("nvidia"), "gpu": "1", "shm": "1Gi"},
    "below": {"cpu": "500m", "memory": "3Gi", "gpu_key": gpu_key("amd"), "gpu": "2", "shm": "512Mi"},
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOTMENT_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done


def _spec(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]
    return spec.get("workflowSpec", spec)


def _template(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in _spec(document)["templates"] if t["name"] == name)


def _assert_carries_the_spec(document: dict[str, Any]) -> None:
    name = document["metadata"].get("name") or document["metadata"]["generateName"]
    parameters = {p["name"] for p in _spec(document).get("arguments", {}).get("parameters", [])}
    for step, want in EXPECTED.items():
        template = _template(document, step)
        resources_ = template["script"]["resources"]
        key = want["gpu_key"]
        assert resources_["requests"] == {"cpu": want["cpu"], "memory": want["memory"], key: want["gpu"]}, (name, step)
        assert resources_["limits"] == {"memory": want["memory"], key: want["gpu"]}, (name, step)
        assert {"key": key, "operator": "Exists", "effect": "NoSchedule"} in template["tolerations"], (name, step)
        assert {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": want["shm"]}} in template["volumes"], (name, step)
        assert {"name": SHM_VOLUME, "mountPath": SHM_PATH} in template["script"]["volumeMounts"], (name, step)
        assert "podSpecPatch" in template, (name, step)
        assert {f"{step}-cpu", f"{step}-memory", f"{step}-gpu", f"{step}-shared-memory"} <= parameters, (name, step)


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hera_user")
    (folder / "wf.py").write_text(WORKFLOW_FILE)
    return folder / "wf.py"


@pytest.fixture(scope="module")
def rendered(user_file: Path) -> dict[str, dict[str, Any]]:
    """What allotment's own renderer gives for the file (the reference every Hera path must equal)."""
    documents = render([user_file], CLEAN)
    return {d["metadata"]["name"]: d for d in documents}


@pytest.fixture(scope="module")
def python_run(user_file: Path) -> tuple[Path, list[str], FakeArgoServer]:
    """``python wf.py OUT URL``: to_yaml, to_dict, to_file, create, lint against the stand-in server."""
    out = user_file.parent / "out"
    (out / "files").mkdir(parents=True)
    with FakeArgoServer() as argo:
        done = _run([sys.executable, str(user_file), str(out), argo.url], cwd=user_file.parent)
    return out, json.loads(done.stdout), argo


def test_the_reference_render_carries_the_spec(rendered: dict[str, dict[str, Any]]) -> None:
    assert sorted(rendered) == sorted(NAMES)
    for name, document in rendered.items():
        # Hera's kind: the class's own, or its name for a plain subclass (late-*, Hera's behaviour).
        assert document["kind"] in (KINDS[name], {"late-cron": "LateCron", "late-cluster": "LateCluster"}.get(name)), name
        _assert_carries_the_spec(document)


def test_python_wf_py_to_yaml_to_dict_to_file(python_run: tuple[Path, list[str], FakeArgoServer], rendered: dict[str, Any]) -> None:
    out, files, _ = python_run
    from_yaml = list(yaml.safe_load_all((out / "to_yaml.yaml").read_text()))
    from_dict = json.loads((out / "to_dict.json").read_text())
    from_files = [yaml.safe_load(Path(f).read_text()) for f in files]
    for documents in (from_yaml, from_dict, from_files):
        assert [d["metadata"]["name"] for d in documents] == NAMES
        for document in documents:
            _assert_carries_the_spec(document)
            assert document == rendered[document["metadata"]["name"]]


def test_create_and_lint_send_the_spec_to_the_server(python_run: tuple[Path, list[str], FakeArgoServer], rendered: dict[str, Any]) -> None:
    _, _, argo = python_run
    assert argo.unanswered == []
    calls = [(c["kind"], c["action"], c["object"]["metadata"].get("name")) for c in argo.calls]
    expected = [(KINDS[n], action, n) for n in NAMES for action in ("create", "lint")] + [("Workflow", "create", None)]
    assert calls == expected
    namespaces = {c["object"]["metadata"]["name"]: c["namespace"] for c in argo.calls if c["object"]["metadata"].get("name")}
    assert namespaces["late-template"] == namespaces["grandchild"] == "team"  # the subclass's own default
    assert namespaces["cluster"] is None and namespaces["plain"] == "argo"
    for call in argo.calls:
        _assert_carries_the_spec(call["object"])
        name = call["object"]["metadata"].get("name")
        if name is not None:
            # The request body is the manifest Hera sends (exclude_defaults drops nothing allotment adds).
            reference = rendered[name]
            for step in EXPECTED:
                assert _template(call["object"], step) == _template(reference, step)
            assert _spec(call["object"])["arguments"] == _spec(reference)["arguments"]
    # create_as_workflow: the WorkflowTemplate, built through its hook, submitted as a Workflow.
    as_workflow = argo.calls[-1]["object"]
    assert as_workflow["metadata"]["generateName"] == "template"
    assert _spec(as_workflow)["templates"] == _spec(rendered["template"])["templates"]


def test_hera_generate_yaml_through_its_own_cli(user_file: Path, rendered: dict[str, Any]) -> None:
    done = _run([str(HERA_CLI), "generate", "yaml", str(user_file)], cwd=user_file.parent)
    documents = list(yaml.safe_load_all(done.stdout))
    assert [d["metadata"]["name"] for d in documents] == NAMES
    for document in documents:
        _assert_carries_the_spec(document)
        assert document == rendered[document["metadata"]["name"]]


STEPS_MODULE = '''\
"""Steps that import allotment only: decorated before anything imports Hera."""

import sys

from allotment import resources


@resources(cpu=2, memory="6Gi", gpu=1, shared_memory="1Gi")
def above():
    print("decorated before Hera was imported")


@resources(cpu="500m", memory=3072, gpu=2, gpu_vendor="amd", shared_memory=512)
def below():
    print("decorated before Hera was imported")


HERA_WAS_IMPORTED = "hera.workflows" in sys.modules
'''

LATE_FILE = '''\
"""Imports the steps first (no Hera yet), then wraps them with Hera: no decorator runs after Hera."""

import json
import sys

import user_steps
{face_import}
from hera.workflows import DAG, Workflow, script

above = script(image="python:3.12")(user_steps.above)
below = script(image="python:3.12")(user_steps.below)

with Workflow(name="late", entrypoint="main") as w:
    with DAG(name="main"):
        above()
        below()

armed = [type(f).__name__ for f in sys.meta_path if type(f).__module__ == "allotment.faces"]
print(json.dumps({{"hera_before_steps": user_steps.HERA_WAS_IMPORTED, "armed": armed, "document": w.to_dict()}}))
'''


@pytest.mark.parametrize("face_import", ["", "import allotment.argo.hooks"], ids=["hera-first", "face-first"])
def test_steps_decorated_before_hera_is_imported(tmp_path: Path, face_import: str) -> None:
    # face-first: importing allotment's face imports Hera, which fires the armed import hook
    # while the face module is still loading; the face connects itself when it is loaded.
    (tmp_path / "user_steps.py").write_text(STEPS_MODULE)
    (tmp_path / "late.py").write_text(LATE_FILE.format(face_import=face_import))
    out = json.loads(_run([sys.executable, str(tmp_path / "late.py")], cwd=tmp_path).stdout)
    assert out["hera_before_steps"] is False
    assert out["armed"] == []  # the one-shot import hook left sys.meta_path once Hera was loaded
    _assert_carries_the_spec(out["document"])


def test_importing_allotment_and_decorating_does_not_import_hera(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from allotment import resources
        @resources(cpu=1)
        def step(): pass
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "hera")))
        """
    )
    assert json.loads(_run([sys.executable, "-c", code], cwd=tmp_path).stdout) == []


def test_a_face_that_cannot_be_imported_is_an_error_at_the_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment import faces

    # An engine that is imported (json is) whose face is missing: the spec could not reach its output.
    monkeypatch.setitem(faces.ENGINE_FACES, "json", ("allotment.no_such_face:install", "argo"))
    with pytest.raises(AllotmentError, match=r"a decorated step and json are both loaded, but allotment's face for json cannot"):

        @resources(cpu=1)
        def step() -> None:
            pass


# -- the Hera behaviour the mechanism relies on, pinned on the installed release ----------------------


def test_hera_pins() -> None:
    # 1. Hera looks a pre-build hook up by the exact class of the object (hera.shared._global_config,
    #    _get_pre_build_hooks: `.get(type(instance))`), so each Workflow subclass needs its own hook.
    #    Tried on a scratch config, so allotment's registered hooks are left alone.
    from hera.shared._global_config import _GlobalConfig

    scratch = _GlobalConfig()

    def hook(workflow: Workflow) -> Workflow:
        return workflow

    hook.__annotations__ = {"workflow": Workflow, "return": Workflow}
    scratch.register_pre_build_hook(hook)

    class Sub(Workflow):
        pass

    assert scratch._get_pre_build_hooks(Workflow(name="a")) == [hook]
    assert scratch._get_pre_build_hooks(Sub(name="b")) == []
    # 2. allotment.argo.hooks reads `global_config._pre_build_hooks`: a dict class -> list of hooks.
    assert scratch._pre_build_hooks == {Workflow: [hook]}
    # 3. Hera's Workflow has no __init_subclass__ of its own, which allotment sets (and would chain).
    code = "import json; from hera.workflows import Workflow; print(json.dumps('__init_subclass__' in Workflow.__dict__))"
    assert json.loads(_run([sys.executable, "-c", code], cwd=ROOT).stdout) is False
    # 4. `hera generate yaml` finds workflows among the file's globals and dumps each with to_yaml().
    from hera._cli.generate import yaml as generate

    assert "w.to_yaml()" in Path(generate.__file__).read_text()


# -- install(), subclasses, the guard -------------------------------------------------------------------


def _ours(cls: type) -> int:
    hooks = global_config._pre_build_hooks or {}
    return sum(1 for h in hooks.get(cls, []) if getattr(h, HOOK_MARK, False))


def _step_workflow(cls: type[Workflow], name: str) -> Workflow:
    @resources(cpu=2, memory="6Gi", gpu=1, shared_memory="1Gi")
    @script(image="python:3.12")
    def above() -> None:
        print("x")

    @script(image="python:3.12")
    @resources(cpu="500m", memory=3072, gpu=2, gpu_vendor="amd", shared_memory=512)
    def below() -> None:
        print("x")

    with cls(name=name, entrypoint="main") as workflow:
        with DAG(name="main"):
            above()
            below()
    return workflow


def test_install_is_idempotent_and_covers_every_subclass() -> None:
    face.install()

    class Later(Workflow):
        pass

    class LaterStill(Later):
        pass

    face.install()
    face.install()
    for cls in [*WORKFLOW_CLASSES, Later, LaterStill]:
        assert cls in workflow_classes()
        assert _ours(cls) == 1, cls
    for cls in TEMPLATE_CLASSES:
        assert _ours(cls) == 1, cls
    assert TEMPLATE_CLASSES == (Script, Container)
    _assert_carries_the_spec(_step_workflow(LaterStill, "later-still").to_dict())


def test_a_decorated_step_reinstalls_after_a_hera_config_reset() -> None:
    global_config.reset()
    try:
        assert _ours(Workflow) == 0
        workflow = _step_workflow(Workflow, "after-reset")  # decorating connects Hera again
        assert _ours(Workflow) == 1
        _assert_carries_the_spec(workflow.to_dict())
    finally:
        face.install()


def test_a_subclass_that_hides_from_the_hook_fails_the_build_loudly() -> None:
    face.install()

    class Quiet(Workflow):
        def __init_subclass__(cls, **kwargs: Any) -> None:  # does not call super(): allotment never sees its subclasses
            pass

    class Hidden(Quiet):
        pass

    workflow = _step_workflow(Hidden, "hidden")  # decorating installs again, which finds Hidden...
    assert _ours(Hidden) == 1

    class Unseen(Quiet):  # ...but this one is defined after the last decorated step
        pass

    unseen = Unseen(name="unseen", entrypoint="main", templates=list(workflow.templates))
    assert _ours(Unseen) == 0
    with pytest.raises(AllotmentError, match=r"step 'above': Script 'above' carries an allotment spec, but the workflow that holds it"):
        unseen.to_dict()
    _assert_carries_the_spec(face.apply(unseen).to_dict())  # apply() needs no hook
    face.install()
    _assert_carries_the_spec(unseen.to_dict())
