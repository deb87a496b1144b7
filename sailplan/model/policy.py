"""How callers treat a service's endpoints: load balancing and circuit breaking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, model_serializer, model_validator

from sailplan.model.base import INT32_MAX, Duration, HeaderName, SpecModel, planes
from sailplan.model.errors import Problem
from sailplan.model.route import Route, builtin_retry_problem

Algorithm = Literal["round-robin", "random", "least-request"]


def _name_or_one_key(schema: dict[str, Any]) -> None:
    """JSON Schema of a LoadBalancer as the validator reads it: an algorithm's name, or a mapping
    with exactly one of algorithm or hashHeader."""
    mapping = {key: schema.pop(key) for key in ("type", "properties", "additionalProperties")}
    schema["anyOf"] = [
        {"enum": list(get_args(Algorithm))},
        {**mapping, "minProperties": 1, "maxProperties": 1},
    ]


class LoadBalancer(SpecModel):
    """`round-robin`, `random`, `least-request`, or `{hashHeader: <header>}` for sticky routing."""

    model_config = ConfigDict(json_schema_extra=_name_or_one_key)

    algorithm: Algorithm | None = Field(
        default=None,
        description="How an endpoint is picked: `round-robin`, `random` or `least-request`.",
        examples=["least-request"],
        json_schema_extra=planes(
            istio="`loadBalancer.simple`: ROUND_ROBIN, RANDOM or LEAST_REQUEST.",
            builtin="`balance roundrobin`, `random` or `leastconn`.",
        ),
    )
    hash_header: HeaderName | None = Field(
        default=None,
        description="Sticky routing: requests with the same value of this header go to the same "
        "endpoint.",
        examples=["x-user-id"],
        json_schema_extra=planes(
            istio="`loadBalancer.consistentHash.httpHeaderName`.",
            builtin="`balance hdr(<header>)` with `hash-type consistent`.",
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"algorithm": value}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> LoadBalancer:
        if (self.algorithm is None) == (self.hash_header is None):
            raise ValueError(
                "give an algorithm (round-robin, random, least-request) or {hashHeader: <header>}"
            )
        return self

    @model_serializer(mode="plain")
    def _compact(self) -> str | dict[str, str]:
        if self.algorithm is not None:
            return self.algorithm
        return {"hashHeader": self.hash_header or ""}


class ConnectionPool(SpecModel):
    """Limits per caller: beyond them a request is answered 503 at once instead of queuing."""

    max_connections: int = Field(
        ge=1,
        le=INT32_MAX,
        description="The most connections open to the service at once, at least 1.",
        examples=[100],
        json_schema_extra=planes(
            istio="`connectionPool.tcp.maxConnections`.",
            builtin="`maxconn` on every endpoint of the service's backends.",
        ),
    )
    max_pending_requests: int = Field(
        default=0,
        ge=0,
        le=INT32_MAX,
        description="How many requests may wait for a connection once `maxConnections` is "
        "reached. Default: 0.",
        examples=[10],
        json_schema_extra=planes(
            istio=(
                "`connectionPool.http.http1MaxPendingRequests`; 0 is rendered as 1, since "
                "Envoy reads 0 as no limit."
            ),
            builtin=(
                "Once a backend holds more than `maxConnections` plus this many connections, "
                "the proxy answers 503 at once with Envoy's overflow text."
            ),
        ),
    )


class OutlierDetection(SpecModel):
    """Eject an endpoint after consecutive 5xx answers; let it back in after `baseEjectionTime`."""

    consecutive_5xx_errors: int = Field(
        default=5,
        ge=1,
        le=INT32_MAX,
        alias="consecutive5xxErrors",
        description="How many 5xx answers in a row eject an endpoint, at least 1. Default: 5.",
        examples=[3],
        json_schema_extra=planes(
            istio="`outlierDetection.consecutive5xxErrors`.",
            builtin=(
                "`error-limit` of checks that observe live layer-7 answers; reaching it marks"
                " the endpoint down."
            ),
        ),
    )
    interval: Duration = Field(
        default=Duration(10_000),
        description="How often endpoints are assessed, as a duration. Default: `10s`.",
        examples=["5s"],
        json_schema_extra=planes(
            istio="`outlierDetection.interval`.",
            builtin="Not used: HAProxy judges every answer as it comes, with no sweep interval.",
        ),
    )
    base_ejection_time: Duration = Field(
        default=Duration(30_000),
        description="How long an ejected endpoint stays out, as a duration. Default: `30s`.",
        examples=["1m"],
        json_schema_extra=planes(
            istio=(
                "`outlierDetection.baseEjectionTime`; Envoy keeps an endpoint out this long "
                "times its number of ejections."
            ),
            builtin=(
                "The check interval of an ejected endpoint: two passing checks this far apart"
                " let it back, so it stays out one to two times this long."
            ),
        ),
    )
    max_ejection_percent: int = Field(
        default=10,
        ge=0,
        le=100,
        description="The most endpoints that may be ejected at once, in percent (0-100). "
        "Default: 10.",
        examples=[50],
        json_schema_extra=planes(
            istio="`outlierDetection.maxEjectionPercent`.",
            builtin="Not enforced: HAProxy may mark every endpoint of a version down.",
        ),
    )


class Policy(SpecModel):
    """How callers of a service treat its endpoints."""

    load_balancer: LoadBalancer | None = Field(
        default=None,
        description="How a request picks an endpoint: an algorithm name or "
        "`{hashHeader: <header>}`. Default: the data plane's own default.",
        examples=["least-request"],
        json_schema_extra=planes(
            istio="`trafficPolicy.loadBalancer`; Istio's own default when not given.",
            builtin=(
                "The `balance` algorithm of the service's backends; HAProxy's round robin "
                "when not given."
            ),
        ),
    )
    connection_pool: ConnectionPool | None = Field(
        default=None,
        description="Connection limits per caller. Default: no limits.",
        examples=[{"maxConnections": 100, "maxPendingRequests": 10}],
        json_schema_extra=planes(
            istio="`trafficPolicy.connectionPool`.",
            builtin="Per-endpoint `maxconn` and an immediate 503 when the backend is full.",
        ),
    )
    outlier_detection: OutlierDetection | None = Field(
        default=None,
        description="Eject endpoints that keep failing. Default: no ejection.",
        examples=[{"consecutive5xxErrors": 3, "baseEjectionTime": "1m"}],
        json_schema_extra=planes(
            istio="`trafficPolicy.outlierDetection`.",
            builtin="Server checks that watch live responses and mark a failing endpoint down.",
        ),
    )


def builtin_policy_problems(
    at: str, routes: Sequence[Route], policy: Policy | None
) -> list[Problem]:
    """What the builtin plane's HAProxy cannot honour in a service's retries and policy: refused
    by `check`, with the field's path, rather than accepted and ignored."""
    problems = []
    for index, route in enumerate(routes):
        if route.retries is None:
            continue
        for position, token in enumerate(route.retries.on or ()):
            reason = builtin_retry_problem(token)
            if reason is not None:
                problems.append(Problem(f"{at}.routes[{index}].retries.on[{position}]", reason))
    return problems
