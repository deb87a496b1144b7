"""Rendered manifests -> Pulumi resources, through a registry of kinds (not an if-chain).

Every object is registered as a plain `pulumi.CustomResource` of the Kubernetes provider's type
token with the manifest itself as its inputs, not through `pulumi_kubernetes`' generated classes:
the provider sees the same type, name and inputs (so `pulumi preview` diffs each object as
before, and Pulumi still awaits a Deployment's rollout), but the SDK skips what made those classes
cost about half of a large Mesh's registration (bench/FINDINGS.md): translating every nested
output key through the typed output classes and the camel/snake-case tables, and resolving three
old API-version aliases per Deployment (sailplan never created objects under those types).
Outputs are therefore plain data under the wire names (`resource.spec`, `resource.status`).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_kubernetes import _utilities

# Core kinds -> the provider's type tokens; Istio, cert-manager and Gateway API kinds are custom
# resources, whose token is "kubernetes:<apiVersion>:<kind>".
_CORE_KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "kubernetes:core/v1:Namespace",
    ("v1", "ServiceAccount"): "kubernetes:core/v1:ServiceAccount",
    ("v1", "ConfigMap"): "kubernetes:core/v1:ConfigMap",
    ("v1", "Service"): "kubernetes:core/v1:Service",
    ("apps/v1", "Deployment"): "kubernetes:apps/v1:Deployment",
    ("networking.k8s.io/v1", "NetworkPolicy"): "kubernetes:networking.k8s.io/v1:NetworkPolicy",
}
_CUSTOM_GROUPS = (
    "networking.istio.io/",
    "security.istio.io/",
    "cert-manager.io/",
    "gateway.networking.k8s.io/",
)
# The top-level manifest fields a core kind may carry (its inputs, under the wire names).
_FIELDS = {"apiVersion", "kind", "metadata", "spec", "data", "automountServiceAccountToken"}
# Outputs the provider fills in that no manifest carries: declared so that they exist as
# attributes (an IngressGateway reads its Service's `status`).
_OUTPUTS = ("status",)


def resource_name(prefix: str, manifest: dict[str, Any]) -> str:
    """Stable: the same object always gets the same Pulumi name, so URNs never churn."""
    return f"{prefix}-{manifest['kind'].lower()}-{manifest['metadata']['name']}"


# The provider plugin version the generated classes pin, so the engine loads the same plugin.
PROVIDER_VERSION: str = _utilities.get_version()  # type: ignore[no-untyped-call]


def create_resource(
    prefix: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    key = (manifest["apiVersion"], manifest["kind"])
    token = _CORE_KINDS.get(key)
    if token is not None:
        unknown = set(manifest) - _FIELDS
        if unknown:
            raise ValueError(f"{key[1]} has fields sailplan cannot deploy yet: {sorted(unknown)}")
        props: dict[str, Any] = dict(manifest)
    elif manifest["apiVersion"].startswith(_CUSTOM_GROUPS):
        token = f"kubernetes:{key[0]}:{key[1]}"
        props = {
            "apiVersion": key[0],
            "kind": key[1],
            "metadata": manifest["metadata"],
            "spec": manifest.get("spec", {}),
        }
    else:
        raise ValueError(
            f"no Pulumi resource is registered for {key[0]} {key[1]}: add it to "
            "sailplan.components.resources._CORE_KINDS"
        )
    for output in _OUTPUTS:
        props.setdefault(output, None)
    return pulumi.CustomResource(
        token,
        resource_name(prefix, manifest),
        props,
        pulumi.ResourceOptions.merge(pulumi.ResourceOptions(version=PROVIDER_VERSION), opts),
    )
