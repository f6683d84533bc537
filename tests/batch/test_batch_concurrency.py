"""Concurrent job-definition registration (issue 9): callers racing for the same spec against a
moto server through the real boto3 client end with one ACTIVE revision per content digest, and
every caller submits with it.

AWS has no conditional RegisterJobDefinition, so the race is real: two callers that both describe
before either registers both register. Two forms of the race run here: callers released together
(the race as it happens, which made two revisions in 7 of 10 rounds before the fix), and a forced
one, where every caller's lookup of the derived name waits until all have looked, so that every
caller registers its own revision and the settling afterwards is what is tested."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from allotment.batch import compile_batch
from allotment.batch.jobdefs import DIGEST_TAG, NAME_MARK, JobDefinitionRef, ensure_job_definition, registration_request
from batch_support import base, moto_server, resolved_of

pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server")
    with moto_server() as url:
        yield url


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "batch", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


class _LookupsTogether:
    """A boto3 client whose first lookup of a derived (``-allot-``) name waits until ``callers``
    callers have made theirs: all of them then find nothing and all register."""

    def __init__(self, client: Any, barrier: threading.Barrier) -> None:
        self._client = client
        self._barrier = barrier
        self._waited = False

    def describe_job_definitions(self, **kwargs: Any) -> Any:
        page = self._client.describe_job_definitions(**kwargs)
        if NAME_MARK in str(kwargs.get("jobDefinitionName", "")) and not self._waited:
            self._waited = True
            self._barrier.wait(timeout=30)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _base_definition(endpoint: str, name: str) -> None:
    request = registration_request(base("ec2"))
    request["jobDefinitionName"] = name
    _client(endpoint).register_job_definition(**request)


def _race(endpoint: str, base_name: str, callers: int, *, forced: bool, shared_memory: int) -> list[JobDefinitionRef]:
    plan = compile_batch(resolved_of("train", memory=16384, shared_memory=shared_memory), "ec2")
    start = threading.Barrier(callers)
    lookups = threading.Barrier(callers)

    def one(_: int) -> JobDefinitionRef:
        client: Any = _client(endpoint)
        if forced:
            client = _LookupsTogether(client, lookups)
        start.wait(timeout=30)
        return ensure_job_definition(client, base_name, plan)

    with ThreadPoolExecutor(callers) as pool:
        return list(pool.map(one, range(callers)))


def _active(endpoint: str, name: str) -> list[dict[str, Any]]:
    found = _client(endpoint).describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    return sorted(found, key=lambda d: d["revision"])


def _check_settled(endpoint: str, refs: list[JobDefinitionRef]) -> None:
    names = {r.name for r in refs}
    assert len(names) == 1
    (active,) = _active(endpoint, names.pop())  # one ACTIVE revision per content digest
    assert {r.job_definition for r in refs} == {active["jobDefinitionArn"]}
    assert active["tags"][DIGEST_TAG] == refs[0].digest
    assert sum(r.registered for r in refs) <= 1


@pytest.mark.parametrize("callers", [2, 8])
def test_forced_race_settles_on_the_lowest_revision_and_deregisters_the_duplicates(endpoint: str, callers: int) -> None:
    base_name = f"race-forced-{callers}"
    _base_definition(endpoint, base_name)
    refs = _race(endpoint, base_name, callers, forced=True, shared_memory=1024)
    _check_settled(endpoint, refs)
    (winner,) = [r for r in refs if r.registered]  # exactly one caller's revision stays
    assert winner.revision == min(r.revision or 0 for r in refs)
    all_revisions = _client(endpoint).describe_job_definitions(jobDefinitionName=winner.name)["jobDefinitions"]
    assert len(all_revisions) == callers  # every caller did register: the race happened
    assert sorted(d["status"] for d in all_revisions) == ["ACTIVE"] + ["INACTIVE"] * (callers - 1)
    losers = [r for r in refs if not r.registered]
    assert all(
        any(
            n.startswith(f"job definition {winner.name}: revision {winner.revision} with the same content")
            and n.endswith("was deregistered")
            for n in r.notes
        )
        for r in losers
    )
    # A later caller reuses it without registering.
    again = ensure_job_definition(
        _client(endpoint), base_name, compile_batch(resolved_of("train", memory=16384, shared_memory=1024), "ec2")
    )
    assert not again.registered and again.job_definition == winner.job_definition


@pytest.mark.parametrize("callers", [2, 8])
def test_callers_released_together_end_with_one_revision(endpoint: str, callers: int) -> None:
    for round_ in range(10):
        base_name = f"race-free-{callers}-{round_}"
        _base_definition(endpoint, base_name)
        refs = _race(endpoint, base_name, callers, forced=False, shared_memory=2048)
        _check_settled(endpoint, refs)


def test_a_duplicate_that_cannot_be_deregistered_is_reported_and_the_lowest_used() -> None:
    """Without DeregisterJobDefinition permission the duplicate stays, and the note says so."""

    class NoDeregister:
        def __init__(self) -> None:
            self.definitions: list[dict[str, Any]] = []

        def describe_job_definitions(self, **kwargs: Any) -> dict[str, Any]:
            name = kwargs.get("jobDefinitionName")
            if NAME_MARK in str(name) and len(self.definitions) == 1:  # the first lookup: someone else registers meanwhile
                self.register_job_definition(**self._pending)
                return {"jobDefinitions": []}
            return {"jobDefinitions": [d for d in self.definitions if d["jobDefinitionName"] == name and d["status"] == "ACTIVE"]}

        def register_job_definition(self, **request: Any) -> dict[str, Any]:
            name = request["jobDefinitionName"]
            revision = 1 + sum(d["jobDefinitionName"] == name for d in self.definitions)
            arn = f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}:{revision}"
            self.definitions.append(dict(request, jobDefinitionArn=arn, revision=revision, status="ACTIVE"))
            return {"jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision}

        def deregister_job_definition(self, **kwargs: Any) -> dict[str, Any]:
            raise PermissionError("AccessDeniedException: not authorized to perform batch:DeregisterJobDefinition")

    fake = NoDeregister()
    described = base("ec2")
    fake.definitions.append(described)
    plan = compile_batch(resolved_of("train", shared_memory=1024), "ec2")
    from allotment.batch.jobdefs import derive_job_definition

    fake._pending = dict(derive_job_definition(described, plan.job_definition_fields, platform="ec2").request)  # type: ignore[attr-defined]
    ref = ensure_job_definition(fake, "trainer", plan)
    assert ref.revision == 1 and not ref.registered
    assert ref.notes[-1] == (
        f"job definition {ref.name}: revision 1 with the same content was registered concurrently and is used; this call's "
        "duplicate revision 2 could not be deregistered (PermissionError: AccessDeniedException: not authorized to perform "
        "batch:DeregisterJobDefinition)"
    )
