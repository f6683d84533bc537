"""allotment's BatchOperator and the AwsBatchExecutor (issue 5, Airflow part), with real Airflow and
the real boto3 client against a moto server on 127.0.0.1.

Each operator test registers a base job definition, runs the operator's execute path (a run
context with ``dag_run.conf``, ``ti.try_number`` and a task state store; ``wait_for_completion=False``) and reads
back what the server recorded: the job-definition revisions and the submitted job's overrides
(moto's describe_jobs does not show ``resourceRequirements`` overrides, so they are read from
its backend, in this process), and the exact SubmitJob request through a botocore
``provide-client-params`` hook, validated by botocore against the real Batch model.

Real AWS: with ``ALLOTMENT_TEST_REAL_AWS=1``, AWS credentials and ``ALLOTMENT_TEST_BATCH_QUEUE``
(an existing EC2 job queue), ``test_real_aws_shared_memory_revision_and_submit`` runs the
operator against AWS (registering, then deregistering, ``allotment-test-*`` job definitions
and terminating its jobs); otherwise it is skipped with that reason.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from af_helpers import DAGS, POLICY, ROOT, StateStore, dagbag, pod_of, write_dag
from allotment import AllotmentError, batch, resources
from allotment.airflow.tries import KEY

sys.path.insert(0, str(ROOT / "tests" / "batch"))  # the Batch tests' helpers: botocore's model, the moto server
from batch_support import REGION, MotoBatch, moto_batch, moto_server, real_aws_queue, validation_errors

START = pendulum.datetime(2025, 1, 1, tz="UTC")
BATCH_EXECUTOR = "airflow.providers.amazon.aws.executors.batch.AwsBatchExecutor"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server")
    with moto_server() as url:
        yield url


@pytest.fixture
def moto(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> MotoBatch:
    """A job queue on the moto server; operators built with ``aws_conn_id=None`` reach it through
    boto3's own configuration (``AWS_ENDPOINT_URL_BATCH``)."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)  # execute() called directly, as the task runner would
    for name, value in {
        "AWS_ENDPOINT_URL_BATCH": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_batch(endpoint)


def _register_base(moto: MotoBatch, name: str = "trainer", **properties: Any) -> str:
    full = f"{moto.prefix}-{name}"
    moto.client.register_job_definition(
        jobDefinitionName=full,
        type="container",
        containerProperties={
            "image": "busybox",
            "command": ["python", "-m", "train"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "linuxParameters": {"initProcessEnabled": True},
            **properties,
        },
        tags={"team": "ml"},
    )
    return full


class Recorder:
    """Stands in for an operator's logger: keeps each formatted line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _add(self, level: str, message: str, *args: Any, **_: Any) -> None:
        self.lines.append((level, message % args if args else message))

    def info(self, message: str, *args: Any, **kw: Any) -> None:
        self._add("info", message, *args, **kw)

    def warning(self, message: str, *args: Any, **kw: Any) -> None:
        self._add("warning", message, *args, **kw)

    def error(self, message: str, *args: Any, **kw: Any) -> None:
        self._add("error", message, *args, **kw)

    def debug(self, message: str, *args: Any, **kw: Any) -> None:
        self._add("debug", message, *args, **kw)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


@dataclass
class Run:
    """One operator and what its executes sent: each API call's name and the SubmitJob requests."""

    op: Any
    log: Recorder
    calls: list[str] = field(default_factory=list)
    submitted: list[dict[str, Any]] = field(default_factory=list)

    def execute(self, *, conf: Any = None, try_number: int = 1, store: StateStore | None = None) -> str:
        pushed: list[dict[str, Any]] = []
        ti = SimpleNamespace(
            dag_id=self.op.dag_id, task_id=self.op.task_id, try_number=try_number, map_index=-1, xcom_push=lambda **kw: pushed.append(kw)
        )
        context: dict[str, Any] = {"ti": ti, "run_id": "manual__test", "dag_run": SimpleNamespace(conf=conf or {}), "dag": self.op.dag}
        if store is not None:
            context["task_state_store"] = store
        job_id = self.op.execute(context)
        assert isinstance(job_id, str)
        return job_id


def _operator(moto: MotoBatch, **kwargs: Any) -> Run:
    """An allotment BatchOperator in a DAG (with a second task, for conf checks), its API calls recorded."""
    from airflow.sdk import DAG
    from allotment.airflow import BatchOperator

    kwargs.setdefault("job_queue", moto.queue)
    default_args = kwargs.pop("default_args", None)
    with DAG("batch_dag", schedule=None, start_date=START, default_args=default_args or {}):
        op = BatchOperator(task_id="train", aws_conn_id=None, region_name=REGION, wait_for_completion=False, **kwargs)
        BatchOperator(task_id="other", job_queue=moto.queue, job_definition="unused", aws_conn_id=None, region_name=REGION)
    run = Run(op, Recorder())
    object.__setattr__(op, "_cached_logger", run.log)
    events = op.hook.client.meta.events

    def before_call(model: Any, **_: Any) -> None:
        run.calls.append(model.name)

    def submit_params(params: dict[str, Any], **_: Any) -> None:
        run.submitted.append(json.loads(json.dumps(params)))

    events.register("before-call.batch", before_call)
    events.register("provide-client-params.batch.SubmitJob", submit_params)
    return run


def _definitions(moto: MotoBatch) -> list[dict[str, Any]]:
    """This test's ACTIVE job definitions (the moto server lives for the module)."""
    found = moto.client.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    return [d for d in found if d["jobDefinitionName"].startswith(moto.prefix)]


def _requirements(recorded: dict[str, Any]) -> dict[str, str]:
    return {e["type"]: e["value"] for e in recorded["containerOverrides"]["resourceRequirements"]}


# -- the operator, end to end against moto --------------------------------------------------


def test_shared_memory_revision_idempotent_and_submit(moto: MotoBatch) -> None:
    """The issue's example: a derived revision with sharedMemorySize, registered once; the job
    submitted with it and with VCPU 8, MEMORY 32768, GPU 1."""
    base = _register_base(moto)
    run = _operator(moto, job_name="train", job_definition=base, resources={"cpu": 8, "memory": "32Gi", "gpu": 1, "shared_memory": "8Gi"})

    first, second = run.execute(), run.execute()
    (derived,) = [d for d in _definitions(moto) if d["jobDefinitionName"] != base]
    assert derived["jobDefinitionName"].startswith(f"{base}-allot-") and derived["revision"] == 1
    properties = derived["containerProperties"]
    assert properties["linuxParameters"] == {"initProcessEnabled": True, "sharedMemorySize": 8192}
    assert properties["image"] == "busybox" and properties["command"] == ["python", "-m", "train"]
    assert derived["tags"]["team"] == "ml"
    assert len(moto.revisions(derived["jobDefinitionName"])) == 1  # idempotent across the two executes
    assert [d["revision"] for d in moto.revisions(base)] == [1]  # the base is never changed
    assert run.calls.count("RegisterJobDefinition") == 1 and run.calls.count("SubmitJob") == 2

    expected = {"VCPU": "8", "MEMORY": "32768", "GPU": "1"}
    for job_id, request in zip((first, second), run.submitted, strict=True):
        assert _requirements(moto.recorded(job_id)) == expected
        (job,) = moto.client.describe_jobs(jobs=[job_id])["jobs"]
        assert job["jobDefinition"] == derived["jobDefinitionArn"] and job["jobName"] == "train"
        assert request["jobDefinition"] == derived["jobDefinitionArn"]
        assert request["containerOverrides"] == {
            "resourceRequirements": [{"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "32768"}, {"type": "GPU", "value": "1"}]
        }
        assert validation_errors("SubmitJob", request) == ""
    assert run.op.job_definition == base and run.op.container_overrides is None  # put back after the submit

    log = run.log.text()
    assert "allotment: task 'train' on batch: cpu=8, memory=32Gi, gpu=1, shared_memory=8Gi" in log
    assert "memory 32Gi from resources= on BatchOperator" in log
    assert "AWS Batch ec2 (platform from default): containerOverrides.resourceRequirements VCPU 8, MEMORY 32768, GPU 1" in log
    assert "registered now" in log and "an identical one reused" in log
    assert '"sharedMemorySize":8192' in log


def test_seed_rule_resources_and_batch_on_step(moto: MotoBatch) -> None:
    """@resources(cpu=4, memory=8192) + @batch(cpu=2, memory=16384): VCPU 4, MEMORY 16384; queue and
    job definition from @batch; no revision needed, so the base is submitted as named."""
    base = _register_base(moto)

    @resources(cpu=4, memory=8192)
    @batch(cpu=2, memory=16384, queue=moto.queue, job_definition=base)
    def train() -> None: ...

    run = _operator(moto, step=train)
    assert (run.op.job_queue, run.op.job_definition, run.op.job_name) == (moto.queue, base, "train")
    job_id = run.execute()
    assert _requirements(moto.recorded(job_id)) == {"VCPU": "4", "MEMORY": "16384"}
    assert run.calls == ["SubmitJob"]  # no describe, no registration
    assert run.submitted[0]["jobDefinition"] == base
    assert [d["jobDefinitionName"] for d in _definitions(moto)] == [base]
    log = run.log.text()
    assert "cpu 4 from @resources" in log and "memory 16Gi from @batch" in log


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"allotment": {"tasks": {"train": "memory=48Gi"}}}, {"VCPU": "2", "MEMORY": "49152"}),
        ({"allotment": {"with": "batch:cpu=16"}}, {"VCPU": "16", "MEMORY": "8192"}),
        ({"allotment": {"with": "kubernetes:cpu=16"}}, {"VCPU": "2", "MEMORY": "8192"}),  # another backend's
        ({"allotment": {"tasks": {"train": {"cpu": 1.5}}}}, {"VCPU": "2", "MEMORY": "8192"}),  # a floor never lowers
    ],
)
def test_conf_overrides_apply_at_execute(moto: MotoBatch, conf: Any, expected: dict[str, str]) -> None:
    run = _operator(moto, job_definition=_register_base(moto), resources={"cpu": 2, "memory": "8Gi"})
    assert _requirements(moto.recorded(run.execute(conf=conf))) == expected


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ({"allotment": {"image": "evil:latest"}}, ["dag_run.conf['allotment'] has key 'image'", "only resource fields"]),
        ({"allotment": {"tasks": {"train": {"job_definition": "evil"}}}}, ["has key 'job_definition', which is no resource field"]),
        ({"allotment": {"tasks": {"nope": "memory=1Gi"}}}, ["names task 'nope', which this DAG does not have"]),
        ({"allotment": {"tasks": {"train": "gpu=1,cpu=1"}}, "other": 1}, []),  # valid: proves the fixture submits
    ],
)
def test_invalid_conf_fails_before_any_api_call(moto: MotoBatch, conf: Any, words: list[str]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    run = _operator(moto, job_definition=_register_base(moto), resources={"memory": "8Gi", "shared_memory": "1Gi"})
    if not words:
        run.execute(conf=conf)
        # base, derived name, register, the derived name again (a concurrent duplicate? allotment.batch.jobdefs), submit
        describe, register = "DescribeJobDefinitions", "RegisterJobDefinition"
        assert run.calls == [describe, describe, register, describe, "SubmitJob"]
        return
    with pytest.raises(AirflowFailException) as caught:
        run.execute(conf=conf)
    for word in words:
        assert word in str(caught.value)
    assert run.calls == [] and run.submitted == []
    assert moto.client.list_jobs(jobQueue=moto.queue, jobStatus="SUCCEEDED")["jobSummaryList"] == []
    assert any(level == "error" and "fails before any AWS Batch API call" in line for level, line in run.log.lines)


def test_a_missing_base_job_definition_fails_before_the_submit(moto: MotoBatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    run = _operator(moto, job_definition=f"{moto.prefix}-nope", resources={"memory": "8Gi", "shared_memory": "1Gi"})
    with pytest.raises(AirflowFailException, match=r"job_definition='t[0-9a-f]{8}-nope' names no ACTIVE job definition"):
        run.execute()
    assert "SubmitJob" not in run.calls and "RegisterJobDefinition" not in run.calls


def test_policy_caps_at_parse_time_and_at_run_time(moto: MotoBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("ALLOTMENT_POLICY", str(POLICY))  # caps memory 256Gi; a run's conf at most 64Gi
    base = _register_base(moto)
    with pytest.raises(AllotmentError, match=r"step 'train': memory='512Gi' from resources= on BatchOperator .*cap"):
        _operator(moto, job_definition=base, resources={"memory": "512Gi"})
    run = _operator(moto, job_definition=base, resources={"memory": "8Gi"})
    with pytest.raises(AirflowFailException, match=r"memory='128Gi'.*dag_run.conf"):
        run.execute(conf={"allotment": {"tasks": {"train": "memory=128Gi"}}})
    assert run.calls == []
    assert _requirements(moto.recorded(run.execute(conf={"allotment": {"tasks": {"train": "memory=64Gi"}}})))["MEMORY"] == "65536"


def _job(job_id: str, status: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """One of describe_jobs' ``jobs``, as AWS Batch answers it."""
    return {
        "jobArn": f"arn:aws:batch:{REGION}:123456789012:job/{job_id}",
        "jobName": "train",
        "jobId": job_id,
        "jobQueue": f"arn:aws:batch:{REGION}:123456789012:job-queue/q",
        "status": status,
        "startedAt": 1735689600000,
        "stoppedAt": 1735689660000,
        "jobDefinition": f"arn:aws:batch:{REGION}:123456789012:job-definition/trainer:1",
        "attempts": attempts,
        "statusReason": "Essential container in task exited",
    }


def _attempt(reason: str, exit_code: int) -> dict[str, Any]:
    return {
        "container": {"exitCode": exit_code, "reason": reason, "logStreamName": "trainer/default/abc", "taskArn": "arn:aws:ecs:task/x"},
        "startedAt": 1735689600000,
        "stoppedAt": 1735689660000,
        "statusReason": "Essential container in task exited",
    }


OOM_ATTEMPT = _attempt("OutOfMemoryError: Container killed due to memory usage", 137)
SPOT_ATTEMPT = {
    "container": {"exitCode": 137, "reason": "Host EC2 (instance i-0abc) terminated."},
    "statusReason": "Host EC2 (instance i-0abc) terminated.",
}
ERROR_ATTEMPT = _attempt("", 1)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An allotment BatchOperator whose boto3 client answers from botocore's Stubber (each request
    and response validated against the real Batch model); ``make()`` builds it, ``.stub`` is the Stubber."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_BATCH", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)

    def make(**kwargs: Any) -> tuple[Run, Any]:
        from airflow.sdk import DAG
        from allotment.airflow import BatchOperator
        from botocore.stub import Stubber

        with DAG("batch_dag", schedule=None, start_date=START):
            op = BatchOperator(task_id="train", job_queue="q", job_definition="trainer", aws_conn_id=None, region_name=REGION,
                               wait_for_completion=False, **kwargs)  # fmt: skip
        run = Run(op, Recorder())
        object.__setattr__(op, "_cached_logger", run.log)
        client = op.hook.client
        client.meta.events.register("provide-client-params.batch.SubmitJob", lambda params, **_: run.submitted.append(dict(params)))
        stub = Stubber(client)
        stub.activate()
        return run, stub

    return make


def _submitted_memory(run: Run) -> list[str]:
    return [next(e["value"] for e in r["containerOverrides"]["resourceRequirements"] if e["type"] == "MEMORY") for r in run.submitted]


@pytest.mark.parametrize(
    ("attempt", "memory", "said"),
    [
        (OOM_ATTEMPT, "12288", "an OOM kill (job job-1): job FAILED: last attempt OutOfMemoryError: Container killed due to memory usage"),
        (SPOT_ATTEMPT, "8192", "no OOM kill (job job-1): job FAILED: last attempt Host EC2 (instance i-0abc) terminated."),
        (ERROR_ATTEMPT, "8192", "no OOM kill (job job-1): job FAILED: last attempt Essential container in task exited"),
    ],
    ids=["oom", "spot", "error"],
)
def test_an_out_of_memory_attempt_grows_the_next_submit(stubbed: Any, attempt: dict[str, Any], memory: str, said: str) -> None:
    """Issue 12 on AWS Batch: try 2 asks describe_jobs how try 1's job ended; an attempt stopped
    with ``OutOfMemoryError`` grows MEMORY, any other reason (a lost spot instance, exit code 1) does not."""
    run, stub = stubbed(resources={"cpu": 2, "memory": "8Gi"}, retry_memory_factor=1.5)
    store = StateStore()
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-1"})
    run.execute(try_number=1, store=store)
    assert store.get(KEY) == {"tries": {"1": {"launched": {"job": "job-1"}}}}  # the job id, kept for later tries
    stub.add_response("describe_jobs", {"jobs": [_job("job-1", "FAILED", [attempt])]}, {"jobs": ["job-1"]})
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-2"})
    run.execute(try_number=2, store=store)
    stub.assert_no_pending_responses()
    assert _submitted_memory(run) == ["8192", memory]
    assert f"allotment: note: earlier try 1: {said}" in run.log.text()
    if memory != "8192":
        assert "try 2: memory 8Gi -> 12Gi after 1 OOM kill of earlier tries (retry_memory_factor 1.5)" in run.log.text()
    assert store.get(KEY)["tries"]["1"]["end"]["oom_killed"] is (attempt is OOM_ATTEMPT)


def test_an_oom_kill_then_a_lost_instance_keeps_the_growth_and_asks_aws_once_per_job(stubbed: Any) -> None:
    run, stub = stubbed(resources={"cpu": 2, "memory": "8Gi"}, retry_memory_factor=1.5)
    store = StateStore()
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-1"})
    run.execute(try_number=1, store=store)
    stub.add_response("describe_jobs", {"jobs": [_job("job-1", "FAILED", [SPOT_ATTEMPT, OOM_ATTEMPT])]}, {"jobs": ["job-1"]})
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-2"})
    run.execute(try_number=2, store=store)
    stub.add_response("describe_jobs", {"jobs": [_job("job-2", "FAILED", [SPOT_ATTEMPT])]}, {"jobs": ["job-2"]})  # job-1's end is known
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-3"})
    run.execute(try_number=3, store=store)
    stub.assert_no_pending_responses()
    assert _submitted_memory(run) == ["8192", "12288", "12288"]  # the last attempt of job-1 was OOM-killed: grown once


def test_a_job_that_has_not_ended_counts_as_no_oom_kill(stubbed: Any) -> None:
    run, stub = stubbed(resources={"memory": "8Gi"}, retry_memory_factor=2)
    store = StateStore()
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-1"})
    run.execute(try_number=1, store=store)
    stub.add_response("describe_jobs", {"jobs": [_job("job-1", "RUNNING", [])]}, {"jobs": ["job-1"]})
    stub.add_response("submit_job", {"jobName": "train", "jobId": "job-2"})
    run.execute(try_number=2, store=store)
    stub.assert_no_pending_responses()
    assert _submitted_memory(run) == ["8192", "8192"]
    assert "earlier try 1: its end is not known (job" not in run.log.text()
    assert "earlier try 1: its end is not known; counted as no OOM kill" in run.log.text()


def test_on_moto_a_failed_job_is_no_oom_kill(moto: MotoBatch) -> None:
    """The real client against moto's server: try 2 describes try 1's job (moto ends it without an
    OutOfMemoryError attempt, or has not ended it), so the memory stays."""
    run = _operator(moto, job_definition=_register_base(moto), resources={"cpu": 2, "memory": "8Gi"}, retry_memory_factor=1.5)
    store = StateStore()
    first = run.execute(try_number=1, store=store)
    second = run.execute(try_number=2, store=store)
    assert [_requirements(moto.recorded(j))["MEMORY"] for j in (first, second)] == ["8192", "8192"]
    assert run.calls.count("DescribeJobs") == 1 and store.get(KEY)["tries"]["1"]["launched"] == {"job": first}


def test_users_container_overrides_are_kept(moto: MotoBatch) -> None:
    own = {
        "command": ["python", "-m", "train", "--epochs", "3"],
        "environment": [{"name": "MODE", "value": "full"}],
        "resourceRequirements": [{"type": "GPU", "value": "1"}],
    }
    run = _operator(
        moto,
        job_definition=_register_base(moto),
        resources={"cpu": 4, "memory": "16Gi", "gpu": 1},
        container_overrides=own,
    )
    job_id = run.execute()
    recorded = moto.recorded(job_id)["containerOverrides"]
    assert recorded["command"] == own["command"] and recorded["environment"] == own["environment"]
    assert recorded["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "16384"},
        {"type": "GPU", "value": "1"},
    ]
    assert run.op.container_overrides == own  # the operator's own attribute is left as given
    (job,) = moto.client.describe_jobs(jobs=[job_id])["jobs"]
    assert job["container"]["command"] == own["command"]


def test_defaults_yield_to_the_users_own_requirements(moto: MotoBatch) -> None:
    """memory is only the seed default here: the user's MEMORY 2048 stands, no conflict."""
    own = {"resourceRequirements": [{"type": "MEMORY", "value": "2048"}]}
    run = _operator(moto, job_definition=_register_base(moto), resources={"cpu": 2}, container_overrides=own)
    assert _requirements(moto.recorded(run.execute())) == {"VCPU": "2", "MEMORY": "2048"}


@pytest.mark.parametrize(
    ("own", "words"),
    [
        (
            {"resourceRequirements": [{"type": "MEMORY", "value": "2048"}]},
            [
                "step 'train': containerOverrides.resourceRequirements MEMORY '2048' from the BatchOperator's own container_overrides",
                "conflicts with MEMORY '8192' from allotment's spec (memory 8Gi from resources= on BatchOperator)",
                "give this resource in one place only",
            ],
        ),
        ({"resourceRequirements": [{"type": "VCPU", "value": "8"}]}, ["VCPU '8' from the BatchOperator's own", "VCPU '2'"]),
        ({"memory": 4096}, ["containerOverrides.memory 4096 from the BatchOperator's own", "MEMORY '8192'"]),
        ({"resourceRequirements": {"type": "GPU"}}, ["is a dict, not a list"]),
    ],
)
def test_conflicting_container_overrides_are_the_files_import_error(moto: MotoBatch, own: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(AllotmentError) as caught:
        _operator(moto, job_definition="trainer", resources={"cpu": 2, "memory": "8Gi"}, container_overrides=own)
    for word in words:
        assert word in str(caught.value)


def test_conflict_from_a_run_fails_the_task_before_any_api_call(moto: MotoBatch) -> None:
    """The same entry twice is fine; a run's conf raising memory past the user's own MEMORY clashes."""
    from airflow.sdk.exceptions import AirflowFailException

    own = {"resourceRequirements": [{"type": "MEMORY", "value": "8192"}]}
    run = _operator(moto, job_definition=_register_base(moto), resources={"memory": "8Gi"}, container_overrides=own)
    assert _requirements(moto.recorded(run.execute()))["MEMORY"] == "8192"
    run.calls.clear()
    with pytest.raises(AirflowFailException, match=r"MEMORY '8192' from the BatchOperator's own .* conflicts with MEMORY '16384'"):
        run.execute(conf={"allotment": {"tasks": {"train": "memory=16Gi"}}})
    assert run.calls == []


def test_eks_platform_revision_and_override(moto: MotoBatch) -> None:
    base = f"{moto.prefix}-eks"
    moto.client.register_job_definition(
        jobDefinitionName=base,
        type="container",
        eksProperties={"podProperties": {"containers": [{"name": "main", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}]}},
    )
    run = _operator(
        moto,
        job_definition=base,
        platform="eks",
        eks_container="main",
        resources={"cpu": 1.1, "memory": "16Gi", "gpu": 1, "shared_memory": "4Gi"},
        eks_properties_override={"podProperties": {"containers": [{"name": "main", "env": [{"name": "A", "value": "1"}]}]}},
    )
    job_id = run.execute()
    (derived,) = [d for d in _definitions(moto) if d["jobDefinitionName"] != base]
    pod = derived["eksProperties"]["podProperties"]
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4096Mi"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    (container,) = moto.recorded(job_id)["eksPropertiesOverride"]["podProperties"]["containers"]
    assert container == {
        "name": "main",
        "env": [{"name": "A", "value": "1"}],
        "resources": {
            "requests": {"cpu": "1.25", "memory": "16384Mi", "nvidia.com/gpu": "1"},
            "limits": {"memory": "16384Mi", "nvidia.com/gpu": "1"},
        },
    }
    assert validation_errors("SubmitJob", run.submitted[0]) == ""
    assert "AWS Batch eks (platform from platform= on BatchOperator)" in run.log.text()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (
            {"resources": {"gpu": 1}, "platform": "fargate"},
            ["gpu='1' from resources= on BatchOperator", "cannot run on AWS Batch Fargate: Fargate has no GPUs"],
        ),
        ({"platform": "lambda"}, ["platform='lambda' from platform= on BatchOperator is not an AWS Batch platform"]),
        ({"job_queue": None}, ["BatchOperator has no job_queue", "@batch(job_definition=..., queue=...)"]),
        ({"step": len}, ["carries no allotment spec"]),
    ],
)
def test_operator_argument_errors(moto: MotoBatch, kwargs: dict[str, Any], words: list[str]) -> None:
    kwargs = {"job_definition": "trainer", **kwargs}
    if kwargs.get("job_queue", "") is None:
        from airflow.sdk import DAG
        from allotment.airflow import BatchOperator

        with pytest.raises(AllotmentError) as caught, DAG("d", schedule=None, start_date=START):
            BatchOperator(task_id="train", job_definition="trainer")
    else:
        with pytest.raises(AllotmentError) as caught:
            _operator(moto, **kwargs)
    for word in words:
        assert word in str(caught.value)


def test_platform_and_queue_must_agree_with_batch_decorator(moto: MotoBatch) -> None:
    @batch(platform="fargate", queue="q1", job_definition="etl")
    def etl() -> None: ...

    with pytest.raises(AllotmentError, match="platform='ec2' on BatchOperator conflicts with platform='fargate' from @batch"):
        _operator(moto, step=etl, job_queue="q1", platform="ec2")
    with pytest.raises(AllotmentError, match="job_queue='q2' on BatchOperator conflicts with queue='q1' from @batch"):
        _operator(moto, step=etl, job_queue="q2")


def test_disk_on_ec2_warns_at_parse_time_and_in_the_task_log(moto: MotoBatch) -> None:
    from allotment.errors import AllotmentWarning

    with pytest.warns(AllotmentWarning, match="disk='20Gi' from resources= on BatchOperator is not applied on AWS Batch EC2"):
        run = _operator(moto, job_definition=_register_base(moto), resources={"cpu": 1, "disk": "20Gi"})
    run.execute()
    assert any(level == "warning" and "launch template" in line for level, line in run.log.lines)


def test_dag_defaults_and_deployment_with(moto: MotoBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOTMENT_WITH", "batch:cpu=4;kubernetes:memory=64Gi")  # floors per backend
    monkeypatch.setenv("ALLOTMENT_BACKEND", "kubernetes")  # the deployment's default; a BatchOperator runs on batch anyway
    run = _operator(moto, job_definition=_register_base(moto), resources={"cpu": 2}, default_args={"allotment": {"memory": "6Gi"}})
    assert _requirements(moto.recorded(run.execute())) == {"VCPU": "4", "MEMORY": "6144"}
    log = run.log.text()
    assert "cpu 4 from with env ALLOTMENT_WITH 'batch:cpu=4'" in log
    assert "memory 6Gi from workflow default default_args['allotment']" in log


def test_a_step_pinned_to_kubernetes_cannot_run_on_batch(moto: MotoBatch) -> None:
    from allotment import kubernetes

    @kubernetes(cpu=2)
    def train() -> None: ...

    with pytest.raises(AllotmentError, match="is pinned to kubernetes by @kubernetes but runs on AWS Batch here"):
        _operator(moto, step=train, job_definition="trainer")


# -- the AwsBatchExecutor -------------------------------------------------------------------

BASE_KWARGS = {
    "containerOverrides": {
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}, {"type": "GPU", "value": "1"}],
        "environment": [{"name": "BASE", "value": "1"}],
    }
}


