"""Services and their versions: what runs, where, and how it is reached."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator

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


Quantity = Annotated[
    str,
    AfterValidator(_check_quantity),
    WithJsonSchema({"type": "string", "pattern": _QUANTITY.pattern}),
]


class ResourceAmounts(SpecModel):
    """CPU and memory amounts, written as Kubernetes quantities."""

    cpu: Quantity | None = Field(
        default=None,
        description="CPU as a Kubernetes quantity: cores such as `0.5` or millicores such as `100m`.",
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory as a Kubernetes quantity with a binary or decimal suffix, such as "
        "`128Mi` or `1G`.",
    )


class Resources(SpecModel):
    """Requests and limits of the app container. Defaults are small and always set."""

    requests: ResourceAmounts = Field(
        default=ResourceAmounts(cpu="50m", memory="64Mi"),
        description="What the scheduler reserves for the app container. Default: cpu `50m`, "
        "memory `64Mi`.",
    )
    limits: ResourceAmounts = Field(
        default=ResourceAmounts(cpu="500m", memory="256Mi"),
        description="The most the app container may use: CPU is throttled above it, and the "
        "container is killed above the memory limit. Default: cpu `500m`, memory `256Mi`.",
    )


class LocalRun(SpecModel):
    """How `sailplan sandbox` runs this version on a laptop. The process must listen on $PORT."""

    command: Annotated[list[str], Field(min_length=1)] = Field(
        description="The program and its arguments, as a list (no shell). At least one item."
    )
    cwd: str | None = Field(
        default=None,
        description="The working directory of the process, relative to the mesh file's folder. "
        "Default: the mesh file's folder.",
    )
    env: dict[EnvName, EnvValue] | None = Field(
        default=None,
        description="Environment variables for the sandbox only, added over the version's `env`.",
    )


class Readiness(SpecModel):
    """An HTTP GET the app answers with 2xx once it can take traffic."""

    path: str = Field(
        default="/healthz",
        description="The path probed on the service port; it must start with `/`. "
        "Default: `/healthz`.",
        json_schema_extra={"pattern": "^/"},
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with '/'")
        return value


class Version(SpecModel):
    """One deployable version of a service: its own image, replicas and settings."""

    image: str = Field(
        min_length=1,
        description="The container image that runs this version, e.g. `registry/app:1.2.0`.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        description="How many pods run this version; 0 keeps it defined but stopped. Default: 1.",
    )
    env: dict[EnvName, EnvValue] | None = Field(
        default=None,
        description="Environment variables of the app container. Names are letters, digits and "
        "`_`; numbers are taken as text. `PORT` is reserved: sailplan sets it to the service port.",
        json_schema_extra={"propertyNames": {"not": {"enum": list(RESERVED_ENV)}}},
    )
    resources: Resources = Field(
        default=Resources(),
        description="CPU and memory requests and limits of the app container. Default: requests "
        "`50m`/`64Mi`, limits `500m`/`256Mi`.",
    )
    readiness: Readiness | None = Field(
        default=None,
        description="An HTTP readiness check of the app. Default: none, the pod is ready once "
        "it runs.",
    )
    local: LocalRun | None = Field(
        default=None,
        description="How `sailplan sandbox` starts this version as a local process. A version "
        "without it (and with replicas above 0) cannot run in the sandbox.",
    )

    @field_validator("env")
    @classmethod
    def _not_reserved(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in RESERVED_ENV:
            if value and name in value:
                raise ValueError(f"{name} is set by sailplan to the service port; remove it")
        return value


Protocol = Literal["http", "tcp", "grpc"]


class Service(SpecModel):
    """A named service: one port, one or more versions, and the routes that choose among them."""

    port: Port = Field(
        description="The port the service is reached on, and the port its app listens on "
        "(given to the app as `$PORT`). From 1 to 65535."
    )
    protocol: Protocol = Field(
        default="http",
        description="What the service speaks: `http`, `grpc` or `tcp`. The builtin data plane "
        "proxies `http` only. Default: `http`.",
    )
    versions: Annotated[dict[DnsLabel, Version], Field(min_length=1)] = Field(
        description="The versions of the service by name (a DNS label such as `v1`). At least one."
    )
    routes: list[Route] = Field(
        default=[],
        description="Ordered routing rules: the first whose `match` holds decides where a request "
        "goes. Default: none, requests are spread over every version.",
    )
    policy: Policy | None = Field(
        default=None,
        description="How callers treat the service's endpoints: load balancing, connection "
        "limits, outlier detection. Default: none.",
    )
