"""The ingress gateway: the mesh's front door."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sailplan.model.base import DnsLabel, Host, Port, SpecModel, planes
from sailplan.model.match import Match, OneOrList, as_match_list


class IngressRoute(SpecModel):
    """Which service a request entering the mesh goes to; that service's routes then pick the version."""

    name: DnsLabel | None = Field(
        default=None,
        description="An optional name for the rule, shown in rendered output.",
        examples=["api"],
        json_schema_extra=planes(
            istio=(
                "Prefix of its rules' names in the gateway's VirtualService "
                "(`ingress-<index>` when not given)."
            ),
            builtin="Not rendered.",
        ),
    )
    match: (
        Annotated[list[Match], Field(min_length=1), BeforeValidator(as_match_list), OneOrList()]
        | None
    ) = Field(
        default=None,
        description="Alternatives (OR) of request conditions; a single mapping is a list of "
        "one. Default: every request.",
        examples=[{"path": {"prefix": "/api/"}}],
        json_schema_extra=planes(
            istio=(
                "Folded with each of the service's rules' matches into one rule of the "
                "gateway's VirtualService, one condition per field; `sailplan check` refuses, "
                "on istio, a pair that no single condition can say exactly."
            ),
            builtin=(
                "HAProxy conditions in the gateway's `ingress` listener, as for a route's match."
            ),
        ),
    )
    service: DnsLabel = Field(
        description="The service of this mesh that matching requests go to.",
        examples=["api"],
        json_schema_extra=planes(
            istio=(
                "The service whose rules the gateway's VirtualService repeats for these requests."
            ),
            builtin="The service whose routes the gateway then applies.",
        ),
    )

    @property
    def is_catch_all(self) -> bool:
        return self.match is None or any(m.is_catch_all for m in self.match)


# Where the builtin gateway finds the ingress certificate (`tls.crt`, `tls.key`), beside its
# config directory as the mesh certificate is: `<config dir>-ingress-tls`.
INGRESS_CERT_DIR_SUFFIX = "-ingress-tls"
# The plain port that answers with a redirect to HTTPS (`httpsRedirect`), as on Istio's gateways.
HTTPS_REDIRECT_PORT = 80
TlsVersion = Literal["TLSv1.2", "TLSv1.3"]


def ingress_certificate_name(mesh_name: str) -> str:
    """The Certificate sailplan requests for `tls.issuer`, and the Secret it is issued into."""
    return f"{mesh_name}-ingress-tls"


class CertificateIssuer(SpecModel):
    """A cert-manager issuer that signs the ingress certificate."""

    name: DnsLabel = Field(
        description="The name of the cert-manager Issuer or ClusterIssuer.",
        examples=["letsencrypt"],
        json_schema_extra=planes(
            istio="`issuerRef.name` of the Certificate sailplan renders.",
            builtin="`issuerRef.name` of the Certificate sailplan renders.",
        ),
    )
    kind: Literal["Issuer", "ClusterIssuer"] = Field(
        default="ClusterIssuer",
        description="`Issuer` (in the namespace of the Certificate) or `ClusterIssuer`. "
        "Default: `ClusterIssuer`.",
        examples=["Issuer"],
        json_schema_extra=planes(
            istio=(
                "`issuerRef.kind`. The Certificate lives in the gateway's namespace "
                "`istio-ingress`, so an `Issuer` must be there."
            ),
            builtin="`issuerRef.kind`; an `Issuer` must be in the mesh's namespace.",
        ),
    )


class IngressTls(SpecModel):
    """HTTPS at the ingress: the certificate (a Secret, or one cert-manager issues), the oldest
    TLS version accepted, and whether plain HTTP is redirected to HTTPS."""

    secret_name: DnsLabel | None = Field(
        default=None,
        description="A Kubernetes TLS Secret (`tls.crt`, `tls.key`) with the certificate for "
        "`hosts`. Give this or `issuer`.",
        examples=["shop-tls"],
        json_schema_extra=planes(
            istio=(
                "`credentialName` of the Gateway's HTTPS server; the Secret must be in the "
                "gateway's namespace, `istio-ingress`."
            ),
            builtin=(
                "Mounted into the gateway pod alone (never a sidecar), in the mesh's namespace."
            ),
        ),
    )
    issuer: CertificateIssuer | None = Field(
        default=None,
        description="Have cert-manager issue the certificate for `hosts` with this issuer, into "
        "the Secret `<mesh>-ingress-tls`. Give this or `secretName`.",
        examples=[{"name": "letsencrypt", "kind": "ClusterIssuer"}],
        json_schema_extra=planes(
            istio=(
                "A cert-manager Certificate `<mesh>-ingress-tls` in `istio-ingress`, its "
                "`dnsNames` the hosts, used as `credentialName`."
            ),
            builtin=(
                "A cert-manager Certificate `<mesh>-ingress-tls` in the mesh's namespace, its "
                "`dnsNames` the hosts, mounted into the gateway."
            ),
        ),
    )
    min_version: TlsVersion = Field(
        default="TLSv1.2",
        description="The oldest TLS version a client may use: `TLSv1.2` or `TLSv1.3`. "
        "Default: `TLSv1.2`.",
        examples=["TLSv1.3"],
        json_schema_extra=planes(
            istio="`minProtocolVersion`: TLSV1_2 or TLSV1_3.",
            builtin="`ssl-min-ver` of the gateway's HTTPS bind.",
        ),
    )
    https_redirect: bool = Field(
        default=False,
        description="Also listen for plain HTTP on port 80 and answer every request there with "
        "a 301 redirect to `https://` on the same host and path. Default: false.",
        examples=[True],
        json_schema_extra=planes(
            istio=(
                "A second Gateway server on port 80, protocol HTTP, with `tls.httpsRedirect`; "
                "the gateway Service of the control plane sailplan installs exposes port 80 "
                "(to the pod's port 8080) beside `port`."
            ),
            builtin=(
                "Port 80 of the gateway's Service: `http-request redirect` with code 301 to "
                "`https://<host>` (with `:<port>` unless `port` is 443) and the same path and "
                "query."
            ),
        ),
    )

    @model_validator(mode="after")
    def _one_certificate(self) -> IngressTls:
        if (self.secret_name is None) == (self.issuer is None):
            raise ValueError(
                "give the certificate as secretName (an existing TLS Secret) or issuer "
                "(cert-manager issues one), exactly one of them"
            )
        return self


