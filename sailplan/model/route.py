"""Routes: which version a request goes to, and what happens to it on the way."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sailplan.model.base import INT32_MAX, DnsLabel, Duration, Percent, SpecModel, planes
from sailplan.model.match import Match, OneOrList, as_match_list

# Retry conditions both data planes honour. HAProxy 2.6 retries on these status codes only.
RETRY_CONDITIONS = ("5xx", "gateway-error", "reset", "connect-failure")
RETRY_STATUS_CODES = (401, 403, 404, 408, 425, 500, 501, 502, 503, 504)
_RETRY_TOKENS = RETRY_CONDITIONS + tuple(map(str, RETRY_STATUS_CODES))


class Delay(SpecModel):
    """Hold requests for a fixed time before passing them on."""

    fixed: Duration = Field(
        description="How long to hold a request, such as `500ms` or `2s`.",
        examples=["2s"],
        json_schema_extra=planes(
            istio="`fixedDelay`, in seconds with millisecond decimals.",
            builtin="The Lua delay, in milliseconds.",
        ),
    )
    percent: Percent = Field(
        default=100,
        description="The share of requests delayed, from 0 to 100 (fractions allowed). "
        "Default: 100.",
        examples=[50],
        json_schema_extra=planes(
            istio="`percentage.value` of the delay.",
            builtin="A draw out of a million per request, so fractions down to 0.0001 hold.",
        ),
    )


class Abort(SpecModel):
    """Answer requests at once with an HTTP status instead of passing them on."""

    status: int = Field(
        description="The HTTP status to answer with, from 200 to 599.",
        json_schema_extra=planes(
            istio="`httpStatus` of the abort.",
            builtin="The status the proxy answers with.",
            schema={"minimum": 200, "maximum": 599},
        ),
        examples=[503],
    )
    percent: Percent = Field(
        default=100,
        description="The share of requests aborted, from 0 to 100 (fractions allowed). "
        "Default: 100.",
        examples=[10],
        json_schema_extra=planes(
            istio="`percentage.value` of the abort.",
            builtin="A draw out of a million per request, so fractions down to 0.0001 hold.",
        ),
    )

    @field_validator("status")
    @classmethod
    def _http_status(cls, value: int) -> int:
        if not 200 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status to abort with: use 200 to 599")
        return value


class Fault(SpecModel):
    """Injected faults: a delay, an abort, or both (the delay comes first)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    delay: Delay | None = Field(
        default=None,
        description="Delay some requests.",
        examples=[{"fixed": "2s", "percent": 50}],
        json_schema_extra=planes(
            istio="`fault.delay` of the rule.",
            builtin="A Lua action holds the request before it is forwarded.",
        ),
    )
    abort: Abort | None = Field(
        default=None,
        description="Answer some requests with an error.",
        examples=[{"status": 503, "percent": 10}],
        json_schema_extra=planes(
            istio="`fault.abort` of the rule.",
            builtin=(
                "The proxy answers at once with the status and the body `fault filter abort`,"
                " as Envoy does."
            ),
        ),
    )

    @model_validator(mode="after")
    def _something_to_inject(self) -> Fault:
        if self.delay is None and self.abort is None:
            raise ValueError("a fault needs a delay, an abort or both")
        return self


