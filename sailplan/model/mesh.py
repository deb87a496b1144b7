"""The mesh: every service, its routes and the ingress, checked as a whole."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from sailplan import constants as c
from sailplan.model.analysis import analysis_problems
from sailplan.model.backtracking import backtracking_problems
from sailplan.model.base import DnsLabel, ServiceName, SpecModel, planes
from sailplan.model.errors import Problem, SpecError, clip, problems_from_validation_error, shown
from sailplan.model.gateway_api import SIDECAR_PORTS as GATEWAY_API_SIDECAR_PORTS
from sailplan.model.gateway_api import gateway_api_problems
from sailplan.model.ingress import Ingress
from sailplan.model.policy import builtin_policy_problems
from sailplan.model.route import Route, route_problems
from sailplan.model.security import (
    DEFAULT_TRUST_DOMAIN,
    Authorization,
    TrustDomain,
    security_problems,
)
from sailplan.model.service import Service

DataPlane = Literal["builtin", "istio", "gateway-api"]
MtlsMode = Literal["strict", "permissive", "disable"]
Interception = Literal["iptables", "explicit-proxy"]
# The variable explicit-proxy interception points at the sidecar (http_proxy too: curl reads only it).
EXPLICIT_PROXY_ENV = "HTTP_PROXY"


class Mesh(SpecModel):
    """A mesh file: every service of one application, how requests reach them, and the plane."""

    # What only the istio data plane offers, in the JSON Schema too, so editors flag it.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "not": {"required": ["dataPlane"], "properties": {"dataPlane": {"const": "istio"}}}
            },
            "then": {
                "properties": {
                    "services": {
                        "additionalProperties": {"properties": {"protocol": {"const": "http"}}}
                    },
                }
            },
        }
    )

    api_version: Literal["sailplan/v1"] = Field(
        default="sailplan/v1",
        description="The version of the mesh file format; `sailplan/v1` is the only one.",
        examples=["sailplan/v1"],
        json_schema_extra=planes(istio="Checked, not rendered.", builtin="Checked, not rendered."),
    )
    kind: Literal["Mesh"] = Field(
        default="Mesh",
        description="What the file describes; always `Mesh`.",
        examples=["Mesh"],
        json_schema_extra=planes(istio="Checked, not rendered.", builtin="Checked, not rendered."),
    )
    name: DnsLabel = Field(
        description="The mesh's name: lowercase letters, digits and `-`, at most 63 characters. "
        "Labels every rendered object, and names the namespace unless `namespace` is given.",
        examples=["shop"],
        json_schema_extra=planes(
            istio=(
                "The `app.kubernetes.io/part-of` label of every object; names the Gateway "
                "`<name>-gateway` and its VirtualService `<name>-ingress`, and the namespace "
                "unless `namespace` is given."
            ),
            builtin=(
                "The `app.kubernetes.io/part-of` label of every object; names the ingress "
                "gateway `<name>-gateway` (Deployment, Service, ServiceAccount) and its "
                "ConfigMap `<name>-gateway-proxy`, and the namespace unless `namespace` is "
                "given."
            ),
        ),
    )
    namespace: DnsLabel | None = Field(
        default=None,
        description="The Kubernetes namespace every object is deployed to. Default: the mesh's "
        "`name`.",
        examples=["shop-prod"],
        json_schema_extra=planes(
            istio=(
                "The Namespace object, labelled `istio-injection: enabled`; every object and "
                "every host (`<service>.<namespace>.svc.cluster.local`) is in it."
            ),
            builtin=(
                "The Namespace object; every object is in it, and sidecars resolve versions "
                "as `<service>-<version>.<namespace>.svc.cluster.local`."
            ),
        ),
    )
    allow_system_namespace: bool = Field(
        default=False,
        description="Let the mesh use `default` or a `kube-*` namespace. sailplan creates, "
        "labels and (when the mesh is destroyed) deletes its namespace, so these are refused "
        "unless this is `true`. Default: `false`.",
        examples=[True],
        json_schema_extra=planes(
            istio="Not rendered; lets `namespace` be `default` or `kube-*`.",
            builtin="Not rendered; lets `namespace` be `default` or `kube-*`.",
        ),
    )
    data_plane: DataPlane = Field(
        default="builtin",
        description="Which proxies carry the traffic: `builtin` (sailplan's HAProxy sidecar), "
        "`istio` (Istio's Envoy sidecars) or `gateway-api` (Kubernetes Gateway API objects, for "
        "any mesh that implements them, such as Linkerd or Istio). Default: `builtin`.",
        examples=["istio"],
        json_schema_extra=planes(
            istio=(
                "Istio resources next to the Kubernetes objects; pods carry "
                '`sidecar.istio.io/inject: "true"`. Needs Istio\'s control plane (the '
                "`IstioControlPlane` component)."
            ),
            builtin=(
                "sailplan's HAProxy sidecar and its iptables init container injected into "
                "every Deployment, with a ConfigMap and a headless Service per workload. No "
                "control plane."
            ),
        ),
    )
    interception: Interception = Field(
        default="iptables",
        description="How the app's traffic reaches the builtin sidecar: `iptables` (an init "
        "container redirects every connection, as Istio's does; needs root with NET_ADMIN and "
        "NET_RAW, so pods meet Pod Security Standards `privileged` only) or `explicit-proxy` "
        "(no init container: the app calls other services through `HTTP_PROXY`, callers "
        "reach the sidecar's inbound port; pods meet `restricted`). Default: `iptables`.",
        examples=["explicit-proxy"],
        json_schema_extra=planes(
            istio=(
                "`iptables` only: istiod injects Istio's own sidecar and decides how traffic "
                "reaches it (istio-cni removes its init container); `explicit-proxy` is refused."
            ),
            builtin=(
                "`explicit-proxy`: no init container, and the Namespace sailplan creates is "
                "labelled `pod-security.kubernetes.io/enforce: restricted`; the app gets "
                "`HTTP_PROXY` (the sidecar's "
                "outbound port on 127.0.0.1) and `NO_PROXY` `localhost,127.0.0.1` unless its "
                "`env` sets `NO_PROXY`; the Services target the sidecar's inbound port 15006, "
                "and so do callers' sidecars without mTLS (with it, its mTLS port 15007). Calls "
                "not over plain HTTP (https, tcp) bypass the mesh."
            ),
        ),
    )
    network_policies: bool = Field(
        default=True,
        description="Render a NetworkPolicy per service that admits connections to its pods "
        "only from the mesh's own pods (its services and its ingress gateway) in the "
        "namespace, plus the sidecar's metrics port from anywhere. On the gateway-api plane "
        "with an ingress, pods of every namespace are admitted: the Gateway's implementation "
        "decides where its gateway pods run. `false` renders none. Default: `true`.",
        examples=[False],
        json_schema_extra=planes(
            istio=(
                "A NetworkPolicy `<service>`: the service port from pods labelled "
                "`app.kubernetes.io/part-of: <mesh>` and from Istio's ingress gateway pods "
                "(`istio: ingressgateway` in `istio-ingress`); Envoy's metrics port 15090 and "
                "the merged metrics port 15020 from anywhere."
            ),
            builtin=(
                "A NetworkPolicy `<service>`: the service port (`iptables`) or the sidecar's "
                "inbound port 15006 (`explicit-proxy`), and with mTLS the sidecar's mTLS port "
                "15007, from pods labelled "
                "`app.kubernetes.io/part-of: <mesh>`, which include the mesh's gateway; the "
                "sidecar's metrics port 15020 from anywhere. The gateway itself is open."
            ),
        ),
    )
    mtls: MtlsMode = Field(
        default="permissive",
        description="Mutual TLS between services: `strict` (a sidecar accepts only mTLS from "
        "the mesh's workloads), `permissive` (mTLS and plaintext on the same port; callers in "
        "the mesh use mTLS) or `disable` (plaintext). Default: `permissive`.",
        examples=["strict"],
        json_schema_extra=planes(
            istio=(
                "A PeerAuthentication `default` in the namespace, mode STRICT, PERMISSIVE or "
                "DISABLE."
            ),
            builtin=(
                "`strict` and `permissive`: sidecars and the gateway call sidecars over TLS 1.3 "
                "with their certificates (Secret `sailplan-cert-<service>`, "
                "`sailplan-cert-<name>-gateway`), both ends verified against the mesh CA, and "
                "the caller checks during the handshake that the server's certificate names "
                "the called service (a wrong one gets no request: 503, flag `UF`); calls "
                "outside the mesh stay plaintext. Sidecars and the gateway dial a sidecar's "
                "mTLS port 15007, which takes only mTLS in both modes; the inbound port takes "
                "only mTLS (`strict`), or detects the TLS ClientHello and takes plaintext too "
                "(`permissive`); the app gets the caller in `x-forwarded-client-cert` "
                "(`By=...;Hash=...;URI=...`, Envoy's format; a caller's own is removed). "
                "`disable`: plaintext, no certificates. The sandbox runs the same, with a CA "
                "and certificates of its own per run."
            ),
        ),
    )
    trust_domain: TrustDomain = Field(
        default=DEFAULT_TRUST_DOMAIN,
        description="The trust domain of the mesh's workload identities: a service's identity "
        "is `spiffe://<trustDomain>/ns/<namespace>/sa/<service>`, as Istio names it. "
        "Default: `cluster.local`.",
        examples=["prod.example.com"],
        json_schema_extra=planes(
            istio=(
                "The trust domain of the principals in AuthorizationPolicies; it must be the "
                "trust domain of Istio's control plane (`meshConfig.trustDomain`, "
                "`cluster.local` unless set when installing it)."
            ),
            builtin=(
                "The URI SAN of every workload's certificate, checked by the sidecars on both "
                "ends of a connection, and the DNS name `<serviceaccount>.<namespace>.sa."
                "<trustDomain>` each certificate also carries, which callers check during the "
                "handshake; with mTLS, a trust domain that makes that name longer than DNS "
                "allows (a label over 63 characters, over 253 in all) is refused."
            ),
        ),
    )
    authorization: Authorization = Field(
        default_factory=Authorization,
        description="Mesh-wide authorization: whether services without `allow` let every "
        "caller in. Default: `{default: allow}`.",
        examples=[{"default": "deny"}],
        json_schema_extra=planes(
            istio="See `default`.",
            builtin="See `default`.",
        ),
    )
    services: dict[ServiceName, Service] = Field(
        description="The services of the mesh by name (a DNS label starting with a letter).",
        examples=[
            {
                "users": {
                    "port": 8080,
                    "versions": {"v1": {"image": "registry.example.com/users:1.4.0"}},
                }
            }
        ],
        json_schema_extra=planes(
            istio=(
                "Per service: a ServiceAccount and a Service named after it, a Deployment per"
                " version, a DestinationRule, and a VirtualService unless the service is tcp."
            ),
            builtin=(
                "Per service: a ServiceAccount and a Service named after it; per version a "
                "Deployment with the sidecar, a ConfigMap `<service>-<version>-proxy` and a "
                "headless Service `<service>-<version>`."
            ),
        ),
    )
    ingress: Ingress | None = Field(
        default=None,
        description="The gateway that lets requests in from outside. Default: none, the mesh is "
        "reachable only from inside the cluster.",
        examples=[{"hosts": ["shop.example.com"], "routes": [{"service": "web"}]}],
        json_schema_extra=planes(
            istio=(
                "A Gateway `<name>-gateway` on the pods of Istio's gateway chart (`istio: "
                "ingressgateway`) and a VirtualService `<name>-ingress` bound to it."
            ),
            builtin=(
                "A gateway of its own: Deployment, Service and ServiceAccount "
                "`<name>-gateway` running the proxy image in gateway mode, configured by the "
                "ConfigMap `<name>-gateway-proxy`."
            ),
        ),
    )

    access_log: bool = Field(
        default=False,
        description="Ask every proxy for an access log: one line per request on its stdout. "
        "Default: `false`, as Istio's own default.",
        examples=[True],
        json_schema_extra=planes(
            istio=(
                "A Telemetry `<name>-access-log` (`telemetry.istio.io/v1`) in the namespace "
                "turning on the built-in `envoy` access-log provider for the mesh's sidecars. "
                "The shared ingress gateway logs as Istio's control plane says "
                "(`meshConfig.accessLogFile`); JSON lines need `meshConfig.accessLogEncoding: "
                "JSON`."
            ),
            builtin=(
                "Each sidecar and the gateway write one JSON line per request to stdout, with "
                "Istio's JSON field names (README, Observability); off, no request lines (the "
                "proxy's own notices, such as an ejected pod, still go to stderr, and requests "
                "still get an `x-request-id`). `sailplan sandbox --access-log` turns it on "
                "for that run."
            ),
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Mesh:
        problems = cross_object_problems(self)
        if problems:
            # Not a ValueError: pydantic must not fold these into one error; the loader reports each.
            raise SpecError(problems)
        return self

    @property
    def target_namespace(self) -> str:
        """The namespace everything is deployed to; the mesh's name unless given."""
        return self.namespace or self.name

    @classmethod
    def parse(cls, data: Any) -> Mesh:
        """Validate plain data (as loaded from YAML); every problem is raised in one SpecError."""
        if not isinstance(data, dict):
            raise SpecError([Problem("", "a mesh file must be a mapping at the top level")])
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = problems_from_validation_error(error, cls)
            problems += [p for p in _problems_of_valid_parts(data) if p not in problems]
            raise SpecError(problems) from None

    def with_data_plane(self, data_plane: DataPlane) -> Mesh:
        """The same mesh rendered for another data plane (re-validated as a whole)."""
        return Mesh.parse({**self.to_dict(), "dataPlane": data_plane})


