"""Routes: destinations, weights, faults, retries."""

from __future__ import annotations

from sailplan.model import Delay, Duration, Fault, Retries, Route


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
