"""cert-manager objects: the vendored cert-manager CRD schemas, and the objects rendered from a mesh."""

from __future__ import annotations

import json
from typing import Any

import pytest
from schema_support import CERT_MANAGER_SCHEMAS, cert_manager_schemas, validate_manifest

# sha256 of deploy/crds/cert-manager.io_certificates.yaml at cert-manager v1.21.1.
CERTIFICATES_SOURCE_SHA256 = "7ad91029c00ec959d54215b19d3b1a9b7e0247eaa60f987151c2b70d8661f8af"


def _certificate(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "reviews", "namespace": "demo"},
        "spec": {
            "secretName": "reviews-tls",
            "issuerRef": {"name": "mesh-ca", "kind": "Issuer", "group": "cert-manager.io"},
            "uris": ["spiffe://cluster.local/ns/demo/sa/reviews"],
            **spec,
        },
    }


def test_the_vendored_cert_manager_schemas_name_their_pinned_source() -> None:
    readme = (CERT_MANAGER_SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "tag `v1.21.1`" in readme
    assert CERTIFICATES_SOURCE_SHA256 in readme
    license_text = (CERT_MANAGER_SCHEMAS / "LICENSE").read_text(encoding="utf-8")
    assert license_text.lstrip().startswith("Apache License")


def test_the_vendored_cert_manager_schemas_cover_every_kind_sailplan_renders() -> None:
    served = set(cert_manager_schemas())
    for kind in ("Certificate", "Issuer", "ClusterIssuer"):
        assert ("cert-manager.io/v1", kind) in served


def test_the_vendored_cert_manager_schemas_carry_facts_not_prose() -> None:
    text = (CERT_MANAGER_SCHEMAS / "certificates.cert-manager.io.json").read_text(encoding="utf-8")
    assert '"description":"' not in text
    spec = json.loads(text)["versions"][0]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["issuerRef", "secretName"]
    assert "client auth" in spec["properties"]["usages"]["items"]["enum"]


def test_a_valid_certificate_passes() -> None:
    validate_manifest(_certificate(usages=["server auth", "client auth"]))


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (_certificate(bogus=1), "Additional properties are not allowed ('bogus' was unexpected)"),
        (_certificate(usages=["server-auth"]), "spec.usages.0: 'server-auth' is not one of"),
        (_certificate(privateKey={"algorithm": "DSA"}), "spec.privateKey.algorithm: 'DSA'"),
        (
            {**_certificate(), "spec": {"issuerRef": {"name": "ca"}}},
            "'secretName' is a required property",
        ),
        (
            {**_certificate(), "apiVersion": "cert-manager.io/v1alpha2"},
            "cert-manager serves no cert-manager.io/v1alpha2 Certificate",
        ),
    ],
    ids=["unknown-field", "unknown-usage", "unknown-algorithm", "no-secret", "old-version"],
)
def test_invalid_cert_manager_objects_are_rejected_with_a_reason(
    manifest: dict[str, Any], reason: str
) -> None:
    with pytest.raises(AssertionError) as error:
        validate_manifest(manifest)
    assert reason in str(error.value)
