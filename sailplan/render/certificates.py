"""cert-manager objects for the builtin plane's mTLS: a mesh CA and a certificate per identity.

Each identity (a service's ServiceAccount, and the builtin ingress gateway's) gets a
`cert-manager.io/v1` Certificate naming its SPIFFE ID (a URI SAN, as Istio's workload
certificates carry) and the same identity as a DNS name (`identity_dns_name`:
`<serviceaccount>.<namespace>.sa.<trustDomain>`, which callers check during the handshake),
issued into the Secret `certificate_secret_name(<workload>)` that the sidecar mounts.
cert-manager writes `tls.crt`, `tls.key` and the issuing CA's `ca.crt` there and renews them
before they expire; the sidecar picks the renewed files up without dropping a request.

The CA, unless the user names an issuer of their own, is bootstrapped in the mesh's namespace as
cert-manager documents it: a self-signed Issuer signs a CA Certificate, whose Secret backs a CA
Issuer that signs the workload certificates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sailplan import constants as c
from sailplan.model import Mesh
from sailplan.model.ingress import ingress_certificate_name
from sailplan.model.security import (
    certificate_secret_name,
    gateway_service_account,
    service_identity,
    spiffe_id,
    workload_dns_name,
)
from sailplan.render.istio import ingress_labels
from sailplan.render.kubernetes import mesh_labels, metadata, service_labels

API_VERSION = "cert-manager.io/v1"
GROUP = "cert-manager.io"
# Short-lived workload certificates, renewed a third of their life early: a lost renewal has
# hours to be noticed before anything expires (Istio's default workload certificate lives 24h).
WORKLOAD_DURATION = "24h"
WORKLOAD_RENEW_BEFORE = "8h"
CA_DURATION = "87600h"  # ten years: the CA key never rotates (see mesh_ca_objects)
CA_RENEW_BEFORE = "720h"
# Pulumi waits until cert-manager has issued the certificate, so the pods that mount its Secret
# are not created before it exists; kubectl ignores the annotation.
_WAIT_FOR_READY = {"pulumi.com/waitFor": "condition=Ready"}
_KEY = {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8"}


@dataclass(frozen=True)
class IssuerRef:
    """A cert-manager issuer that signs the mesh's workload certificates instead of the CA sailplan
    bootstraps: an `Issuer` in the mesh's namespace or a `ClusterIssuer`. The sidecars trust the
    `ca.crt` it writes into each Secret, so it must be a CA issuer (or one that writes `ca.crt`).
    """

    name: str
    kind: Literal["Issuer", "ClusterIssuer"] = "ClusterIssuer"
    group: str = GROUP

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "group": self.group}


def needs_certificates(mesh: Mesh) -> bool:
    """The builtin plane with mTLS: Istio's own CA issues the istio plane's certificates."""
    return mesh.data_plane == "builtin" and mesh.mtls != "disable"


def bootstrap_issuer_name(mesh: Mesh) -> str:
    return f"{mesh.name}-selfsigned"


def ca_name(mesh: Mesh) -> str:
    """The CA Certificate, its Secret, and the Issuer that signs with it."""
    return f"{mesh.name}-mesh-ca"


def _issuer(mesh: Mesh, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Issuer",
        "metadata": metadata(mesh, name, mesh_labels(mesh)),
        "spec": spec,
    }


def mesh_ca_objects(mesh: Mesh) -> list[dict[str, Any]]:
    """Self-signed Issuer -> CA Certificate (isCA) -> CA Issuer, in the mesh's namespace."""
    ca_certificate = {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": {
            **metadata(mesh, ca_name(mesh), mesh_labels(mesh)),
            "annotations": dict(_WAIT_FOR_READY),
        },
        "spec": {
            "isCA": True,
            "commonName": mesh.name,
            "subject": {"organizations": [mesh.trust_domain]},
            "secretName": ca_name(mesh),
            "duration": CA_DURATION,
            "renewBefore": CA_RENEW_BEFORE,
            # A renewed CA keeps its key, so certificates it signed before still verify against
            # the renewed ca.crt: a new key would break every connection until all renewed.
            "privateKey": {**_KEY, "rotationPolicy": "Never"},
            "usages": ["cert sign", "crl sign", "digital signature"],
            "issuerRef": IssuerRef(bootstrap_issuer_name(mesh), "Issuer").to_dict(),
        },
    }
    return [
        _issuer(mesh, bootstrap_issuer_name(mesh), {"selfSigned": {}}),
        ca_certificate,
        _issuer(mesh, ca_name(mesh), {"ca": {"secretName": ca_name(mesh)}}),
    ]