# Ports the sidecar binds in every pod (builtin: sailplan/constants.py; istio: Envoy and its agent,
# istio.io "Application requirements"). An app on one of them fails to start or is never reached.
SIDECAR_PORTS: dict[str, tuple[int, ...]] = {
    "builtin": (
        c.PROXY_OUTBOUND_PORT,
        c.PROXY_INBOUND_PORT,
        c.PROXY_MTLS_PORT,
        c.PROXY_ADMIN_PORT,
        c.PROXY_HEALTH_PORT,
    ),
    "istio": (15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090),
    "gateway-api": GATEWAY_API_SIDECAR_PORTS,
}


def is_system_namespace(name: str) -> bool:
    return name == "default" or name.startswith("kube-")


def cross_object_problems(mesh: Mesh) -> list[Problem]:
    """Rules that span objects: references, ordering, names that must stay unique or short."""
    problems: list[Problem] = []
    if is_system_namespace(mesh.target_namespace) and not mesh.allow_system_namespace:
        problems.append(
            Problem(
                "namespace" if mesh.namespace is not None else "name",
                f"{mesh.target_namespace!r} is a namespace Kubernetes itself uses: sailplan "
                "creates, labels and on destroy deletes the mesh's namespace, with everything in "
                "it. Choose another namespace, or set allowSystemNamespace: true if you mean it",
            )
        )
    if mesh.data_plane in ("builtin", "gateway-api") and mesh.ingress is not None:
        gateway = f"{mesh.name}-gateway"
        if len(gateway) > 63:
            problems.append(
                Problem(
                    "name",
                    f"the ingress gateway's Service would be named {gateway!r}, longer than the "
                    "63 characters Kubernetes allows; shorten the mesh name to 55 characters",
                )
            )
    reserved = SIDECAR_PORTS[mesh.data_plane]
    for service_name, service in mesh.services.items():
        at = f"services.{service_name}"
        if service.port in reserved:
            problems.append(
                Problem(
                    f"{at}.port",
                    f"{service.port} is a port the {mesh.data_plane} sidecar listens on in every "
                    f"pod ({', '.join(map(str, reserved))}); choose another port for the app",
                )
            )
        for version_name in service.versions:
            workload = f"{service_name}-{version_name}"
            if len(workload) > 63:
                problems.append(
                    Problem(
                        f"{at}.versions.{version_name}",
                        f"the workload name {workload!r} is longer than 63 characters; "
                        "shorten the service or version name",
                    )
                )
        problems += _route_problems(at, service)
        for index, callee in enumerate(service.calls or []):
            if callee not in mesh.services:
                problems.append(
                    Problem(
                        f"{at}.calls[{index}]",
                        f"unknown service {shown(callee)}; services are: "
                        f"{clip(', '.join(sorted(mesh.services)))}",
                    )
                )
    if mesh.ingress is not None:
        problems += _catch_all_problems("ingress", mesh.ingress.routes)
        known = ", ".join(sorted(mesh.services))
        for index, ingress_route in enumerate(mesh.ingress.routes):
            if ingress_route.service not in mesh.services:
                problems.append(
                    Problem(
                        f"ingress.routes[{index}].service",
                        f"unknown service {ingress_route.service!r}; services are: {known}",
                    )
                )
    if mesh.data_plane == "builtin":
        for service_name, service in mesh.services.items():
            if service.protocol != "http":
                problems.append(
                    Problem(
                        f"services.{service_name}.protocol",
                        f"protocol {service.protocol} needs the istio data plane; "
                        "the builtin data plane proxies http only",
                    )
                )
            problems += builtin_policy_problems(
                f"services.{service_name}", service.routes, service.policy
            )
    problems += security_problems(mesh)
    problems += analysis_problems(mesh)
    if mesh.data_plane == "builtin":
        problems += backtracking_problems(mesh)
    if mesh.data_plane == "gateway-api":
        problems += [p for p in gateway_api_problems(mesh) if p not in problems]
    problems += _interception_problems(mesh)
    problems += _tcp_allow_problems(mesh)
    return problems