def _executor_env(monkeypatch: pytest.MonkeyPatch, queue: str = "q", endpoint: str | None = None) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", f"LocalExecutor,{BATCH_EXECUTOR}")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE", queue)
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", "worker")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_NAME", "airflow-worker")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME", REGION)
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS", json.dumps(BASE_KWARGS))
    if endpoint:
        extra = {"region_name": REGION, "endpoint_url": endpoint}
        connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))


def _executor_tasks(executor: str | None = "AwsBatchExecutor", executor_config: Any = None, **fields: Any) -> Any:
    """A DAG with a @resources @task (on ``executor``), a PythonOperator and a plain @task; the
    cluster policy applied as Airflow applies it."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, task

    from airflow import settings

    spec = fields or {"cpu": 4, "memory": "16Gi"}

    @resources(**spec)
    def crunch() -> None: ...

    with DAG("exec", schedule=None, start_date=START) as dag:
        task(crunch, task_id="decorated", executor=executor, executor_config=executor_config)()
        PythonOperator(task_id="classic", python_callable=crunch, executor=executor)

        @task(executor=executor)
        def plain() -> None: ...

        plain()
    for t in dag.tasks:
        settings.task_policy(t)
    return dag


def _merged(config: dict[str, Any]) -> dict[str, Any]:
    """What the AwsBatchExecutor sends for this executor_config: its own _submit_job_kwargs."""
    from airflow.providers.amazon.aws.executors.batch.batch_executor import AwsBatchExecutor
    from airflow.providers.amazon.aws.executors.batch.batch_executor_config import build_submit_kwargs
    from airflow.providers.common.compat.sdk import conf

    fake = SimpleNamespace(submit_job_kwargs=build_submit_kwargs(conf))
    return AwsBatchExecutor._submit_job_kwargs(fake, "key", ["airflow", "tasks", "run"], None, json.loads(json.dumps(config)))  # type: ignore[arg-type]


def test_executor_config_carries_the_complete_list(monkeypatch: pytest.MonkeyPatch) -> None:
    _executor_env(monkeypatch)
    dag = _executor_tasks()
    decorated, classic, plain = (dag.get_task(t) for t in ("decorated", "classic", "plain"))
    expected = {"containerOverrides": {"resourceRequirements": [
        {"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "16384"}, {"type": "GPU", "value": "1"},  # GPU: the executor's
    ]}}  # fmt: skip
    assert decorated.executor_config == expected and classic.executor_config == expected
    assert plain.executor_config == {}
    merged = _merged(decorated.executor_config)
    assert merged["containerOverrides"]["resourceRequirements"] == expected["containerOverrides"]["resourceRequirements"]
    assert merged["containerOverrides"]["environment"][0] == {"name": "BASE", "value": "1"}
    assert merged["jobQueue"] == "q" and merged["jobDefinition"] == "worker"
    assert validation_errors("SubmitJob", merged) == ""


def test_executor_defaults_yield_to_the_executors_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """cpu only: memory is a seed default, so the executor's configured MEMORY 2048 stands; gpu=0
    drops the configured GPU."""
    _executor_env(monkeypatch)
    config = _executor_tasks(cpu=2, gpu=0).get_task("decorated").executor_config
    assert config["containerOverrides"]["resourceRequirements"] == [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "2048"}]
    assert validation_errors("SubmitJob", _merged(config)) == ""


def test_executor_config_keeps_the_users_own_and_names_conflicts(monkeypatch: pytest.MonkeyPatch) -> None:
    _executor_env(monkeypatch)
    own = {"containerOverrides": {"environment": [{"name": "A", "value": "1"}]}, "shareIdentifier": "ml", "schedulingPriorityOverride": 5}
    config = _executor_tasks(executor_config=own).get_task("decorated").executor_config
    assert config["shareIdentifier"] == "ml" and config["containerOverrides"]["environment"] == [{"name": "A", "value": "1"}]
    assert [e["type"] for e in config["containerOverrides"]["resourceRequirements"]] == ["VCPU", "MEMORY", "GPU"]
    merged = _merged(config)
    assert merged["containerOverrides"]["environment"][0] == {"name": "A", "value": "1"}  # lists replaced, as the executor does
    assert validation_errors("SubmitJob", merged) == ""

    clash = {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "8192"}]}}
    with pytest.raises(AllotmentError, match=r"MEMORY '8192' from executor_config conflicts with MEMORY '16384' from allotment's spec"):
        _executor_tasks(executor_config=clash)


@pytest.mark.parametrize(
    ("fields", "config", "words"),
    [
        ({"memory": "8Gi", "shared_memory": "1Gi"}, None, ["needs a job-definition revision (containerProperties.linuxParameters."]),
        ({"cpu": 1}, {"container_overrides": {}}, ["has the key 'container_overrides'", "'containerOverrides'"]),
    ],
)
def test_executor_cannot_take_what_needs_a_job_definition(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], config: Any, words: list[str]
) -> None:
    _executor_env(monkeypatch)
    with pytest.raises(AllotmentError) as caught:
        _executor_tasks(executor_config=config, **fields)
    for word in words:
        assert word in str(caught.value)


def test_executor_eks_is_an_error_and_kubernetes_pinned_steps_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG, task
    from allotment import kubernetes

    from airflow import settings

    _executor_env(monkeypatch)

    @batch(cpu=2, platform="eks")
    def on_eks() -> None: ...

    @kubernetes(cpu=2)
    def on_k8s() -> None: ...

    with DAG("exec", schedule=None, start_date=START) as dag:
        task(on_k8s, executor="AwsBatchExecutor")()
        task(on_eks, executor="AwsBatchExecutor")()
    settings.task_policy(dag.get_task("on_k8s"))
    assert dag.get_task("on_k8s").executor_config == {}
    with pytest.raises(AllotmentError, match="runs on the AwsBatchExecutor, which submits no EKS jobs"):
        settings.task_policy(dag.get_task("on_eks"))


def test_executor_submits_the_config_to_moto(moto: MotoBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real AwsBatchExecutor, configured through the environment, submits the task's job to moto."""
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.providers.amazon.aws.executors.batch import AwsBatchExecutor

    worker = {"image": "busybox", "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
    moto.client.register_job_definition(jobDefinitionName="worker", type="container", containerProperties=worker)
    _executor_env(monkeypatch, moto.queue, moto.endpoint)
    task = _executor_tasks(cpu=8, memory="30Gi", gpu=2).get_task("decorated")
    executor = AwsBatchExecutor()
    key = TaskInstanceKey("exec", "decorated", "manual__test", 1, -1)
    executor.execute_async(key, ["airflow", "tasks", "run", "exec", "decorated"], executor_config=task.executor_config)
    executor.attempt_submit_jobs()
    (job_id,) = executor.active_workers.get_all_jobs()
    recorded = moto.recorded(job_id)["containerOverrides"]
    assert _requirements(moto.recorded(job_id)) == {"VCPU": "8", "MEMORY": "30720", "GPU": "2"}
    assert recorded["command"] == ["airflow", "tasks", "run", "exec", "decorated"]


# -- the portable DAG -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "KubernetesPodOperator"),
        ({"ALLOTMENT_WITH": "kubernetes:cpu=1"}, "KubernetesPodOperator"),
        ({"ALLOTMENT_WITH": "batch:memory=8Gi"}, "BatchOperator"),
        ({"ALLOTMENT_BACKEND": "batch"}, "BatchOperator"),
        ({"AIRFLOW__ALLOTMENT__BACKEND": "batch"}, "BatchOperator"),
        ({"ALLOTMENT_BACKEND": "local"}, "KubernetesPodOperator"),  # no Airflow operator for local: the fallback
    ],
)
def test_portable_dag_picks_the_operator_by_the_deployment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bag = dagbag(DAGS / "portable_training.py")
    assert bag.import_errors == {}
    dag = bag.dags["portable_training"]
    train = dag.get_task("train")
    assert type(train).__name__ == expected and type(train).__module__.startswith("allotment.airflow")
    assert dag.get_task("prepare").upstream_task_ids == set() and train.upstream_task_ids == {"prepare"}
    if expected == "BatchOperator":
        assert (train.job_queue, train.job_definition, train.job_name) == ("gpu-queue", "trainer", "train")
        assert train.container_overrides == {"command": ["python", "-m", "trainer.train"]}
    else:
        assert train.image.endswith("/trainer:1.2") and train.namespace == "ml"


