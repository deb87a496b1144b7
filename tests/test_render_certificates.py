"""cert-manager objects: the vendored cert-manager CRD schemas, and the objects rendered from a mesh."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from model_support import edited
from schema_support import CERT_MANAGER_SCHEMAS, cert_manager_schemas, validate_manifest

import sailplan
from sailplan.components.mesh_service import group_manifests
from sailplan.model.security import certificate_secret_name
from sailplan.render.certificates import IssuerRef, render_certificates
from sailplan.render.manifests import render_manifests

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


# -- the objects rendered from a mesh --------------------------------------------------------


def _mesh(edits: dict[str, Any] | None = None) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(edited(edits or {})))


def _cert_manager_objects(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["apiVersion"].startswith("cert-manager.io/")
    ]


def _hours(duration: str) -> float:
    match = re.fullmatch(r"(\d+)h", duration)
    assert match, f"{duration!r} is not a whole number of hours"
    return float(match.group(1))


def test_the_builtin_plane_gets_a_mesh_ca_and_a_certificate_per_identity() -> None:
    objects = render_manifests(_mesh())
    assert _cert_manager_objects(objects) == [
        ("Issuer", "demo-selfsigned"),
        ("Issuer", "demo-mesh-ca"),
        ("Certificate", "demo-mesh-ca"),
        ("Certificate", "service1"),
        ("Certificate", "service2"),
        ("Certificate", "demo-gateway"),
    ]
    for manifest in objects:
        validate_manifest(manifest)


def test_the_ca_is_bootstrapped_self_signed_and_keeps_its_key() -> None:
    objects = render_certificates(_mesh())
    selfsigned, ca, ca_issuer = objects[:3]
    assert selfsigned["spec"] == {"selfSigned": {}}
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"] == {
        "name": "demo-selfsigned",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    assert ca_issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    assert all(o["metadata"]["namespace"] == "demo" for o in objects)


def test_a_workload_certificate_carries_its_spiffe_id_and_dns_name_and_lives_a_day() -> None:
    objects = render_certificates(_mesh({"trustDomain": "prod.example.com"}))
    service1 = next(o for o in objects if o["metadata"]["name"] == "service1")
    assert service1["metadata"]["labels"]["app.kubernetes.io/name"] == "service1"
    assert service1["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}
    spec = service1["spec"]
    assert spec["uris"] == ["spiffe://prod.example.com/ns/demo/sa/service1"]
    # The same identity as the DNS name callers' sidecars check (`verifyhost`).
    assert spec["dnsNames"] == ["service1.demo.sa.prod.example.com"]
    assert spec["secretName"] == certificate_secret_name("service1") == "sailplan-cert-service1"
    assert spec["privateKey"] == {
        "algorithm": "ECDSA",
        "size": 256,
        "encoding": "PKCS8",
        "rotationPolicy": "Always",
    }
    assert spec["usages"] == ["digital signature", "server auth", "client auth"]
    assert spec["issuerRef"] == {
        "name": "demo-mesh-ca",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert _hours(spec["duration"]) == 24
    assert 0 < _hours(spec["renewBefore"]) < _hours(spec["duration"])
    gateway = objects[-1]
    assert gateway["spec"]["uris"] == ["spiffe://prod.example.com/ns/demo/sa/demo-gateway"]
    assert gateway["spec"]["dnsNames"] == ["demo-gateway.demo.sa.prod.example.com"]
    assert gateway["spec"]["secretName"] == "sailplan-cert-demo-gateway"
    assert gateway["metadata"]["labels"]["app.kubernetes.io/component"] == "ingress-gateway"


def test_a_named_issuer_replaces_the_bootstrapped_ca() -> None:
    issuer = IssuerRef("corp-ca", "ClusterIssuer")
    objects = render_manifests(_mesh(), certificate_issuer=issuer)
    assert _cert_manager_objects(objects) == [
        ("Certificate", "service1"),
        ("Certificate", "service2"),
        ("Certificate", "demo-gateway"),
    ]
    for manifest in objects:
        if manifest["kind"] == "Certificate":
            assert manifest["spec"]["issuerRef"] == {
                "name": "corp-ca",
                "kind": "ClusterIssuer",
                "group": "cert-manager.io",
            }
            validate_manifest(manifest)


@pytest.mark.parametrize(
    "edits",
    [{"mtls": "disable"}, {"dataPlane": "istio"}, {"dataPlane": "istio", "mtls": "strict"}],
    ids=["builtin-mtls-disable", "istio", "istio-strict"],
)
def test_no_certificates_without_builtin_mtls(edits: dict[str, Any]) -> None:
    # Istio's own CA (istiod) issues the istio plane's certificates.
    assert _cert_manager_objects(render_manifests(_mesh(edits))) == []


def test_certificates_group_with_the_workload_that_mounts_them() -> None:
    groups = group_manifests(render_manifests(_mesh()))
    assert ("Certificate", "service1") in _cert_manager_objects(groups.services["service1"])
    assert _cert_manager_objects(groups.ingress) == [("Certificate", "demo-gateway")]
    assert _cert_manager_objects(groups.mesh_wide) == [
        ("Issuer", "demo-selfsigned"),
        ("Issuer", "demo-mesh-ca"),
        ("Certificate", "demo-mesh-ca"),
    ]
