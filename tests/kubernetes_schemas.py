"""Validation of Kubernetes objects for the tests: custom resources against the pinned agent-sandbox CRDs' v1beta1
openAPIV3Schema (read in place from ../shared/datasets/agent-sandbox-crds/), core objects against Kubernetes' own
JSON schemas as kubernetes-validate ships them, both strict: an unknown field is an error, as under the API
server's `fieldValidation=Strict` (what `kubectl apply --validate=strict` asks for)."""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT.parent / "shared" / "datasets" / "agent-sandbox-crds"
CRD_FILES = {"Sandbox": "agents.x-k8s.io_sandboxes.yaml",
             "SandboxTemplate": "extensions.agents.x-k8s.io_sandboxtemplates.yaml",
             "SandboxWarmPool": "extensions.agents.x-k8s.io_sandboxwarmpools.yaml",
             "SandboxClaim": "extensions.agents.x-k8s.io_sandboxclaims.yaml"}
# The newest Kubernetes release whose schemas kubernetes-validate carries.
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
_INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # RFC 3339 as the API server reads it: a date, "T", a time and a zone.
    return not isinstance(value, str) or ("T" in value and datetime.fromisoformat(value).tzinfo is not None)


for _name, (_low, _high) in _INT_RANGES.items():
    FORMATS.checks(_name)(lambda value, low=_low, high=_high: not isinstance(value, int) or low <= value <= high)


def _strict(schema: Any) -> Any:
    """A structural schema with unknown fields refused: every object that lists its properties, keeps no unknown
    fields (x-kubernetes-preserve-unknown-fields) and has no additionalProperties gets additionalProperties false."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd(kind: str) -> dict[str, Any]:
    with (CRD_DIR / CRD_FILES[kind]).open() as file:
        return yaml.safe_load(file)


@functools.cache
def crd_schema(kind: str, version: str = "v1beta1") -> dict[str, Any]:
    """The version's openAPIV3Schema from the pinned CRD, made strict."""
    versions = {entry["name"]: entry for entry in crd(kind)["spec"]["versions"]}
    return _strict(versions[version]["schema"]["openAPIV3Schema"])


def validate_custom(obj: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError unless `obj` is a valid agent-sandbox object of the version it names."""
    definition = crd(obj["kind"])
    group, _, version = obj["apiVersion"].partition("/")
    assert group == definition["spec"]["group"], f"{obj['kind']} belongs to {definition['spec']['group']}"
    jsonschema.Draft202012Validator(crd_schema(obj["kind"], version), format_checker=FORMATS).validate(obj)
    validate_core({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]})  # metadata: ObjectMeta


def validate_core(obj: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError unless `obj` is a valid core object (strict schemas)."""
    kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES_VERSION, strict=True)


def validate_pod_spec(spec: dict[str, Any]) -> None:
    """A PodSpec, validated as the spec of a Pod."""
    validate_core({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": spec})


def validate(obj: dict[str, Any]) -> None:
    """Either kind, by its apiVersion; a template's pod spec is also checked against core/v1 PodSpec."""
    if obj["kind"] in CRD_FILES:
        validate_custom(obj)
        if obj["kind"] == "SandboxTemplate":
            validate_pod_spec(obj["spec"]["podTemplate"]["spec"])
    else:
        validate_core(obj)