def test_portable_dag_renders_batch_documents_under_a_batch_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.airflow.render import render
    from allotment.settings import load_settings

    monkeypatch.setenv("ALLOTMENT_WITH", "batch:memory=8Gi")
    documents = render([DAGS / "portable_training.py"], load_settings(cli={"policy": str(POLICY)}), {})
    by_task = {d["task_id"]: d for d in documents}
    train = by_task["train"]
    assert train["job_of"] == "BatchOperator" and train["platform"] == "ec2"
    assert train["submitJob"]["containerOverrides"] == {
        "command": ["python", "-m", "trainer.train"],
        "resourceRequirements": [{"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "32768"}, {"type": "GPU", "value": "1"}],
    }
    assert train["jobDefinitionFields"] == {"containerProperties": {"linuxParameters": {"sharedMemorySize": 8192}}}
    assert any("gpu_type 'H100'" in note for note in train["notes"])
    assert by_task["prepare"]["submitJob"]["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "8192"},
    ]
    for document in documents:
        assert validation_errors("SubmitJob", document["submitJob"]) == ""


def test_portable_task_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG
    from allotment.airflow import portable_task

    monkeypatch.setenv("ALLOTMENT_BACKEND", "batch")
    with DAG("p", schedule=None, start_date=START):
        with pytest.raises(AllotmentError, match="portable_task got 'retries' both in batch= and as a common argument"):
            portable_task(task_id="a", retries=1, batch={"job_definition": "d", "job_queue": "q", "retries": 2})
        with pytest.raises(AllotmentError, match=r"runs on AWS Batch here .* but portable_task got no batch= arguments"):
            portable_task(task_id="b", kubernetes={"image": "busybox"})

        @resources(cpu=2)
        @batch(queue="q", job_definition="d")
        def pinned() -> None: ...

        monkeypatch.setenv("ALLOTMENT_BACKEND", "kubernetes")
        op = portable_task(task_id="c", step=pinned, batch={}, kubernetes={"image": "busybox"})  # @batch pins it
        assert type(op).__name__ == "BatchOperator" and op.job_queue == "q"

        @resources(cpu=3, memory="6Gi")
        def unpinned() -> None: ...

        pod = portable_task(task_id="d", step=unpinned, batch={"job_definition": "d", "job_queue": "q"}, kubernetes={"image": "busybox"})
        assert type(pod).__name__ == "KubernetesPodOperator"
        assert pod_of(pod)["spec"]["containers"][0]["resources"] == {"limits": {"memory": "6Gi"}, "requests": {"cpu": "3", "memory": "6Gi"}}


def test_render_includes_batch_and_executor_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """render --target airflow: a BatchOperator's SubmitJob request and job-definition fields, an
    AwsBatchExecutor task's executor_config; the DAG parses and serializes as Airflow does it."""
    from airflow.serialization.serialized_objects import DagSerialization
    from allotment.airflow.render import render
    from allotment.settings import load_settings

    _executor_env(monkeypatch)
    write_dag(
        tmp_path,
        "mixed.py",
        """
        import pendulum
        from airflow.sdk import DAG, task
        from allotment import resources
        from allotment.airflow import BatchOperator

        @resources(cpu=2, memory="4Gi")
        def crunch():
            pass

        with DAG("mixed", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            BatchOperator(task_id="etl", job_queue="q", job_definition="etl", platform="fargate",
                          resources={"cpu": 0.3, "memory": 600, "disk": "30Gi"}, tags={"team": "data"})
            task(crunch, task_id="crunch", executor="AwsBatchExecutor")()
        """,
    )
    documents = {d["task_id"]: d for d in render([tmp_path], load_settings(env={}), {})}
    bag = dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["mixed"]
    restored = DagSerialization.deserialize_dag(json.loads(json.dumps(DagSerialization.serialize_dag(dag))))
    assert restored.get_task("crunch").executor_config == dag.get_task("crunch").executor_config == documents["crunch"]["executorConfig"]
    assert restored.get_task("etl").task_type == "BatchOperator"
    etl = documents["etl"]
    assert etl["job_of"] == "BatchOperator" and etl["platform"] == "fargate"
    assert etl["submitJob"] == {
        "jobName": "etl",
        "jobQueue": "q",
        "jobDefinition": "etl",
        "parameters": {},
        "tags": {"team": "data"},
        "containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}]},
    }
    assert etl["jobDefinitionFields"] == {"containerProperties": {"ephemeralStorage": {"sizeInGiB": 30}}}
    assert any("rounded up to VCPU 0.5" in note for note in etl["notes"])
    crunch = documents["crunch"]
    assert crunch["job_of"] == "AwsBatchExecutor worker"
    assert crunch["executorConfig"]["containerOverrides"]["resourceRequirements"][:2] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "4096"},
    ]


