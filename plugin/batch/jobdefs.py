"""Job-definition revisions that carry what AWS Batch cannot take at submit (docs/design.md, "AWS Batch").

``linuxParameters.sharedMemorySize`` (EC2), ``ephemeralStorage`` (Fargate) and the EKS
``/dev/shm`` volume live only in a job definition. From the user's base job definition (its
latest ACTIVE revision, or the revision named), allotment derives a definition that also
carries those fields, names it by a hash of its content, ``<base>-allot-<12 hex>``, and
registers it only when no identical ACTIVE revision exists, so registering twice with the
same spec makes one revision.

Concurrent callers (many tasks of one DAG run starting at once) settle on one revision too.
AWS has no conditional registration, so two callers that both find none both register; each
then describes again, and every caller uses the **lowest** ACTIVE revision with the content
digest. A caller whose own new revision is not that one deregisters it (it is the duplicate;
nobody else uses it, since every caller picks the lowest) and says so in a note. Revision
numbers grow with time, so the lowest is registered before any duplicate and each racer sees
it when it describes after its own registration: the race ends with one ACTIVE revision per
content digest. (Where DescribeJobDefinitions lags behind a registration, as an eventually
consistent read may, a duplicate can stay ACTIVE; it is identical, and later calls use the
lowest.)

No boto3 import: :func:`ensure_job_definition` takes any client with boto3's
``describe_job_definitions``, ``register_job_definition`` and ``deregister_job_definition``
methods.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..errors import AllotmentError
from ..targets import SHM_PATH, SHM_VOLUME
from .compile import BatchPlan

__all__ = [
    "DIGEST_TAG",
    "NAME_MARK",
    "READ_ONLY_FIELDS",
    "REGISTER_FIELDS",
    "BatchClient",
    "DerivedJobDefinition",
    "JobDefinitionRef",
    "derive_job_definition",
    "describe_base",
    "ensure_job_definition",
    "registration_request",
]

REGISTER_FIELDS: Final = (
    "jobDefinitionName",
    "type",
    "parameters",
    "schedulingPriority",
    "containerProperties",
    "nodeProperties",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "tags",
    "platformCapabilities",
    "eksProperties",
    "ecsProperties",
    "consumableResourceProperties",
)
"""Members of a RegisterJobDefinition request (botocore's Batch model, 2016-08-10; a test compares)."""

READ_ONLY_FIELDS: Final = ("jobDefinitionArn", "revision", "status", "containerOrchestrationType")
"""Members DescribeJobDefinitions returns that a registration cannot take."""

NAME_MARK: Final = "-allot-"
DIGEST_TAG: Final = "allotment:digest"
BASE_TAG: Final = "allotment:base"
_MAX_NAME: Final = 128
_DIGEST_LEN: Final = 12


class BatchClient(Protocol):
    """What allotment uses of a boto3 Batch client."""

    def describe_job_definitions(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def register_job_definition(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def deregister_job_definition(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class DerivedJobDefinition:
    """A job definition derived from a base: its name, content digest and RegisterJobDefinition request."""

    name: str
    digest: str
    request: Mapping[str, Any]
    base: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobDefinitionRef:
    """The job definition to submit with.

    ``job_definition``: what SubmitJob takes (the revision's ARN; the base as given when no
    field needed a revision). ``registered``: this call registered a new revision.
    ``derived``: a derived revision is used at all.
    """

    job_definition: str
    name: str
    revision: int | None = None
    registered: bool = False
    derived: bool = False
    digest: str | None = None
    notes: tuple[str, ...] = ()


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def registration_request(described: Mapping[str, Any]) -> dict[str, Any]:
    """A RegisterJobDefinition request from a described job definition: read-only members
    (ARN, revision, status, orchestration type) and unknown ones dropped, ``None`` values
    dropped, AWS-reserved ``aws:`` tags and allotment's own tags dropped. A deep copy."""
    request = {k: copy.deepcopy(v) for k, v in described.items() if k in REGISTER_FIELDS and v is not None}
    request = {k: _drop_none(v) for k, v in request.items()}
    tags = {k: v for k, v in (request.get("tags") or {}).items() if not k.startswith("aws:") and k not in (DIGEST_TAG, BASE_TAG)}
    if tags:
        request["tags"] = tags
    else:
        request.pop("tags", None)
    return request


def _error(problem: str, base: str, step: str | None, accepted: str) -> AllotmentError:
    return AllotmentError(problem, step=step, field="job_definition", value=base, accepted=accepted)


def _check_platform(request: Mapping[str, Any], platform: str, base: str, step: str | None) -> None:
    if "nodeProperties" in request:
        raise _error("is a multi-node parallel job definition", base, step, "use a single-node container job definition as the base")
    capabilities = list(request.get("platformCapabilities") or [])
    if platform == "eks":
        if "eksProperties" not in request:
            raise _error("has no eksProperties, so it is not an EKS job definition", base, step, "use platform 'ec2' or 'fargate' for it")
        return
    if "containerProperties" not in request:
        kind = "an EKS job definition" if "eksProperties" in request else "not a container job definition"
        raise _error(f"is {kind} (no containerProperties)", base, step, "use platform 'eks' for an EKS job definition")
    if platform == "fargate" and "FARGATE" not in capabilities:
        raise _error(
            "is not a Fargate job definition (platformCapabilities lacks FARGATE)", base, step, "use platform 'ec2', or a Fargate base"
        )
    if platform == "ec2" and "FARGATE" in capabilities:
        raise _error("is a Fargate job definition (platformCapabilities FARGATE)", base, step, "use platform 'fargate' for it")


def _merge_container(
    request: dict[str, Any], fields: Mapping[str, Any], base: str, step: str | None, notes: list[str], path: str = "containerProperties"
) -> None:
    """Set allotment's scalar fields in the (nested) containerProperties; note each value replaced."""
    for key, ours in fields.items():
        where = f"{path}.{key}"
        if isinstance(ours, Mapping):
            current = request.get(key)
            if current is None:
                current = request[key] = {}
            elif not isinstance(current, dict):
                raise _error(f"has {where}={current!r}, not an object", base, step, "fix the base job definition")
            _merge_container(current, ours, base, step, notes, where)
        else:
            previous = request.get(key)
            if previous is not None and previous != ours:
                notes.append(f"{where} {previous!r} of the base job definition {base!r} replaced by {ours!r} from the spec")
            request[key] = copy.deepcopy(ours)


def _merge_eks(
    request: dict[str, Any], fields: Mapping[str, Any], base: str, step: str | None, container: str | None, notes: list[str]
) -> None:
    pod = request["eksProperties"].setdefault("podProperties", {})
    containers = pod.get("containers") or []
    if not containers:
        raise _error("has no containers in eksProperties.podProperties", base, step, "fix the base job definition")
    if container is None:
        target = containers[0]
    else:
        target = next((c for c in containers if c.get("name") == container), None)
        if target is None:
            names = ", ".join(repr(c.get("name")) for c in containers)
            raise _error(f"has no container named {container!r}", base, step, f"its containers are {names}")
    our_pod = fields["podProperties"]
    (volume,) = our_pod["volumes"]
    (mount,) = our_pod["containers"][0]["volumeMounts"]
    volumes = pod.setdefault("volumes", [])
    mounts = target.setdefault("volumeMounts", [])
    at_shm = next((m for m in mounts if m.get("mountPath") == SHM_PATH), None)
    if at_shm is not None:
        theirs = next((v for v in volumes if v.get("name") == at_shm.get("name")), None)
        empty_dir = (theirs or {}).get("emptyDir")
        if theirs is None or not isinstance(empty_dir, dict) or empty_dir.get("medium") != "Memory":
            raise _error(
                f"mounts volume {at_shm.get('name')!r} at {SHM_PATH} that is not an emptyDir of medium Memory",
                base,
                step,
                "drop that mount from the base job definition (shared_memory sizes /dev/shm), or drop shared_memory",
            )
        size = volume["emptyDir"]["sizeLimit"]
        if empty_dir.get("sizeLimit") != size:
            notes.append(
                f"/dev/shm volume {theirs['name']!r} of the base job definition {base!r}: sizeLimit {empty_dir.get('sizeLimit')!r} "
                f"replaced by {size!r} from the spec"
            )
            empty_dir["sizeLimit"] = size
        return
    clash = next((v for v in volumes if v.get("name") == volume["name"]), None)
    if clash is not None:
        raise _error(
            f"has a volume named {volume['name']!r} not mounted at {SHM_PATH}",
            base,
            step,
            f"rename that volume; allotment adds {SHM_VOLUME!r} for shared_memory",
        )
    volumes.append(copy.deepcopy(volume))
    mounts.append(copy.deepcopy(mount))


def _digest(request: Mapping[str, Any]) -> str:
    content = {k: v for k, v in request.items() if k != "jobDefinitionName"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_LEN]


def derive_job_definition(
    base: Mapping[str, Any],
    fields: Mapping[str, Any],
    *,
    platform: str,
    step: str | None = None,
    container: str | None = None,
) -> DerivedJobDefinition:
    """The job definition ``base`` (as DescribeJobDefinitions returns it) with ``fields`` (a
    :attr:`BatchPlan.job_definition_fields`) merged in, named ``<base>-allot-<digest>``.

    Scalars from the spec replace the base's (noted); on ``eks`` the shared-memory volume is added
    and mounted at ``/dev/shm`` in ``container`` (default: the first), or an existing
    ``emptyDir`` Memory volume at ``/dev/shm`` is resized. A base of the wrong platform, a
    multi-node base, or a ``/dev/shm`` mount that is no memory ``emptyDir`` is an error.
    """
    request = registration_request(base)
    base_name = str(request.get("jobDefinitionName") or "")
    revision = base.get("revision")
    label = f"{base_name}:{revision}" if revision is not None else base_name
    if not base_name:
        raise _error("has no jobDefinitionName", label, step, "pass a job definition as DescribeJobDefinitions returns it")
    _check_platform(request, platform, label, step)
    notes: list[str] = []
    for key, ours in fields.items():
        if key == "containerProperties":
            _merge_container(request["containerProperties"], ours, label, step, notes)
        elif key == "eksProperties":
            _merge_eks(request, ours, label, step, container, notes)
        else:
            raise AllotmentError(f"cannot merge job-definition field {key!r}", step=step, accepted="containerProperties or eksProperties")
    digest = _digest(request)
    name = f"{base_name[: _MAX_NAME - len(NAME_MARK) - _DIGEST_LEN]}{NAME_MARK}{digest}"
    request["jobDefinitionName"] = name
    request["tags"] = {**request.get("tags", {}), DIGEST_TAG: digest, BASE_TAG: label[:256]}
    return DerivedJobDefinition(name=name, digest=digest, request=request, base=label, notes=tuple(notes))


def _describe_all(client: BatchClient, **kwargs: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    token: str | None = None
    while True:
        page = client.describe_job_definitions(**kwargs, **({"nextToken": token} if token else {}))
        found += list(page.get("jobDefinitions") or [])
        token = page.get("nextToken")
        if not token:
            return found


def describe_base(client: BatchClient, job_definition: str, *, step: str | None = None) -> Mapping[str, Any]:
    """The base job definition: for a bare name its latest ACTIVE revision; for ``name:revision``
    or an ARN that revision."""
    if job_definition.startswith("arn:") or ":" in job_definition:
        found = _describe_all(client, jobDefinitions=[job_definition])
    else:
        found = _describe_all(client, jobDefinitionName=job_definition, status="ACTIVE")
        found = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
    if not found:
        raise AllotmentError(
            "names no ACTIVE job definition",
            step=step,
            field="job_definition",
            value=job_definition,
            accepted="register the base job definition first, or name an existing one with @batch(job_definition=...)",
        )
    return max(found, key=lambda d: int(d.get("revision") or 0))


def _same_content(described: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    ours = {k: v for k, v in request.items() if k != "tags"}
    theirs = {k: v for k, v in registration_request(described).items() if k != "tags"}
    return ours == theirs


def _revision_key(described: Mapping[str, Any]) -> tuple[int, str]:
    return int(described.get("revision") or 0), str(described.get("jobDefinitionArn") or "")


def _matching(client: BatchClient, derived: DerivedJobDefinition) -> list[Mapping[str, Any]]:
    """The ACTIVE revisions of ``derived``'s name that carry its content (by digest tag or by content)."""
    return [
        d
        for d in _describe_all(client, jobDefinitionName=derived.name, status="ACTIVE")
        if d.get("status", "ACTIVE") == "ACTIVE"
        and ((d.get("tags") or {}).get(DIGEST_TAG) == derived.digest or _same_content(d, derived.request))
    ]


def _reference(
    described: Mapping[str, Any], derived: DerivedJobDefinition, *, registered: bool, notes: tuple[str, ...]
) -> JobDefinitionRef:
    return JobDefinitionRef(
        job_definition=str(described["jobDefinitionArn"]),
        name=str(described.get("jobDefinitionName", derived.name)),
        revision=int(described["revision"]),
        registered=registered,
        derived=True,
        digest=derived.digest,
        notes=notes,
    )


def ensure_job_definition(client: BatchClient, job_definition: str, plan: BatchPlan, *, container: str | None = None) -> JobDefinitionRef:
    """The job definition to submit ``plan`` with.

    When the plan needs no job-definition field, ``job_definition`` as given (no API call).
    Otherwise the base is described, the derived definition computed, and the lowest ACTIVE
    revision with the same content digest reused; only when none exists is it registered. After
    registering, the revisions are described again: if a concurrent caller registered the same
    content first, its (lower) revision is used and this call's duplicate deregistered (see the
    module's notes), so ``registered`` is True only for the revision that stays.
    """
    if not plan.needs_job_definition:
        return JobDefinitionRef(job_definition=job_definition, name=job_definition)
    base = describe_base(client, job_definition, step=plan.step)
    derived = derive_job_definition(base, plan.job_definition_fields, platform=plan.platform, step=plan.step, container=container)
    existing = _matching(client, derived)
    if existing:
        return _reference(min(existing, key=_revision_key), derived, registered=False, notes=derived.notes)
    response = client.register_job_definition(**copy.deepcopy(dict(derived.request)))
    ours = {**response, "jobDefinitionName": response.get("jobDefinitionName", derived.name)}
    # No conditional register in AWS: settle on the lowest revision with this content.
    lowest = min([*_matching(client, derived), ours], key=_revision_key)
    if _revision_key(lowest) >= _revision_key(ours):
        return _reference(ours, derived, registered=True, notes=derived.notes)
    note = (
        f"job definition {derived.name}: revision {lowest['revision']} with the same content was registered concurrently "
        f"and is used; this call's duplicate revision {ours['revision']}"
    )
    try:
        client.deregister_job_definition(jobDefinition=str(ours["jobDefinitionArn"]))
    except Exception as e:  # no boto3 import here; e.g. botocore's ClientError without DeregisterJobDefinition permission
        note = f"{note} could not be deregistered ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    else:
        note = f"{note} was deregistered"
    return _reference(lowest, derived, registered=False, notes=(*derived.notes, note))
