"""Issue 12 on Argo: memory grows only when the last attempt was an OOM kill, from what Argo's retry
context offers (``retries``, ``lastRetry.status``, ``lastRetry.message``), through the faithful port
of Argo v4.1.2's templating (``argo_templating.run_attempt``: the rendered workflow, substituted and
patched as the controller does, expressions on the real expr-lang engine).

Argo shows an attempt only the attempt before it, so it cannot count earlier OOM kills; the
template counts ``retries`` after an OOM kill and ``retries - 1`` after anything else, the core's
:func:`allotment.oom.argo_oom_kills`, which never loses growth (docs/design.md §7.3).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from allotment import resources
from allotment.argo.render import render_workflow
from allotment.oom import argo_oom_kills
from allotment.policy import Policy
from allotment.settings import Settings, load_settings
from argo_support import FIRST_ATTEMPT, OOM_KILLED, workflow_spec
from argo_templating import run_attempt
from hera.workflows import Steps, Workflow, script

CLEAN = load_settings(cli={}, env={})

ERROR = {"exitCode": "1", "status": "Failed", "duration": "3", "message": "main: Error (exit code 1)"}
"""A plain failure of the main container."""
EVICTED = {
    "exitCode": "137",
    "status": "Failed",
    "duration": "30",
    "message": "main: ContainerStatusUnknown (exit code 137): The container could not be located when the pod was terminated",
}
"""An eviction: exit code 137, a SIGKILL, no OOM kill."""
FAKED = {"exitCode": "137", "status": "Failed", "duration": "3", "message": "main: Error (exit code 137): OOMKilled"}
"""A workload that killed itself with SIGKILL and wrote ``OOMKilled`` as its termination message."""
ERROR_NODE = {"exitCode": "0", "status": "Error", "duration": "1", "message": "main: OOMKilled (exit code 137)"}
"""An Error node (not Failed), whatever its message."""
OOM_WITH_MESSAGE = {**OOM_KILLED, "message": "main: OOMKilled (exit code 137): killed while loading shard 7"}


def _document(overridable: bool = True, policy: Policy | None = None) -> dict[str, Any]:
    @resources(memory="4Gi", retry_memory_factor=1.5)
    @script(image="python:3.12-slim")
    def train() -> None:
        print("x")

    with Workflow(name="oom", entrypoint="main") as workflow:
        with Steps(name="main"):
            train()
    if not overridable:
        from allotment.argo import overridable as switch

        switch(False)(workflow)
    settings = CLEAN if policy is None else Settings(CLEAN.backend, CLEAN.withs, CLEAN.sets, policy, CLEAN.profile, CLEAN.origins)
    return render_workflow(workflow, settings)


def _memory(document: dict[str, Any], retries: int, last: dict[str, str], submitted: dict[str, str] | None = None) -> str:
    spec = run_attempt(document, "train", submitted or {}, retries, last_retry=last).pod_spec
    resources = next(c for c in spec["containers"] if c["name"] == "main")["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    memory: str = resources["limits"]["memory"]
    return memory


@pytest.mark.parametrize("overridable", [True, False], ids=["parameter", "compiled"])
def test_the_patch_grows_after_an_oom_kill_and_not_after_exit_code_1(overridable: bool) -> None:
    """The issue's acceptance: lastRetry exit code 137 / OOMKilled -> grown; exit code 1 -> not."""
    document = _document(overridable)
    assert _memory(document, 0, FIRST_ATTEMPT) == "4096Mi"
    assert _memory(document, 1, OOM_KILLED) == "6144Mi"
    assert _memory(document, 1, OOM_WITH_MESSAGE) == "6144Mi"  # the workload's termination message follows the prefix
    assert _memory(document, 1, ERROR) == "4096Mi"
    assert _memory(document, 1, EVICTED) == "4096Mi"  # exit code 137 alone is only a SIGKILL
    assert _memory(document, 1, FAKED) == "4096Mi"  # "OOMKilled" written by the workload does not count
    assert _memory(document, 1, ERROR_NODE) == "4096Mi"


def test_an_oom_kill_then_an_eviction_keeps_the_growth() -> None:
    """OOM, eviction, third attempt: grown once (Argo counts retries - 1 = 1, the true count)."""
    document = _document()
    assert [_memory(document, 1, OOM_KILLED), _memory(document, 2, EVICTED)] == ["6144Mi", "6144Mi"]
    assert _memory(document, 3, OOM_KILLED) == "13824Mi"  # 4096 x 1.5^3: every retry before counts


def test_where_argo_cannot_count_it_counts_one_oom_kill_too_many_per_earlier_other_failure() -> None:
    """The documented difference: two evictions, then a third attempt asks for memory grown once
    (the true count is 0); the policy's cap bounds it."""
    document = _document()
    assert [_memory(document, 1, EVICTED), _memory(document, 2, EVICTED)] == ["4096Mi", "6144Mi"]
    capped = _document(policy=Policy.from_mapping({"caps": {"memory": "5Gi"}}, origin="p.yaml"))
    assert [_memory(capped, n, last) for n, last in ((1, EVICTED), (2, EVICTED), (3, OOM_KILLED))] == ["4096Mi", "5120Mi", "5120Mi"]


@pytest.mark.parametrize("retries", range(5))
@pytest.mark.parametrize("last", ["oom", "error", "evicted", "faked"])
def test_every_attempt_asks_what_the_core_gives_for_argos_count(retries: int, last: str) -> None:
    """The patch is the core's rule: ``Resolved.with_memory_after(argo_oom_kills(retries, last was an OOM kill))``."""
    ends = {"oom": OOM_KILLED, "error": ERROR, "evicted": EVICTED, "faked": FAKED}
    given = ends[last] if retries else FIRST_ATTEMPT

    @resources(memory="4Gi", retry_memory_factor=1.5)
    def step() -> None: ...

    from allotment import spec_of

    resolved = CLEAN.resolve(spec_of(step), step="train", backend="kubernetes")
    kills = argo_oom_kills(retries, retries > 0 and last == "oom")
    want = resolved.with_memory_after(kills).value("memory")
    for document in (_document(True), _document(False)):
        assert _memory(document, retries, given) == f"{want}Mi"
    assert _memory(_document(True), retries, given, {"train-memory": "4096"}) == f"{want}Mi"  # a submitted plain MiB


def test_no_last_retry_value_reaches_the_patch_as_text() -> None:
    """``lastRetry.message`` is written by the workload: it is compared, never substituted."""
    document = _document()
    patch = next(t for t in workflow_spec(document)["templates"] if t["name"] == "train")["podSpecPatch"]
    assert "{{lastRetry" not in patch and "{{ lastRetry" not in patch
    message = 'main: OOMKilled (exit code 137): "}],"hostPID":true,"x":["'
    hostile = {"exitCode": "137", "status": "Failed", "duration": "1", "message": message}
    spec = run_attempt(document, "train", {}, 1, last_retry=hostile).pod_spec
    assert "hostPID" not in json.dumps(spec)
    assert next(c for c in spec["containers"] if c["name"] == "main")["resources"]["limits"]["memory"] == "6144Mi"
