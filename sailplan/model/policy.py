"""How callers treat a service's endpoints: load balancing and circuit breaking."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from sailplan.model.base import INT32_MAX, Duration, HeaderName, SpecModel, planes
from sailplan.model.errors import Problem
from sailplan.model.match import QueryName
from sailplan.model.route import Route, builtin_retry_problem

Algorithm = Literal["round-robin", "random", "least-request"]


def _name_or_one_key(schema: dict[str, Any]) -> None:
    """JSON Schema of a LoadBalancer as the validator reads it: an algorithm's name, or a mapping
    with exactly one of algorithm, hashHeader, hashSourceIp, hashQueryParameter or hashCookie."""
    mapping = {key: schema.pop(key) for key in ("type", "properties", "additionalProperties")}
    schema["anyOf"] = [
        {"enum": list(get_args(Algorithm))},
        {**mapping, "minProperties": 1, "maxProperties": 1},
    ]


# RFC 6265's cookie-name: an RFC 2616 token, any visible ASCII character but the separators
# ( ) < > @ , ; : \ " / [ ] ? = { }.
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# RFC 6265's path-value: any character but controls and `;`. sailplan also keeps out spaces (the
# value is written into a header) and asks for an absolute path, which is all a Path attribute
# can usefully name.
_COOKIE_PATH = re.compile(r"/[!-:<-~]*")


def check_cookie_name(value: str) -> str:
    if not _COOKIE_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid cookie name: use letters, digits and "
            "! # $ % & ' * + - . ^ _ ` | ~ (an RFC 6265 token)"
        )
    return value


def check_cookie_path(value: str) -> str:
    if not _COOKIE_PATH.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a cookie path: start with '/' and use printable ASCII without "
            "spaces or ';'"
        )
    return value


CookieName = Annotated[
    str,
    AfterValidator(check_cookie_name),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_COOKIE_NAME.pattern})$"}),
]
CookiePath = Annotated[
    str,
    AfterValidator(check_cookie_path),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_COOKIE_PATH.pattern})$"}),
]


class HashCookie(SpecModel):
    """Sticky routing by a cookie: requests carrying the same value of the cookie go to the same
    endpoint. With `ttl`, a request without the cookie gets one, so the client's next requests
    stick to the endpoint that answered it."""

    name: CookieName = Field(
        description="The cookie's name.",
        examples=["session"],
        json_schema_extra=planes(
            istio="`consistentHash.httpCookie.name`.",
            builtin="`balance hash` on the value of `req.cook(<name>)`, with `hash-type "
            "consistent`; an empty value counts as none. The value is hashed as the client "
            "sent it (Envoy drops surrounding double quotes first; the proxy's own cookie is "
            "sent back as it was set, so it sticks on either plane), and of a cookie sent "
            "twice HAProxy reads the last, Envoy the first.",
        ),
    )
    ttl: Duration | None = Field(
        default=None,
        description="Give a request without the cookie a new one, living this long (whole "
        "seconds), and hash on it. Default: no cookie is made, and requests without one go to "
        "any endpoint.",
        examples=["1h"],
        json_schema_extra=planes(
            istio="`consistentHash.httpCookie.ttl`: Envoy answers with `Set-Cookie: "
            '<name>="<value>"; Max-Age=<seconds>; Path=<path>; HttpOnly`, the value a hash of '
            "the client connection's addresses.",
            builtin="The proxy makes a random value (a UUID) for a request without the cookie, "
            "hashes on it, and answers with the same `Set-Cookie` as Envoy's.",
        ),
    )
    path: CookiePath | None = Field(
        default=None,
        description="The `Path` attribute of a cookie made for `ttl`. Default: none, so the "
        "client scopes the cookie to the request's directory.",
        examples=["/"],
        json_schema_extra=planes(
            istio="`consistentHash.httpCookie.path`.",
            builtin="`Path=<path>` in the `Set-Cookie` answer.",
        ),
    )

    @field_validator("ttl")
    @classmethod
    def _whole_seconds(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.ms % 1000:
            raise ValueError(
                f"{value} is not a whole number of seconds: the cookie's Max-Age counts "
                "seconds (Envoy would drop the fraction)"
            )
        return value

    @model_validator(mode="after")
    def _path_for_a_made_cookie(self) -> HashCookie:
        if self.path is not None and self.ttl is None:
            raise ValueError(
                "path is the Path of the cookie the proxy makes, and without ttl it makes none: "
                "give ttl, or remove path"
            )
        return self


class LoadBalancer(SpecModel):
    """`round-robin`, `random`, `least-request`, or for sticky routing one of `{hashHeader:
    <header>}`, `{hashSourceIp: true}`, `{hashQueryParameter: <name>}`, `{hashCookie: {name,
    ttl, path}}`."""

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
    hash_source_ip: bool | None = Field(
        default=None,
        description="Sticky routing by the caller's address: `true`. In a sidecar that is the "
        "calling pod, at the ingress the client.",
        examples=[True],
        json_schema_extra=planes(
            istio="`loadBalancer.consistentHash.useSourceIp`.",
            builtin="`balance source` with `hash-type consistent`.",
            schema={"const": True},
        ),
    )
    hash_query_parameter: QueryName | None = Field(
        default=None,
        description="Sticky routing: requests with the same value of this query parameter go to "
        "the same endpoint.",
        examples=["user"],
        json_schema_extra=planes(
            istio="`loadBalancer.consistentHash.httpQueryParameterName`.",
            builtin="`balance url_param(<name>)` with `hash-type consistent`; a request without "
            "the parameter goes round robin (Envoy picks at random).",
        ),
    )
    hash_cookie: HashCookie | None = Field(
        default=None,
        description="Sticky routing by a cookie's value; with `ttl`, the proxy gives a client "
        "without the cookie a new one.",
        examples=[{"name": "session", "ttl": "1h", "path": "/"}],
        json_schema_extra=planes(
            istio="`loadBalancer.consistentHash.httpCookie`.",
            builtin="`balance hash` on the cookie's value with `hash-type consistent`; a request "
            "without the cookie and no `ttl` goes round robin (Envoy picks at random).",
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
        if self.hash_source_ip is False:
            raise ValueError("hashSourceIp takes true; remove it for no source hashing")
        given = [
            value
            for value in (
                self.algorithm,
                self.hash_header,
                self.hash_source_ip,
                self.hash_query_parameter,
                self.hash_cookie,
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give an algorithm (round-robin, random, least-request) or one of "
                "{hashHeader: <header>}, {hashSourceIp: true}, {hashQueryParameter: <name>}, "
                "{hashCookie: {name: <cookie>}}"
            )
        return self

    @model_serializer(mode="plain")
    def _compact(self) -> str | dict[str, Any]:
        if self.algorithm is not None:
            return self.algorithm
        if self.hash_cookie is not None:
            return {"hashCookie": self.hash_cookie.to_dict()}
        if self.hash_source_ip:
            return {"hashSourceIp": True}
        if self.hash_query_parameter is not None:
            return {"hashQueryParameter": self.hash_query_parameter}
        return {"hashHeader": self.hash_header or ""}


class ConnectionPool(SpecModel):
    """Limits per caller, with Istio's names: beyond them a request is answered 503 at once
    instead of queuing. At least one field."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="The most connections a caller opens at once to one version of the "
        "service, whichever route sends the requests there; requests no route matched have a "
        "pool of their own. At least 1. Default: no limit.",
        examples=[100],
        json_schema_extra=planes(
            istio=(
                "`connectionPool.tcp.maxConnections`: Envoy keeps a pool per cluster, one per "
                "version subset."
            ),
            builtin=(
                "`maxconn` on every endpoint; the route backends to one version count their "
                "connections together."
            ),
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
                "Envoy reads 0 as no limit. Not rendered without `maxConnections` while 0."
            ),
            builtin=(
                "Once the route backends to a version hold more than `maxConnections` plus "
                "this many requests together, the proxy answers 503 at once with Envoy's "
                "overflow text. Without `maxConnections` no request waits for a connection, so "
                "there is nothing to limit."
            ),
        ),
    )
    http2_max_requests: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="The most requests in flight at once to one version of the service (as "
        "`maxConnections` counts), over any HTTP version (Envoy's name notwithstanding), at "
        "least 1. Default: no limit.",
        examples=[1000],
        json_schema_extra=planes(
            istio="`connectionPool.http.http2MaxRequests`.",
            builtin=(
                "Once the route backends to a version hold this many requests together, the "
                "proxy answers 503 at once with Envoy's overflow text."
            ),
        ),
    )
    max_requests_per_connection: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="How many requests one connection to an endpoint carries: 1 turns "
        "keep-alive off, 0 means no limit (the Circuit Breaking task sets 1). Default: no limit.",
        examples=[1],
        json_schema_extra=planes(
            istio="`connectionPool.http.maxRequestsPerConnection`.",
            builtin=(
                "1: `option http-server-close`, so each connection to an endpoint carries one "
                "request (the caller's own connection stays alive); 0: nothing. `check` "
                "refuses other values: HAProxy 2.6 cannot count requests per HTTP/1.1 "
                "connection (`max-reuse` is not honoured for it)."
            ),
        ),
    )
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="The most retries in flight to the service at once. Default: Istio's "
        "(no limit).",
        examples=[3],
        json_schema_extra=planes(
            istio="`connectionPool.http.maxRetries`.",
            builtin=(
                "Refused by `check`: HAProxy has no budget of concurrent retries; a route's "
                "`retries.attempts` bounds the retries of each request."
            ),
        ),
    )
    connect_timeout: Duration | None = Field(
        default=None,
        description="How long opening a connection to an endpoint may take, as a duration. "
        "Default: `10s` on istio, `5s` on builtin.",
        examples=["250ms"],
        json_schema_extra=planes(
            istio="`connectionPool.tcp.connectTimeout`.",
            builtin=(
                "`timeout connect` of the service's backends; a failed connection is retried "
                "once on another endpoint unless the route's retries say otherwise."
            ),
        ),
    )
    idle_timeout: Duration | None = Field(
        default=None,
        description="How long a connection to an endpoint may stay idle before it is closed, "
        "as a duration. Default: Istio's `1h`.",
        examples=["30s"],
        json_schema_extra=planes(
            istio=(
                "`connectionPool.http.idleTimeout`; `connectionPool.tcp.idleTimeout` for a "
                "tcp service."
            ),
            builtin=(
                "Refused by `check`: HAProxy closes idle connections to servers by halves "
                "every `pool-purge-delay`, not after a set idle time."
            ),
        ),
    )

    def limits(self) -> list[str]:
        """The limits besides maxConnections and maxPendingRequests, in words, for summaries."""
        phrases = []
        per_connection = self.max_requests_per_connection
        if per_connection is not None:
            phrases.append(
                "any number of requests per connection"
                if per_connection == 0
                else f"{per_connection} request{'' if per_connection == 1 else 's'} per connection"
            )
        if self.http2_max_requests is not None:
            phrases.append(f"at most {self.http2_max_requests} requests in flight")
        if self.max_retries is not None:
            phrases.append(f"at most {self.max_retries} retries in flight")
        if self.connect_timeout is not None:
            phrases.append(f"connect timeout {self.connect_timeout}")
        if self.idle_timeout is not None:
            phrases.append(f"idle timeout {self.idle_timeout}")
        return phrases

    @model_validator(mode="after")
    def _something_to_limit(self) -> ConnectionPool:
        # Istio's webhook refuses an empty connectionPool too.
        if not self.model_fields_set:
            raise ValueError("a connection pool needs at least one field, such as maxConnections")
        return self