class Retries(SpecModel):
    """Try a failed request again, on another endpoint when there is one."""

    attempts: int = Field(
        ge=0,
        le=INT32_MAX,
        description="How many times a failed request is retried; 0 turns retries off.",
        examples=[3],
        json_schema_extra=planes(
            istio="`retries.attempts`; 0 turns retries off.",
            builtin=(
                "`retries` of the route's backends; with 0, only a failed connection is "
                "retried, once."
            ),
        ),
    )
    per_try_timeout: Duration | None = Field(
        default=None,
        description="How long each attempt may take, as a duration. Default: no limit per "
        "attempt beyond the route's `timeout`.",
        examples=["500ms"],
        json_schema_extra=planes(
            istio="`retries.perTryTimeout`.",
            builtin=(
                "`timeout server` of the route's backends, when shorter than the route's `timeout`."
            ),
        ),
    )
    on: tuple[Annotated[str, WithJsonSchema({"enum": list(_RETRY_TOKENS)})], ...] | None = Field(
        default=None,
        # Strict tuples take only Python tuples; YAML gives a list. The items stay strict text.
        strict=False,
        description="What is retried: `5xx`, `gateway-error`, `reset`, `connect-failure`, or a "
        "status code among 401, 403, 404, 408, 425, 500-504. Default: `5xx` and "
        "`connect-failure`.",
        examples=[["5xx", "connect-failure"]],
        json_schema_extra=planes(
            istio="`retries.retryOn`, comma-separated.",
            builtin=(
                "HAProxy `retry-on` keywords with Envoy's meaning of each condition: `5xx` is"
                " 500-504, failed connections, empty answers and answer timeouts."
            ),
        ),
    )

    @field_validator("on")
    @classmethod
    def _known_conditions(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for token in value or ():
            known = token in RETRY_CONDITIONS or (
                token.isdigit() and int(token) in RETRY_STATUS_CODES
            )
            if not known:
                raise ValueError(
                    f"{token!r} is not a retry condition: use {', '.join(RETRY_CONDITIONS)} "
                    f"or a status code among {', '.join(map(str, RETRY_STATUS_CODES))}"
                )
        return value

    @model_validator(mode="after")
    def _attempts_for_settings(self) -> Retries:
        if self.attempts == 0 and (self.per_try_timeout is not None or self.on):
            raise ValueError(
                "attempts is 0, so perTryTimeout and on have no effect: "
                "set attempts to 1 or more, or remove them"
            )
        return self

    @property
    def conditions(self) -> tuple[str, ...]:
        """What is retried when `on` is not given: the 5xx family and failed connections."""
        return self.on or ("5xx", "connect-failure")


class Mirror(SpecModel):
    """Send a copy of the route's requests to another version; its answers are dropped."""

    to: DnsLabel = Field(
        description="The version that receives the copies; not one the route sends requests to.",
        examples=["v2"],
        json_schema_extra=planes(
            istio="`mirror`: the service's host, subset `<version>`.",
            builtin="Copies go to the version's headless Service.",
        ),
    )
    percent: Percent = Field(
        default=100,
        description="The share of requests copied, from 0 to 100 (fractions allowed). "
        "Default: 100.",
        examples=[10],
        json_schema_extra=planes(
            istio="`mirrorPercentage.value`.",
            builtin="A draw out of a million per request, so fractions down to 0.0001 hold.",
        ),
    )


Weight = Annotated[int, Field(ge=0, le=100)]
MatchList = Annotated[list[Match], Field(min_length=1), BeforeValidator(as_match_list), OneOrList()]


class Route(SpecModel):
    """An ordered routing rule of a service. The first rule whose `match` holds decides."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["to"]}, {"required": ["split"]}]}
    )

    name: DnsLabel | None = Field(
        default=None,
        description="A name for the rule, unique within the service; shown in rendered output.",
        examples=["canary"],
        json_schema_extra=planes(
            istio=(
                "The rule's `name` in the VirtualService (`route-<index>` when not given); in"
                " the gateway's VirtualService it follows the ingress route's name."
            ),
            builtin=(
                "A comment above the rule in the HAProxy config; names the rule's backends "
                "`<service>__<name>__<version>` (`route-<index>` when not given), hence its "
                "Prometheus series, and the access log's `route_name`."
            ),
        ),
    )
    match: MatchList | None = Field(
        default=None,
        description="Alternatives (OR) of request conditions; a single mapping is a list of one. "
        "Default: every request. Not for tcp services.",
        examples=[[{"headers": {"end-user": "jason"}}]],
        json_schema_extra=planes(
            istio="The rule's `match` list (`uri`, `method`, `headers`, `queryParams`).",
            builtin=(
                "HAProxy conditions on `path`, `method`, `req.hdr()` and `url_param()`: ANDed"
                " within an alternative, ORed across alternatives."
            ),
        ),
    )
    to: DnsLabel | None = Field(
        default=None,
        description="Send every matching request to this version. Give `to` or `split`.",
        examples=["v2"],
        json_schema_extra=planes(
            istio="One `route` destination: the service's host and port, subset `<version>`.",
            builtin=(
                "The route's backend: the version's endpoints, found through its headless Service."
            ),
        ),
    )
    split: dict[DnsLabel, Weight] | None = Field(
        default=None,
        description="Spread matching requests over versions by weight: version -> percent "
        "(0-100), adding up to 100. Give `to` or `split`.",
        json_schema_extra=planes(
            istio="Weighted `route` destinations, one per version with a weight above 0.",
            builtin=(
                "One draw from 0 to 99 per request picks a version's backend by cumulative "
                "weight; a version with weight 0 gets no backend."
            ),
            schema={"minProperties": 1},
        ),
        examples=[{"v1": 80, "v2": 20}],
    )
    fault: Fault | None = Field(
        default=None,
        description="Inject delays or errors, for testing resilience. HTTP only.",
        examples=[{"abort": {"status": 503, "percent": 10}}],
        json_schema_extra=planes(
            istio="The rule's `fault`.",
            builtin=(
                "Applied by the caller's proxy before the request is forwarded, with Envoy's "
                "answer texts."
            ),
        ),
    )
    timeout: Duration | None = Field(
        default=None,
        description="How long a request may take before the caller gets a 504, as a duration. "
        "Default: no timeout. HTTP only.",
        examples=["2s"],
        json_schema_extra=planes(
            istio="The rule's `timeout`: the whole request, retries included.",
            builtin=(
                "HAProxy's `timeout server` on the route's backends, which bounds each "
                "attempt (with retries, the shorter of this and `perTryTimeout`). An expired "
                "timeout answers 504 `upstream request timeout` (known difference D3)."
            ),
        ),
    )
    retries: Retries | None = Field(
        default=None,
        description="Retry failed requests. Default: no retries. HTTP only.",
        examples=[{"attempts": 3, "perTryTimeout": "500ms"}],
        json_schema_extra=planes(
            istio="The rule's `retries`; without it Istio's default retry policy applies.",
            builtin=(
                "`retries` and `retry-on` on the route's backends. Without it a failed "
                "connection is still retried, once."
            ),
        ),
    )
    mirror: Mirror | None = Field(
        default=None,
        description="Copy matching requests to another version and drop its answers. HTTP only.",
        examples=[{"to": "v2", "percent": 10}],
        json_schema_extra=planes(
            istio="The rule's `mirror` (subset `<version>`) and `mirrorPercentage`.",
            builtin=(
                "The caller's proxy sends a copy to the version's headless Service from Lua "
                "and drops its answer; the request body is buffered."
            ),
        ),
    )

    @field_validator("split")
    @classmethod
    def _weights_sum_to_100(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None:
            if not value:
                raise ValueError("a split needs at least one version")
            total = sum(value.values())
            if total != 100:
                raise ValueError(f"weights add up to {total}, they must add up to 100")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> Route:
        if self.to is None and self.split is None:
            raise ValueError("a route needs a destination: `to: <version>` or a `split`")
        if self.to is not None and self.split is not None:
            raise ValueError("give either `to` or `split`, not both")
        return self

    @property
    def is_catch_all(self) -> bool:
        return self.match is None or any(m.is_catch_all for m in self.match)

    @property
    def weights(self) -> dict[str, int]:
        """Where the route sends requests, as version -> percent (a `to` route is 100%)."""
        if self.to is not None:
            return {self.to: 100}
        return dict(self.split or {})
