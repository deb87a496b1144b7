"""Routes: which version a request goes to, and what happens to it on the way."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sailplan.model.base import DnsLabel, Duration, Percent, SpecModel
from sailplan.model.match import Match, as_match_list

# Retry conditions both data planes honour. HAProxy 2.6 retries on these status codes only.
RETRY_CONDITIONS = ("5xx", "gateway-error", "reset", "connect-failure")
RETRY_STATUS_CODES = (401, 403, 404, 408, 425, 500, 501, 502, 503, 504)


class Delay(SpecModel):
    fixed: Duration
    percent: Percent = 100


class Abort(SpecModel):
    status: int
    percent: Percent = 100

    @field_validator("status")
    @classmethod
    def _http_status(cls, value: int) -> int:
        if not 200 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status to abort with: use 200 to 599")
        return value


class Fault(SpecModel):
    """Injected faults: a delay, an abort, or both (the delay comes first)."""

    delay: Delay | None = None
    abort: Abort | None = None

    @model_validator(mode="after")
    def _something_to_inject(self) -> Fault:
        if self.delay is None and self.abort is None:
            raise ValueError("a fault needs a delay, an abort or both")
        return self


class Retries(SpecModel):
    attempts: int = Field(ge=0)
    per_try_timeout: Duration | None = None
    on: tuple[str, ...] | None = None

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

    to: DnsLabel
    percent: Percent = 100


Weight = Annotated[int, Field(ge=0, le=100)]
MatchList = Annotated[list[Match], Field(min_length=1), BeforeValidator(as_match_list)]


class Route(SpecModel):
    """An ordered routing rule of a service. The first rule whose `match` holds decides."""

    name: DnsLabel | None = None
    match: MatchList | None = None
    to: DnsLabel | None = None
    split: dict[DnsLabel, Weight] | None = None
    fault: Fault | None = None
    timeout: Duration | None = None
    retries: Retries | None = None
    mirror: Mirror | None = None

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