class OutlierDetection(SpecModel):
    """Eject an endpoint that keeps answering with errors, as Envoy does: only real answers
    count, never a probe; an ejected endpoint stays out `baseEjectionTime` times the number of
    times it has been ejected."""

    consecutive_5xx_errors: int = Field(
        default=5,
        ge=1,
        le=INT32_MAX,
        alias="consecutive5xxErrors",
        description="How many 5xx answers in a row from one endpoint eject it, at least 1; any "
        "other answer starts the count again. Default: 5.",
        examples=[3],
        json_schema_extra=planes(
            istio="`outlierDetection.consecutive5xxErrors`.",
            builtin=(
                "Counted in the caller's proxy on the answer of every attempt, retried ones "
                "and mirrored copies included, per endpoint of a version (and apart for "
                "requests no route matched, as Istio's cluster without subset). Failed "
                "connections, connections closed before an answer and timeouts, which Envoy "
                "counts as 503 and 504, are not counted: only answers are."
            ),
        ),
    )
    consecutive_gateway_errors: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="How many 502, 503 or 504 answers in a row from one endpoint eject it, at "
        "least 1; any other answer starts the count again. These answers count towards "
        "`consecutive5xxErrors` too, so this matters only when lower. Default: not counted.",
        examples=[2],
        json_schema_extra=planes(
            istio="`outlierDetection.consecutiveGatewayErrors`.",
            builtin=(
                "Counted as `consecutive5xxErrors` is, with the same limits: answers only, "
                "not failed or closed connections or timeouts."
            ),
        ),
    )
    interval: Duration = Field(
        default=Duration(10_000),
        description="How often ejected endpoints are looked at: one whose ejection time has "
        "passed is let back in at the next look. Default: `10s`.",
        examples=["5s"],
        json_schema_extra=planes(
            istio="`outlierDetection.interval`.",
            builtin=(
                "The period of the proxy's Lua task that lets endpoints back in, and takes one "
                "off the ejection count of each endpoint that has stayed in for a whole "
                "interval, as Envoy's sweep does."
            ),
        ),
    )
    base_ejection_time: Duration = Field(
        default=Duration(30_000),
        description="How long an endpoint stays out the first time, as a duration; each "
        "further ejection keeps it out this long once more (2x, 3x, ... up to the longer of "
        "`5m` and this), and each interval it then stays in takes one step off. Default: `30s`.",
        examples=["1m"],
        json_schema_extra=planes(
            istio=(
                "`outlierDetection.baseEjectionTime`; Envoy's default `max_ejection_time` "
                "(5 minutes) caps the growth."
            ),
            builtin=(
                "The same arithmetic in the proxy's Lua: the endpoint is put in maintenance "
                "and readmitted by the sweep, so it stays out up to one `interval` longer, as "
                "on Envoy."
            ),
        ),
    )
    max_ejection_percent: int = Field(
        default=10,
        ge=1,
        le=100,
        description="The most endpoints that may be out at once, in percent (1-100), as "
        "Envoy counts: an ejection that would take the share past it does not happen, so with "
        "2 endpoints 50 lets one out and the default 10 none. Istio reads 0 as not set, "
        "hence 10, so 0 is refused. Default: 10.",
        examples=[50],
        json_schema_extra=planes(
            istio="`outlierDetection.maxEjectionPercent`.",
            builtin=(
                "Enforced over the endpoints with an address (a version's pods; the slots "
                "DNS has not filled do not count)."
            ),
        ),
    )

    def phrase(self) -> str:
        """In words, for summaries and graphs."""
        gateway = self.consecutive_gateway_errors
        also = f" or {gateway} gateway errors" if gateway is not None else ""
        return (
            f"eject after {self.consecutive_5xx_errors} consecutive 5xx{also} "
            f"for {self.base_ejection_time}"
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
        examples=[
            {"maxConnections": 100, "maxPendingRequests": 10},
            {"maxConnections": 1, "maxPendingRequests": 1, "maxRequestsPerConnection": 1},
        ],
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
            builtin=(
                "A Lua action counts the endpoints' answers and puts a failing one in "
                "maintenance; a Lua task lets it back in. No health checks."
            ),
        ),
    )