def workload_certificate(
    mesh: Mesh, workload: str, identity: str, labels: dict[str, str], issuer: IssuerRef
) -> dict[str, Any]:
    """The certificate of one identity: `workload` names the ServiceAccount (and so the Secret)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": {
            **metadata(mesh, workload, labels),
            "annotations": dict(_WAIT_FOR_READY),
        },
        "spec": {
            "secretName": certificate_secret_name(workload),
            # The SPIFFE ID, as in Istio's workload certificates; and the same identity as a DNS
            # name, which a caller's sidecar checks during the handshake (`verifyhost`: HAProxy
            # matches DNS names, not URI SANs), so a wrong server gets no request at all.
            "uris": [identity],
            "dnsNames": [workload_dns_name(identity)],
            "duration": WORKLOAD_DURATION,
            "renewBefore": WORKLOAD_RENEW_BEFORE,
            "privateKey": {**_KEY, "rotationPolicy": "Always"},
            # Both ends of a connection present it; ECDSA keys sign the handshake.
            "usages": ["digital signature", "server auth", "client auth"],
            "issuerRef": issuer.to_dict(),
        },
    }


def render_certificates(mesh: Mesh, issuer: IssuerRef | None = None) -> list[dict[str, Any]]:
    """The mesh CA (unless `issuer` names another) and a Certificate per service (sorted), then
    the ingress gateway's; then the ingress's own HTTPS certificate when cert-manager issues it."""
    ingress = ingress_certificate(mesh)
    tail = [] if ingress is None else [ingress]
    if not needs_certificates(mesh):
        return tail
    objects: list[dict[str, Any]] = []
    if issuer is None:
        objects += mesh_ca_objects(mesh)
        issuer = IssuerRef(ca_name(mesh), "Issuer")
    for service in sorted(mesh.services):
        objects.append(
            workload_certificate(
                mesh,
                service,
                service_identity(mesh, service),
                service_labels(mesh, service),
                issuer,
            )
        )
    if mesh.ingress is not None:
        namespace, account = gateway_service_account(mesh)
        objects.append(
            workload_certificate(
                mesh,
                account,
                spiffe_id(mesh.trust_domain, namespace, account),
                ingress_labels(mesh),
                issuer,
            )
        )
    return objects + tail


def ingress_certificate(mesh: Mesh) -> dict[str, Any] | None:
    """The certificate of the ingress's hosts when `ingress.tls.issuer` asks cert-manager for one,
    issued into the Secret the gateway serves. On istio the gateway runs in its own namespace and
    reads `credentialName` there, so the Certificate (and its Secret) live there."""
    tls = mesh.ingress.tls if mesh.ingress is not None else None
    if tls is None or tls.issuer is None:
        return None
    assert mesh.ingress is not None
    name = ingress_certificate_name(mesh.name)
    meta = metadata(mesh, name, ingress_labels(mesh))
    if mesh.data_plane == "istio":
        meta["namespace"] = c.ISTIO_GATEWAY_NAMESPACE
    return {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": {**meta, "annotations": dict(_WAIT_FOR_READY)},
        "spec": {
            "secretName": name,
            "dnsNames": list(mesh.ingress.hosts),
            "issuerRef": IssuerRef(tls.issuer.name, tls.issuer.kind).to_dict(),
        },
    }