def _tcp_allow_problems(mesh: Mesh) -> list[Problem]:
    # Istio ignores an ALLOW rule's HTTP-only conditions on a TCP workload by never matching the
    # rule: `methods: [GET]` would refuse every connection instead of allowing GETs.
    return [
        Problem(
            f"services.{name}.allow[{index}].{field}",
            f"{field} need an http or grpc service: {name} is tcp, whose connections carry no "
            "HTTP method or path; keep only from in its rules",
        )
        for name, service in sorted(mesh.services.items())
        if service.protocol == "tcp"
        for index, rule in enumerate(service.allow or [])
        for field, given in (("methods", rule.methods), ("paths", rule.paths))
        if given is not None
    ]


def _interception_problems(mesh: Mesh) -> list[Problem]:
    if mesh.interception != "explicit-proxy":
        return []
    if mesh.data_plane == "istio":
        return [
            Problem(
                "interception",
                "explicit-proxy needs the builtin data plane: on the istio data plane istiod "
                "injects Istio's sidecar and decides how traffic reaches it (install istio-cni "
                "to run without its privileged init container)",
            )
        ]
    if mesh.data_plane == "gateway-api":
        return []  # model/gateway_api.py refuses it, with the plane's own reason
    return [
        Problem(
            f"services.{service_name}.versions.{version_name}.env.{name}",
            f"{name} is set by sailplan with interception: explicit-proxy (the app reaches "
            "the mesh through its sidecar); remove it from env",
        )
        for service_name, service in sorted(mesh.services.items())
        for version_name, version in sorted(service.versions.items())
        for name in sorted(version.env or {})
        if name.upper() == EXPLICIT_PROXY_ENV
    ]


