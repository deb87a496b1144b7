"""Routes: destinations, weights, faults, retries."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from sailplan.model import Delay, Duration, Fault, Retries, Route
from sailplan.model.route import (
    HTTP_STATUS_CODES,
    RETRY_CONDITIONS,
    RETRY_STATUS_CODES,
    builtin_retry_problem,
)


def test_a_to_route_sends_everything_to_one_version() -> None:
    assert Route(to="v2").weights == {"v2": 100}
    assert Route(split={"v1": 80, "v2": 20}).weights == {"v1": 80, "v2": 20}


def test_a_route_without_match_is_a_catch_all() -> None:
    assert Route(to="v1").is_catch_all
    assert not Route.model_validate({"to": "v1", "match": {"path": {"prefix": "/a"}}}).is_catch_all
    assert Route.model_validate(
        {"to": "v1", "match": [{"path": {"prefix": "/a"}}, {}]}
    ).is_catch_all


def test_a_single_match_mapping_is_a_list_of_one() -> None:
    route = Route.model_validate({"to": "v1", "match": {"headers": {"end-user": "jason"}}})
    assert route.match is not None and len(route.match) == 1


def test_fault_percentages_default_to_every_request() -> None:
    fault = Fault(delay=Delay(fixed=Duration(2000)))
    assert fault.delay is not None and fault.delay.percent == 100


def test_retries_default_to_5xx_and_connect_failures() -> None:
    assert Retries(attempts=2).conditions == ("5xx", "connect-failure")
    assert Retries(attempts=2, on=("503",)).conditions == ("503",)


def test_camel_case_in_yaml_snake_case_in_python() -> None:
    route = Route.model_validate({"to": "v1", "retries": {"attempts": 2, "perTryTimeout": "250ms"}})
    assert route.retries is not None and route.retries.per_try_timeout == Duration(250)
    assert route.to_dict() == {"to": "v1", "retries": {"attempts": 2, "perTryTimeout": "250ms"}}


@pytest.mark.parametrize("token", [*RETRY_CONDITIONS, "503", "429", "100", "226", "511"])
def test_every_retry_condition_istio_documents_is_accepted(token: str) -> None:
    assert Retries.model_validate({"attempts": 1, "on": [token]}).conditions == (token,)


@pytest.mark.parametrize("token", ["5XX", "timeouts", "599", "0503", "+503", "99", "1000", ""])
def test_other_retry_conditions_are_refused(token: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"{token!r} is not a retry condition")):
        Retries.model_validate({"attempts": 1, "on": [token]})


def test_the_builtin_plane_refuses_exactly_what_haproxy_cannot_retry_on() -> None:
    honoured = {t for t in RETRY_CONDITIONS if builtin_retry_problem(t) is None}
    assert honoured == {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "refused-stream",
        "retriable-status-codes",
        "http3-post-connect-failure",
    }
    codes = {code for code in HTTP_STATUS_CODES if builtin_retry_problem(str(code)) is None}
    assert codes == set(RETRY_STATUS_CODES)


def test_retry_conditions_may_be_written_as_istio_writes_retry_on() -> None:
    # Istio's VirtualService reference: `retryOn: gateway-error,connect-failure,refused-stream`.
    retries = Retries.model_validate(
        {"attempts": 3, "on": "gateway-error,connect-failure,refused-stream"}
    )
    assert retries.conditions == ("gateway-error", "connect-failure", "refused-stream")
    assert Retries.model_validate({"attempts": 1, "on": "refused-stream"}).conditions == (
        "refused-stream",
    )
    assert retries.to_dict()["on"] == ["gateway-error", "connect-failure", "refused-stream"]
