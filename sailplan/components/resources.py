"""Rendered manifests -> Pulumi resources, through a registry of kinds (not an if-chain)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Core kinds get their typed classes (Pulumi awaits their readiness); Istio, cert-manager and
# Gateway API kinds are custom resources.
_CORE_KINDS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}
_CUSTOM_GROUPS = (
    "networking.istio.io/",
    "security.istio.io/",
    "cert-manager.io/",
    "gateway.networking.k8s.io/",
)
# Top-level manifest fields -> the resource classes' keyword arguments.
_FIELDS = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "automountServiceAccountToken": "automount_service_account_token",
}


def resource_name(prefix: str, manifest: dict[str, Any]) -> str:
    """Stable: the same object always gets the same Pulumi name, so URNs never churn."""
    return f"{prefix}-{manifest['kind'].lower()}-{manifest['metadata']['name']}"


def create_resource(
    prefix: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    key = (manifest["apiVersion"], manifest["kind"])
    if key in _CORE_KINDS:
        unknown = set(manifest) - {"apiVersion", "kind", *_FIELDS}
        if unknown:
            raise ValueError(f"{key[1]} has fields sailplan cannot deploy yet: {sorted(unknown)}")
        kwargs = {_FIELDS[field]: value for field, value in manifest.items() if field in _FIELDS}
        resource: pulumi.CustomResource = _CORE_KINDS[key](
            resource_name(prefix, manifest), opts=opts, **kwargs
        )
        return resource
    if manifest["apiVersion"].startswith(_CUSTOM_GROUPS):
        return k8s.apiextensions.CustomResource(
            resource_name(prefix, manifest),
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=manifest["metadata"],
            spec=manifest.get("spec", {}),
            opts=opts,
        )
    raise ValueError(
        f"no Pulumi resource is registered for {key[0]} {key[1]}: add it to "
        "sailplan.components.resources._CORE_KINDS"
    )
