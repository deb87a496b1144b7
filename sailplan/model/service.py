"""Services and their versions: what runs, where, and how it is reached."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from sailplan.model.base import DnsLabel, EnvName, EnvValue, Port, SpecModel
from sailplan.model.policy import Policy
from sailplan.model.route import Route

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")

# Set by sailplan on every app: the port the app must listen on.
RESERVED_ENV = ("PORT",)


def _check_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes quantity: write e.g. 100m or 0.5 for CPU, 128Mi for memory"
        )
    return value


Quantity = Annotated[str, AfterValidator(_check_quantity)]


class ResourceAmounts(SpecModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class Resources(SpecModel):
    """Requests and limits of the app container. Defaults are small and always set."""

    requests: ResourceAmounts = ResourceAmounts(cpu="50m", memory="64Mi")
    limits: ResourceAmounts = ResourceAmounts(cpu="500m", memory="256Mi")


class LocalRun(SpecModel):
    """How `sailplan sandbox` runs this version on a laptop. The process must listen on $PORT."""

    command: Annotated[list[str], Field(min_length=1)]
    cwd: str | None = None
    env: dict[EnvName, EnvValue] | None = None


class Readiness(SpecModel):
    """An HTTP GET the app answers with 2xx once it can take traffic."""

    path: str = "/healthz"

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with '/'")
        return value


class Version(SpecModel):
    image: str = Field(min_length=1)
    replicas: int = Field(default=1, ge=0)
    env: dict[EnvName, EnvValue] | None = None
    resources: Resources = Resources()
    readiness: Readiness | None = None
    local: LocalRun | None = None

    @field_validator("env")
    @classmethod
    def _not_reserved(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in RESERVED_ENV:
            if value and name in value:
                raise ValueError(f"{name} is set by sailplan to the service port; remove it")
        return value


Protocol = Literal["http", "tcp", "grpc"]


class Service(SpecModel):
    port: Port
    protocol: Protocol = "http"
    versions: Annotated[dict[DnsLabel, Version], Field(min_length=1)]
    routes: list[Route] = []
    policy: Policy | None = None
