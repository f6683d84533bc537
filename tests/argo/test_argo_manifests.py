"""Every rendered manifest is a valid Argo object, and every template's pod is a valid Pod.

- each manifest validates against the Argo JSON schema (tests/data/argo-schema, Draft 7);
- every quantity in a template's ``resources`` and ``sizeLimit`` is a literal Kubernetes
  quantity (Argo's controller decodes them as such and rejects ``{{...}}`` there);
- each template's main container and volumes, in a Pod, with its podSpecPatch applied after
  substituting the parameters' defaults (and ``retries`` for every attempt its retryStrategy
  allows), pass kubernetes-validate strict for the newest Kubernetes it knows and the docs/design.md §3
  rules (:func:`k8s_rules.pod_problems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from allotment.argo.render import render
from allotment.quantity import parse_quantity
from allotment.settings import load_settings
from argo_support import K8S_VERSION, WORKFLOWS, argo_errors, parameter_defaults, pod_for, pod_templates
from k8s_rules import pod_problems

EXAMPLES = sorted(WORKFLOWS.glob("*.py"))


def _documents(path: Path) -> list[dict[str, Any]]:
    return render([path], load_settings(cli={}, env={}), {})


def test_k8s_version_is_a_current_one() -> None:
    major, minor, *_ = (int(p) for p in K8S_VERSION.split("."))
    assert (major, minor) >= (1, 33)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_manifests_validate_against_the_argo_schema(path: Path) -> None:
    for document in _documents(path):
        assert argo_errors(document) == []


def test_schema_catches_a_broken_manifest() -> None:
    document = _documents(EXAMPLES[0])[0]
    broken = {**document, "spec": {**document["spec"], "entrypoint": 3}}
    if document["kind"] == "CronWorkflow":
        broken = {**document, "spec": {**document["spec"], "schedules": "0 2 * * *"}}
    assert argo_errors(broken)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_template_quantities_are_literal(path: Path) -> None:
    for document in _documents(path):
        for template in pod_templates(document):
            body = template.get("container") or template["script"]
            for section in body.get("resources", {}).values():
                for value in section.values():
                    parse_quantity(value)
            for volume in template.get("volumes", []):
                if "sizeLimit" in volume.get("emptyDir", {}):
                    parse_quantity(volume["emptyDir"]["sizeLimit"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_template_pod_is_valid_for_every_attempt(path: Path) -> None:
    checked = 0
    for document in _documents(path):
        parameters = parameter_defaults(document)
        for template in pod_templates(document):
            attempts = int(template.get("retryStrategy", {}).get("limit", 0)) + 1
            for retries in range(attempts):
                pod = pod_for(template, parameters, retries)
                kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
                assert pod_problems(pod) == [], (template["name"], retries)
                checked += 1
    assert checked
