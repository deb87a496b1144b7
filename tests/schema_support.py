"""Strict validation of rendered manifests against the real schemas.

Core kinds: kubernetes-validate in strict mode (unknown fields are errors). Istio kinds: the
`openAPIV3Schema` of the matching CRD version, vendored from Istio 1.30.3 into
third_party/schemas/istio-1.30.3/ (see its README), made strict the way the API server treats
structural schemas (unknown fields would be pruned, so we reject them), plus the CEL rules that
matter for what we render (durations >= 1ms, port ranges). cert-manager kinds: the same, from
cert-manager 1.21.1's CRDs in third_party/schemas/cert-manager-1.21.1/. A missing schema fails the
test: it never skips.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
from conftest import REPO

ISTIO_SCHEMAS = REPO / "third_party" / "schemas" / "istio-1.30.3"
CERT_MANAGER_SCHEMAS = REPO / "third_party" / "schemas" / "cert-manager-1.21.1"
KUBERNETES_VERSION = (
    "1.30.0"  # native sidecars (restartPolicy: Always in initContainers) are GA-ready here
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_GO_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _duration_ms(text: str) -> float:
    return sum(
        float(number) * _GO_UNITS[unit]
        for number, _, unit in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    )


def _cel(validator: Any, rules: list[dict[str, Any]], instance: Any, schema: Any) -> Any:
    for rule in rules:
        text = rule.get("rule", "")
        if text == "duration(self) >= duration('1ms')":
            if not isinstance(instance, str) or not _GO_DURATION.match(instance):
                yield jsonschema.ValidationError(f"{instance!r} is not a valid duration")
            elif _duration_ms(instance) < 1:
                yield jsonschema.ValidationError(f"{instance!r}: {rule.get('message', text)}")
        elif text == "0 < self && self <= 65535":
            if not 0 < instance <= 65535:
                yield jsonschema.ValidationError(f"{instance!r}: {rule.get('message', text)}")
        elif text == "self.all(key, key.size() != 0)" and any(len(key) == 0 for key in instance):
            yield jsonschema.ValidationError(f"empty key: {rule.get('message', text)}")
        # Other rules concern kinds and fields sailplan does not render.


_StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-validations": _cel}
)


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def istio_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema for every served version of every Istio CRD."""
    return _crd_schemas(ISTIO_SCHEMAS, "Istio")


@functools.cache
def cert_manager_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema for every served cert-manager.io CRD version."""
    return _crd_schemas(CERT_MANAGER_SCHEMAS, "cert-manager")


def _crd_schemas(folder: Any, project: str) -> dict[tuple[str, str], dict[str, Any]]:
    files = sorted(folder.glob("*.json"))
    assert files, f"no vendored {project} CRD schemas in {folder}: see scripts/vendor_schemas.py"
    schemas = {}
    for path in files:
        crd = json.loads(path.read_text(encoding="utf-8"))
        for version in crd["versions"]:
            if version["served"]:
                schema = version["openAPIV3Schema"]
                # metadata is validated by the API server itself, not by the CRD schema.
                schema["properties"].pop("metadata", None)
                schemas[(f"{crd['group']}/{version['name']}", crd["kind"])] = _strict(schema)
    return schemas


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise AssertionError with a readable reason when `manifest` would not be accepted."""
    name = manifest.get("metadata", {}).get("name", "")
    where = f"{manifest.get('kind')}/{name}"
    assert _DNS_SUBDOMAIN.match(name) and len(name) <= 253, f"{where}: invalid metadata.name"
    api_version = manifest["apiVersion"]
    crds = None
    if ".istio.io/" in api_version:
        crds, project = istio_schemas(), "Istio"
    elif api_version.startswith("cert-manager.io/"):
        crds, project = cert_manager_schemas(), "cert-manager"
    if crds is not None:
        schema = crds.get((api_version, manifest["kind"]))
        assert schema is not None, f"{where}: {project} serves no {api_version} {manifest['kind']}"
        extra = set(manifest) - {"apiVersion", "kind", "metadata", "spec"}
        assert not extra, f"{where}: unknown top-level fields {sorted(extra)}"
        body = {"spec": manifest.get("spec", {})}
        errors = sorted(_StrictValidator(schema).iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
        )
        return
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.path))
        raise AssertionError(f"{where}: {path}: {error.message}") from None