# -- real AWS (skipped without credentials) -------------------------------------------------


def test_real_aws_shared_memory_revision_and_submit(monkeypatch: pytest.MonkeyPatch) -> None:  # pragma: no cover - needs AWS
    queue = real_aws_queue("the BatchOperator")
    import boto3
    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import ExecutorSafeguard
    from allotment.airflow import BatchOperator

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)
    client = boto3.client("batch")
    base = f"allotment-test-{uuid.uuid4().hex[:8]}"
    client.register_job_definition(
        jobDefinitionName=base,
        type="container",
        containerProperties={
            "image": "public.ecr.aws/docker/library/busybox:latest",
            "command": ["df", "-h", "/dev/shm"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        },
    )
    job_ids: list[str] = []
    try:
        with DAG("aws", schedule=None, start_date=START) as dag:
            op = BatchOperator(task_id="train", job_queue=queue, job_definition=base, aws_conn_id=None, wait_for_completion=False,
                               resources={"cpu": 1, "memory": 1024, "shared_memory": 256})  # fmt: skip
        ti = SimpleNamespace(dag_id="aws", task_id="train", try_number=1, map_index=-1, xcom_push=lambda **kw: None)
        context = {"ti": ti, "run_id": "manual__test", "dag_run": SimpleNamespace(conf={}), "dag": dag}
        job_ids += [op.execute(context), op.execute(context)]
        derived = [
            d
            for page in client.get_paginator("describe_job_definitions").paginate(status="ACTIVE")
            for d in page["jobDefinitions"]
            if d["jobDefinitionName"].startswith(f"{base}-allot-")
        ]
        assert len(derived) == 1 and derived[0]["containerProperties"]["linuxParameters"]["sharedMemorySize"] == 256
        for job in client.describe_jobs(jobs=job_ids)["jobs"]:
            assert job["jobDefinition"] == derived[0]["jobDefinitionArn"]
    finally:
        for job_id in job_ids:
            client.terminate_job(jobId=job_id, reason="allotment test cleanup")
        for page in client.get_paginator("describe_job_definitions").paginate(status="ACTIVE"):
            for definition in page["jobDefinitions"]:
                if definition["jobDefinitionName"].startswith(base):
                    client.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])
