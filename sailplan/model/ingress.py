"""The ingress gateway: the mesh's front door."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from sailplan.model.base import DnsLabel, Host, Port, SpecModel
from sailplan.model.match import Match, OneOrList, as_match_list


class IngressRoute(SpecModel):
    """Which service a request entering the mesh goes to; that service's routes then pick the version."""

    name: DnsLabel | None = Field(
        default=None, description="An optional name for the rule, shown in rendered output."
    )
    match: (
        Annotated[list[Match], Field(min_length=1), BeforeValidator(as_match_list), OneOrList()]
        | None
    ) = Field(
        default=None,
        description="Alternatives (OR) of request conditions; a single mapping is a list of "
        "one. Default: every request.",
    )
    service: DnsLabel = Field(description="The service of this mesh that matching requests go to.")

    @property
    def is_catch_all(self) -> bool:
        return self.match is None or any(m.is_catch_all for m in self.match)


class Ingress(SpecModel):
    """The gateway that takes requests from outside the mesh and routes them to its services."""

    port: Port = Field(
        default=80, description="The port the gateway listens on, from 1 to 65535. Default: 80."
    )
    node_port: int | None = Field(
        default=None,
        description="Expose the gateway on this port of every node (a NodePort Service), in the "
        "range 30000-32767. Default: none, a LoadBalancer Service.",
        json_schema_extra={"minimum": 30000, "maximum": 32767},
    )
    hosts: Annotated[list[Host], Field(min_length=1)] = Field(
        default=["*"],
        description="The host names the gateway answers, such as `shop.example.com` or "
        "`*.example.com`. Default: `*`, every host.",
    )
    routes: Annotated[list[IngressRoute], Field(min_length=1)] = Field(
        description="Ordered rules: the first whose `match` holds picks the service. At least one."
    )

    @field_validator("node_port")
    @classmethod
    def _node_port_range(cls, value: int | None) -> int | None:
        if value is not None and not 30000 <= value <= 32767:
            raise ValueError(f"{value} is outside the NodePort range 30000-32767")
        return value