def _route_problems(at: str, service: Service) -> list[Problem]:
    problems = _catch_all_problems(at, service.routes)
    versions = ", ".join(sorted(service.versions))
    seen_names: dict[str, int] = {}

    def unknown(path: str, version: str) -> None:
        if version not in service.versions:
            problems.append(
                Problem(path, f"unknown version {version!r}; this service has: {versions}")
            )

    for index, route in enumerate(service.routes):
        route_at = f"{at}.routes[{index}]"
        if route.name is not None:
            if route.name in seen_names:
                problems.append(
                    Problem(
                        f"{route_at}.name",
                        f"route name {route.name!r} is already used by routes[{seen_names[route.name]}]",
                    )
                )
            seen_names.setdefault(route.name, index)
        if route.to is not None:
            unknown(f"{route_at}.to", route.to)
        for version in route.split or {}:
            unknown(f"{route_at}.split.{version}", version)
        for number, mirror in enumerate(route.copies):
            mirror_at = f"{route_at}.mirror" if route.mirror else f"{route_at}.mirrors[{number}]"
            unknown(f"{mirror_at}.to", mirror.to)
            if route.weights.get(mirror.to, 0) > 0:
                problems.append(
                    Problem(
                        f"{mirror_at}.to",
                        f"{mirror.to!r} already receives this route's requests; "
                        "mirror to a version the route does not send to",
                    )
                )
        problems += route_problems(route_at, route)
        if service.protocol == "tcp":
            problems += _tcp_problems(route_at, route)
    return problems


