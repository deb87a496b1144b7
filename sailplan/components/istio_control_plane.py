"""Istio's control plane from its official charts: base (CRDs), istiod, and the ingress gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from sailplan import constants as c
from sailplan.components.args import (
    ArgsError,
    require_bool,
    require_choice,
    require_dict,
    require_dns_label,
    require_port,
    require_str,
)
from sailplan.components.mesh_service import service_address, unknown_in_preview
from sailplan.model.ingress import HTTPS_REDIRECT_PORT
from sailplan.model.security import DEFAULT_TRUST_DOMAIN

ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
DEFAULT_ISTIO_VERSION = "1.30.3"
_WEBHOOK_TYPES = (
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration",
    "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration",
)
# istiod rewrites these at run time; without ignoring them every `pulumi up` fights istiod
# (pulumi-kubernetes#2210).
WEBHOOK_DRIFT_FIELDS = ["webhooks[*].failurePolicy", "webhooks[*].clientConfig.caBundle"]


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# The gateway pod's port for the Service's port 80 when `gateway_port` (on pod port 80) is not 80.
REDIRECT_TARGET_PORT = 8080
_CHART_VERSION = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")
_TRUST_DOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class IstioControlPlaneArgs:
    """How `IstioControlPlane` installs Istio from its official Helm charts.

    version: the charts' version, a string such as "1.30.3" (a float like 1.30 would lose digits).
    revision: an Istio revision name for canary upgrades; None installs the default revision.
    repository: the Helm repository the charts come from.
    system_namespace / gateway_namespace: where istiod / the ingress gateway run (both created).
    install_gateway: also install the `gateway` chart (the mesh's `ingress` needs it).
    trust_domain: the trust domain of the workload identities istiod issues
        (`meshConfig.trustDomain`); a mesh's `trustDomain` must equal it, since its
        AuthorizationPolicies name callers by identity. Istio's default is "cluster.local".
    istiod_resources, mesh_config, extra_istiod_values: passed into the istiod chart's values.
    gateway_service_type: "ClusterIP", "NodePort" or "LoadBalancer" for the gateway's Service.
    gateway_port: the Service port for HTTP (or HTTPS); gateway_node_port pins its node port
    (NodePort or LoadBalancer only). When gateway_port is not 80 the Service also exposes port 80
    (to pod port 8080), for a mesh's `tls.httpsRedirect`.

    Every argument is checked on construction; a wrong one raises `ArgsError` naming it.
    """

    version: str = DEFAULT_ISTIO_VERSION
    revision: str | None = None
    repository: str = ISTIO_CHART_REPOSITORY
    system_namespace: str = c.ISTIO_SYSTEM_NAMESPACE
    gateway_namespace: str = c.ISTIO_GATEWAY_NAMESPACE
    install_gateway: bool = True
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    istiod_resources: dict[str, Any] | None = None
    mesh_config: dict[str, Any] | None = None
    gateway_service_type: str = "LoadBalancer"
    gateway_port: int = 80
    gateway_node_port: int | None = None
    extra_istiod_values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = "IstioControlPlaneArgs"
        if not isinstance(self.version, str):
            raise ArgsError(
                f"{where}.version",
                "give the version as a string such as '1.30.3', "
                f"not the {type(self.version).__name__} {self.version!r}",
            )
        if not _CHART_VERSION.fullmatch(self.version):
            raise ArgsError(
                f"{where}.version",
                f"{self.version!r} is not a chart version: give major.minor.patch such as '1.30.3'",
            )
        if self.revision is not None:
            require_dns_label(f"{where}.revision", self.revision, "a revision name")
        require_str(f"{where}.repository", self.repository, "a Helm repository URL")
        require_dns_label(f"{where}.system_namespace", self.system_namespace, "a namespace name")
        require_dns_label(f"{where}.gateway_namespace", self.gateway_namespace, "a namespace name")
        require_bool(f"{where}.install_gateway", self.install_gateway)
        require_dict(f"{where}.istiod_resources", self.istiod_resources)
        require_dict(f"{where}.mesh_config", self.mesh_config)
        if not isinstance(self.trust_domain, str) or not _TRUST_DOMAIN.fullmatch(self.trust_domain):
            raise ArgsError(
                f"{where}.trust_domain",
                f"{self.trust_domain!r} is not a trust domain: use a DNS name such as "
                "'cluster.local' or 'prod.example.com'",
            )
        given = (self.mesh_config or {}).get("trustDomain", self.trust_domain)
        if given != self.trust_domain:
            raise ArgsError(
                f"{where}.mesh_config",
                f"its trustDomain {given!r} differs from trust_domain={self.trust_domain!r}: "
                "set the trust domain once, with trust_domain=",
            )
        require_dict(f"{where}.extra_istiod_values", self.extra_istiod_values, optional=False)
        require_choice(
            f"{where}.gateway_service_type",
            self.gateway_service_type,
            SERVICE_TYPES,
            "a Service type",
        )
        require_port(f"{where}.gateway_port", self.gateway_port)
        if self.gateway_node_port is not None:
            require_port(f"{where}.gateway_node_port", self.gateway_node_port)
            if self.gateway_service_type == "ClusterIP":
                raise ArgsError(
                    f"{where}.gateway_node_port",
                    "a ClusterIP Service has no node port: "
                    "set gateway_service_type='NodePort' or 'LoadBalancer', or drop the node port",
                )


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
    mesh_config = dict(args.mesh_config or {})
    if args.trust_domain != DEFAULT_TRUST_DOMAIN:
        # Only when it differs from Istio's own default, so default installs keep their values.
        mesh_config["trustDomain"] = args.trust_domain
    if mesh_config:
        values["meshConfig"] = mesh_config
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
    ports = [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021}, http]
    if args.gateway_port != HTTPS_REDIRECT_PORT:
        # A mesh's `tls.httpsRedirect` adds a plain Gateway server on port 80, which Istio binds
        # only to a port this Service exposes (IST0162). The chart's own values expose 80, and
        # the list here replaces them, so 80 comes back, to a pod port `http` does not take. A
        # control plane is shared by meshes, hence always rather than per mesh.
        ports.append(
            {
                "name": "http-redirect",
                "port": HTTPS_REDIRECT_PORT,
                "protocol": "TCP",
                "targetPort": REDIRECT_TARGET_PORT,
            }
        )
    values: dict[str, Any] = {"service": {"type": args.gateway_service_type, "ports": ports}}
    if args.revision:
        values["revision"] = args.revision
    return values


class IstioControlPlane(pulumi.ComponentResource):
    """Istio's control plane: istio/base (CRDs), then istiod, then the ingress gateway, each from
    the pinned release charts (`IstioControlPlaneArgs`), with istiod's webhook drift ignored.

    Create one and pass it to every istio-plane `Mesh` as `MeshArgs(control_plane=...)` to choose
    its name and arguments; a `Mesh` given none shares one created for the whole program.

    Outputs: `revision`, `system_namespace`, `gateway_service` ("<namespace>/<name>", "" without
    a gateway) and `gateway_address` (where the gateway listens: "<ip or host>:<port>" once the
    load balancer has one, "<any node address>:<nodePort>" for NodePort, the in-cluster DNS name
    for ClusterIP, None without a gateway). `ready` lists the charts pods must wait for.
    """

    revision: pulumi.Output[str]
    system_namespace: pulumi.Output[str]
    gateway_service: pulumi.Output[str]
    gateway_address: pulumi.Output[str | None]
    ready: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        args: IstioControlPlaneArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or IstioControlPlaneArgs()
        if not isinstance(args, IstioControlPlaneArgs):
            raise ArgsError(
                "IstioControlPlane.args",
                f"must be IstioControlPlaneArgs, not {type(args).__name__}",
            )
        super().__init__("sailplan:index:IstioControlPlane", name, None, opts)
        self.args = args
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
        self.gateway_address = pulumi.Output.from_input(None)
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
            self.gateway_address = self._gateway_address(name, args)
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
                "gateway_address": self.gateway_address,
            }
        )

    def _gateway_address(self, name: str, args: IstioControlPlaneArgs) -> pulumi.Output[str | None]:
        """Known from the arguments when they fix it; else read from the chart's Service."""
        service_name = c.ISTIO_GATEWAY_RELEASE
        if args.gateway_service_type == "ClusterIP":
            return pulumi.Output.from_input(
                f"{service_name}.{args.gateway_namespace}.svc.cluster.local:{args.gateway_port}"
            )
        if args.gateway_service_type == "NodePort" and args.gateway_node_port is not None:
            return pulumi.Output.from_input(f"<any node address>:{args.gateway_node_port}")
        # A first preview would read a Service the chart has not created yet and fail.
        if pulumi.runtime.is_dry_run():
            return unknown_in_preview()
        service = k8s.core.v1.Service.get(
            f"{name}-gateway-service",
            id=f"{args.gateway_namespace}/{service_name}",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]),
        )
        return pulumi.Output.all(service.spec, service.status).apply(
            lambda spec_status: service_address(
                args.gateway_service_type, "http2", args.gateway_port, *spec_status
            )
        )