def _builtin_destination_header_problems(route_at: str, route: Route) -> list[Problem]:
    """The builtin proxy changes a destination's request headers in that version's backend,
    after the mirror's copy has left; Envoy copies the request with them."""
    if not route.copies:
        return []
    mirror = "mirror" if route.mirror is not None else "mirrors"
    return [
        Problem(
            f"{route_at}.destinationHeaders.{version}.request",
            f"the builtin proxy copies the request for {mirror} before it picks the version, so "
            "the copy would miss these changes (Envoy's carries them): move them to the "
            f"route's headers.request, remove {mirror}, or use the istio data plane",
        )
        for version, changes in sorted((route.destination_headers or {}).items())
        if changes.request is not None
    ]


def builtin_policy_problems(
    at: str, routes: Sequence[Route], policy: Policy | None
) -> list[Problem]:
    """What the builtin plane's HAProxy cannot honour in a service's retries and policy: refused
    by `check`, with the field's path, rather than accepted and ignored."""
    problems = []
    for index, route in enumerate(routes):
        problems += _builtin_destination_header_problems(f"{at}.routes[{index}]", route)
        if route.retries is None:
            continue
        for position, token in enumerate(route.retries.on or ()):
            reason = builtin_retry_problem(token)
            if reason is not None:
                problems.append(Problem(f"{at}.routes[{index}].retries.on[{position}]", reason))
    pool = policy.connection_pool if policy is not None else None
    if pool is not None:
        pool_at = f"{at}.policy.connectionPool"
        if pool.max_requests_per_connection is not None and pool.max_requests_per_connection > 1:
            problems.append(
                Problem(
                    f"{pool_at}.maxRequestsPerConnection",
                    f"HAProxy cannot count requests per connection to an endpoint, so "
                    f"{pool.max_requests_per_connection} cannot be honoured on the builtin data "
                    "plane: use 1 (no keep-alive), 0 (no limit), or the istio data plane",
                )
            )
        if pool.max_retries is not None:
            problems.append(
                Problem(
                    f"{pool_at}.maxRetries",
                    "HAProxy has no limit on retries in flight to a service, so the builtin data "
                    "plane cannot honour maxRetries: remove it (a route's retries.attempts "
                    "bounds each request's retries) or use the istio data plane",
                )
            )
        if pool.idle_timeout is not None:
            problems.append(
                Problem(
                    f"{pool_at}.idleTimeout",
                    "HAProxy does not close a connection to an endpoint after a set idle time, "
                    "so the builtin data plane cannot honour idleTimeout: remove it or use the "
                    "istio data plane",
                )
            )
    return problems
