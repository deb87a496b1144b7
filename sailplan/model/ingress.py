"""The ingress gateway: the mesh's front door."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

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