class Ingress(SpecModel):
    """The gateway that takes requests from outside the mesh and routes them to its services."""

    port: Port = Field(
        default=80,
        description="The port the gateway listens on, from 1 to 65535. Default: 80.",
        examples=[80],
        json_schema_extra=planes(
            istio=(
                "The Gateway server's port, named `http-<port>`, protocol HTTP. The control "
                "plane a `Mesh` creates exposes it on the gateway chart's Service; a given "
                "`control_plane` whose gateway Service does not is refused (Istio would bind "
                "nothing, istioctl analyze IST0162)."
            ),
            builtin="The port of the gateway's Service; the gateway pod itself listens on 8080.",
        ),
    )
    node_port: int | None = Field(
        default=None,
        description="Expose the gateway on this port of every node (a NodePort Service), in the "
        "range 30000-32767. Default: none, a LoadBalancer Service.",
        json_schema_extra=planes(
            istio=(
                "The control plane a `Mesh` creates makes the gateway chart's Service a "
                "NodePort Service on this port, as on builtin; a given `control_plane` whose "
                "gateway Service has another node port is refused."
            ),
            builtin=(
                "The gateway Service becomes a NodePort Service on this port (a LoadBalancer "
                "Service without it)."
            ),
            schema={"minimum": 30000, "maximum": 32767},
        ),
        examples=[30080],
    )
    hosts: Annotated[list[Host], Field(min_length=1)] = Field(
        default=["*"],
        description="The host names the gateway answers, such as `shop.example.com` or "
        "`*.example.com`. Default: `*`, every host.",
        examples=[["shop.example.com", "*.shop.example.com"]],
        json_schema_extra=planes(
            istio="`hosts` of the Gateway server and of its VirtualService.",
            builtin=(
                "Requests for a host not listed are answered 404 `no route`; `*.example.com` "
                "matches any name ending in `.example.com`."
            ),
        ),
    )
    tls: IngressTls | None = Field(
        default=None,
        description="Serve HTTPS on `port` with this certificate instead of plain HTTP. "
        "Default: plain HTTP.",
        examples=[{"secretName": "shop-tls", "minVersion": "TLSv1.2", "httpsRedirect": True}],
        json_schema_extra=planes(
            istio="The Gateway server's `tls`, mode SIMPLE, protocol HTTPS, named `https-<port>`.",
            builtin=(
                "HAProxy terminates TLS in the gateway (`bind ... ssl`), offering HTTP/2 and "
                "HTTP/1.1 by ALPN, and sets `x-forwarded-proto: https` as Envoy's gateway does."
            ),
        ),
    )
    routes: Annotated[list[IngressRoute], Field(min_length=1)] = Field(
        description="Ordered rules: the first whose `match` holds picks the service. At least one.",
        examples=[[{"match": {"path": {"prefix": "/api/"}}, "service": "api"}, {"service": "web"}]],
        json_schema_extra=planes(
            istio=(
                "The `http` rules of the gateway's VirtualService: each ingress route repeats"
                " its service's own rules, narrowed to its match, since a gateway ignores the"
                " mesh's VirtualServices."
            ),
            builtin=(
                "Rules of the gateway's `ingress` listener: they pick the service, then that "
                "service's routes run as in a sidecar; no match answers 404 `no route`."
            ),
        ),
    )

    @field_validator("node_port")
    @classmethod
    def _node_port_range(cls, value: int | None) -> int | None:
        if value is not None and not 30000 <= value <= 32767:
            raise ValueError(f"{value} is outside the NodePort range 30000-32767")
        return value

    @model_validator(mode="after")
    def _redirect_port_free(self) -> Ingress:
        if self.tls is not None and self.tls.https_redirect and self.port == HTTPS_REDIRECT_PORT:
            raise ValueError(
                f"tls.httpsRedirect listens on port {HTTPS_REDIRECT_PORT}, which the HTTPS "
                "listener already takes; set port: 443"
            )
        if self.tls is not None and self.tls.issuer is not None and "*" in self.hosts:
            raise ValueError(
                "tls.issuer needs the host names to put in the certificate, and hosts is `*` "
                "(every host); list the hosts, or give tls.secretName"
            )
        return self
