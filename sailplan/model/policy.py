"""How callers treat a service's endpoints: load balancing and circuit breaking."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from sailplan.model.base import Duration, HeaderName, SpecModel

Algorithm = Literal["round-robin", "random", "least-request"]


class LoadBalancer(SpecModel):
    """`round-robin`, `random`, `least-request`, or `{hashHeader: <header>}` for sticky routing."""

    algorithm: Algorithm | None = None
    hash_header: HeaderName | None = None

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

    max_connections: int = Field(ge=1)
    max_pending_requests: int = Field(default=0, ge=0)


class OutlierDetection(SpecModel):
    """Eject an endpoint after consecutive 5xx answers; let it back in after `baseEjectionTime`."""

    consecutive_5xx_errors: int = Field(default=5, ge=1, alias="consecutive5xxErrors")
    interval: Duration = Duration(10_000)
    base_ejection_time: Duration = Duration(30_000)
    max_ejection_percent: int = Field(default=10, ge=0, le=100)


class Policy(SpecModel):
    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
