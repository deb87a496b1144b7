"""Istio's control plane from its official charts: base (CRDs), istiod, and the ingress gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from sailplan import constants as c

ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
DEFAULT_ISTIO_VERSION = "1.30.3"
_WEBHOOK_TYPES = (
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration",
    "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration",
)
# istiod rewrites these at run time; without ignoring them every `pulumi up` fights istiod
# (pulumi-kubernetes#2210).
WEBHOOK_DRIFT_FIELDS = ["webhooks[*].failurePolicy", "webhooks[*].clientConfig.caBundle"]


@dataclass(frozen=True)
class IstioControlPlaneArgs:
    version: str = DEFAULT_ISTIO_VERSION
    revision: str | None = None
    repository: str = ISTIO_CHART_REPOSITORY
    system_namespace: str = c.ISTIO_SYSTEM_NAMESPACE
    gateway_namespace: str = c.ISTIO_GATEWAY_NAMESPACE
    install_gateway: bool = True
    istiod_resources: dict[str, Any] | None = None
    mesh_config: dict[str, Any] | None = None
    gateway_service_type: str = "LoadBalancer"
    gateway_port: int = 80
    gateway_node_port: int | None = None
    extra_istiod_values: dict[str, Any] = field(default_factory=dict)


def ignore_webhook_drift(
    args: pulumi.ResourceTransformArgs,
) -> pulumi.ResourceTransformResult | None:
    """A Chart v4 transform: leave the fields istiod manages on its webhooks alone."""
    if args.type_ not in _WEBHOOK_TYPES:
        return None
    return pulumi.ResourceTransformResult(
        props=args.props,
        opts=pulumi.ResourceOptions.merge(
            args.opts, pulumi.ResourceOptions(ignore_changes=WEBHOOK_DRIFT_FIELDS)
        ),
    )


def istiod_values(args: IstioControlPlaneArgs) -> dict[str, Any]:
    values: dict[str, Any] = {"global": {"istioNamespace": args.system_namespace}}
    if args.revision:
        values["revision"] = args.revision
    if args.istiod_resources:
        values["resources"] = args.istiod_resources
    if args.mesh_config:
        values["meshConfig"] = args.mesh_config
    return {**values, **args.extra_istiod_values}


def gateway_values(args: IstioControlPlaneArgs) -> dict[str, Any]:
    http: dict[str, Any] = {
        "name": "http2",
        "port": args.gateway_port,
        "protocol": "TCP",
        "targetPort": 80,
    }
    if args.gateway_node_port is not None:
        http["nodePort"] = args.gateway_node_port
    values: dict[str, Any] = {
        "service": {
            "type": args.gateway_service_type,
            "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                http,
            ],
        }
    }
    if args.revision:
        values["revision"] = args.revision
    return values


class IstioControlPlane(pulumi.ComponentResource):
    """istio/base, then istio/istiod, then istio/gateway, each from the pinned release charts."""

    revision: pulumi.Output[str]
    system_namespace: pulumi.Output[str]
    gateway_service: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: IstioControlPlaneArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sailplan:index:IstioControlPlane", name, None, opts)
        args = args or IstioControlPlaneArgs()
        child = pulumi.ResourceOptions(parent=self)
        repository = k8s.helm.v4.RepositoryOptsArgs(repo=args.repository)
        system_ns = k8s.core.v1.Namespace(
            f"{name}-system-namespace", metadata={"name": args.system_namespace}, opts=child
        )
        self.base = k8s.helm.v4.Chart(
            f"{name}-base",
            chart="base",
            version=args.version,
            namespace=args.system_namespace,
            repository_opts=repository,
            values={"defaultRevision": args.revision or "default"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[system_ns]),
        )
        self.istiod = k8s.helm.v4.Chart(
            f"{name}-istiod",
            chart="istiod",
            version=args.version,
            namespace=args.system_namespace,
            repository_opts=repository,
            values=istiod_values(args),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.base], transforms=[ignore_webhook_drift]
            ),
        )
        self.ready = [self.base, self.istiod]
        if args.install_gateway:
            gateway_ns = k8s.core.v1.Namespace(
                f"{name}-gateway-namespace", metadata={"name": args.gateway_namespace}, opts=child
            )
            self.gateway = k8s.helm.v4.Chart(
                f"{name}-gateway",
                # The release name becomes the pods' `istio:` label the mesh's Gateway selects.
                name=c.ISTIO_GATEWAY_RELEASE,
                chart="gateway",
                version=args.version,
                namespace=args.gateway_namespace,
                repository_opts=repository,
                values=gateway_values(args),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.istiod, gateway_ns]),
            )
            self.ready.append(self.gateway)
        self.revision = pulumi.Output.from_input(args.revision or "default")
        self.system_namespace = pulumi.Output.from_input(args.system_namespace)
        self.gateway_service = pulumi.Output.from_input(
            f"{args.gateway_namespace}/{c.ISTIO_GATEWAY_RELEASE}" if args.install_gateway else ""
        )
        self.register_outputs(
            {
                "revision": self.revision,
                "system_namespace": self.system_namespace,
                "gateway_service": self.gateway_service,
            }
        )
