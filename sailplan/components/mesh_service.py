"""The objects of one service (and of the ingress gateway), created from rendered manifests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from sailplan.components.resources import create_resource


class _ManifestGroup(pulumi.ComponentResource):
    children: list[pulumi.CustomResource]

    def __init__(
        self,
        token: str,
        name: str,
        manifests: Sequence[dict[str, Any]],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        super().__init__(token, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.children = [create_resource(name, manifest, child) for manifest in manifests]


class MeshService(_ManifestGroup):
    """One service: its ServiceAccount, Services, Deployments, proxy ConfigMaps and routing rules."""

    def __init__(
        self,
        name: str,
        manifests: Sequence[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sailplan:index:MeshService", name, manifests, opts)
        self.register_outputs({})


class IngressGateway(_ManifestGroup):
    """The ingress: the builtin gateway's Deployment and Service, or Istio's Gateway and its routes."""

    address: pulumi.Output[str | None]

    def __init__(
        self,
        name: str,
        manifests: Sequence[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sailplan:index:IngressGateway", name, manifests, opts)
        self.address = pulumi.Output.from_input(None)
        for manifest, resource in zip(manifests, self.children, strict=True):
            if manifest["kind"] == "Service":
                self.address = _service_address(resource, manifest)
        self.register_outputs({"address": self.address})


def _service_address(
    resource: pulumi.CustomResource, manifest: dict[str, Any]
) -> pulumi.Output[str | None]:
    ports = manifest["spec"]["ports"]
    node_port = ports[0].get("nodePort")
    if manifest["spec"].get("type") == "NodePort" and node_port:
        return pulumi.Output.from_input(f"<any node address>:{node_port}")

    def first_ingress(status: Any) -> str | None:
        ingress = ((status or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress:
            return None
        entry = ingress[0]
        host = entry.get("ip") or entry.get("hostname")
        return f"{host}:{ports[0]['port']}" if host else None

    status: pulumi.Output[Any] = resource.status  # type: ignore[attr-defined]
    return status.apply(lambda s: first_ingress(_as_dict(s)))


def _as_dict(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    # Typed outputs (ServiceStatus) -> plain data with the wire names.
    return {
        "loadBalancer": {
            "ingress": [
                {"ip": getattr(i, "ip", None), "hostname": getattr(i, "hostname", None)}
                for i in (getattr(getattr(value, "load_balancer", None), "ingress", None) or [])
            ]
        }
    }