def _tcp_problems(route_at: str, route: Route) -> list[Problem]:
    http_only = {
        "match": route.match,
        "fault": route.fault,
        "timeout": route.timeout,
        "retries": route.retries,
        "mirror": route.mirror,
        "mirrors": route.mirrors,
        "headers": route.headers,
        "destinationHeaders": route.destination_headers,
        "rewrite": route.rewrite,
        "redirect": route.redirect,
        "respond": route.respond,
        "cors": route.cors,
    }
    return [
        Problem(f"{route_at}.{key}", f"{key} needs protocol http or grpc; this service is tcp")
        for key, value in http_only.items()
        if value is not None
    ]


def _catch_all_problems(at: str, routes: Any) -> list[Problem]:
    problems = []
    for index, route in enumerate(routes[:-1]):
        if route.is_catch_all:
            later = ", ".join(f"routes[{i}]" for i in range(index + 1, len(routes)))
            problems.append(
                Problem(
                    f"{at}.routes[{index}]",
                    f"this route matches every request, so {later} after it can never match; "
                    "move it last or give it a match",
                )
            )
            break
    return problems


def _problems_of_valid_parts(data: dict[str, Any]) -> list[Problem]:
    """Cross-object problems of the parts that did validate, so that a typo in one place does not
    hide an unknown version or a bad split in another."""
    services = data.get("services")
    if not isinstance(services, dict):
        return []
    problems: list[Problem] = []
    for name, raw in services.items():
        try:
            service = Service.model_validate(raw)
        except ValidationError:
            problems += _raw_reference_problems(f"services.{clip(str(name))}", raw)
            continue
        problems += _route_problems(f"services.{name}", service)
    ingress = data.get("ingress")
    routes = ingress.get("routes") if isinstance(ingress, dict) else None
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        target = route.get("service") if isinstance(route, dict) else None
        if isinstance(target, str) and target not in services:
            known = ", ".join(sorted(str(s) for s in services))
            problems.append(
                Problem(
                    f"ingress.routes[{index}].service",
                    f"unknown service {shown(target)}; services are: {clip(known)}",
                )
            )
    return problems


def _raw_reference_problems(at: str, raw: Any) -> list[Problem]:
    """Unknown versions in the routes of a service that did not validate (say, a split whose
    weights are off), read from the plain data so one problem does not hide the other."""
    versions = raw.get("versions") if isinstance(raw, dict) else None
    routes = raw.get("routes") if isinstance(raw, dict) else None
    if not isinstance(versions, dict) or not isinstance(routes, list):
        return []
    known = ", ".join(sorted(str(v) for v in versions))
    problems = []

    def unknown(path: str, version: Any) -> None:
        if isinstance(version, str) and version not in versions:
            problems.append(
                Problem(path, f"unknown version {shown(version)}; this service has: {clip(known)}")
            )

    for index, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        route_at = f"{at}.routes[{index}]"
        unknown(f"{route_at}.to", route.get("to"))
        split = route.get("split")
        for version in split if isinstance(split, dict) else ():
            unknown(f"{route_at}.split.{clip(str(version))}", version)
        mirror = route.get("mirror")
        if isinstance(mirror, dict):
            unknown(f"{route_at}.mirror.to", mirror.get("to"))
    return problems
