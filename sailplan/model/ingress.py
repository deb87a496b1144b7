"""The ingress gateway: the mesh's front door."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from sailplan.model.base import DnsLabel, Host, Port, SpecModel
from sailplan.model.match import Match, as_match_list


class IngressRoute(SpecModel):
    """Which service a request entering the mesh goes to; that service's routes then pick the version."""

    name: DnsLabel | None = None
    match: Annotated[list[Match], Field(min_length=1), BeforeValidator(as_match_list)] | None = None
    service: DnsLabel

    @property
    def is_catch_all(self) -> bool:
        return self.match is None or any(m.is_catch_all for m in self.match)


class Ingress(SpecModel):
    port: Port = 80
    node_port: int | None = None
    hosts: Annotated[list[Host], Field(min_length=1)] = ["*"]
    routes: Annotated[list[IngressRoute], Field(min_length=1)]

    @field_validator("node_port")
    @classmethod
    def _node_port_range(cls, value: int | None) -> int | None:
        if value is not None and not 30000 <= value <= 32767:
            raise ValueError(f"{value} is outside the NodePort range 30000-32767")
        return value
