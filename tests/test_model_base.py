"""Durations, percentages and names: the value types every model uses."""

from __future__ import annotations

import copy
import pickle
import re

import pytest

from sailplan.model import Duration
from sailplan.reference import mesh_json_schema


@pytest.mark.parametrize(
    ("text", "ms", "canonical"),
    [
        ("500ms", 500, "500ms"),
        ("2s", 2000, "2s"),
        ("1m", 60_000, "1m"),
        ("1h", 3_600_000, "1h"),
        ("1000ms", 1000, "1s"),
        ("90s", 90_000, "90s"),
        ("1ms", 1, "1ms"),
        (" 3s ", 3000, "3s"),
        # As Istio's tasks and Go write them (time.ParseDuration, CEL's duration()).
        ("0.5s", 500, "500ms"),
        ("1.5s", 1500, "1500ms"),
        ("1m30s", 90_000, "90s"),
        ("2h", 7_200_000, "2h"),
        ("1h30m", 5_400_000, "90m"),
        (".25s", 250, "250ms"),
        ("1.s", 1000, "1s"),
        ("0.001s", 1, "1ms"),
        ("1s500ms", 1500, "1500ms"),
        ("+2s", 2000, "2s"),
        ("2000000ns", 2, "2ms"),
        ("1000us", 1, "1ms"),
        ("3000\u00b5s", 3, "3ms"),
        ("0.5m", 30_000, "30s"),
        ("24h", 86_400_000, "24h"),
    ],
)
def test_durations_parse_to_milliseconds(text: str, ms: int, canonical: str) -> None:
    duration = Duration.parse(text)
    assert duration.ms == ms
    assert str(duration) == canonical
    assert Duration.parse(str(duration)) == duration


@pytest.mark.parametrize(
    "text",
    ["", "2", "2d", "s", "1 s", "1sec", ".s", "1.5.s", "1e3s", "0x10s", "\u0661s", "1s 2s", "--1s"],
)
def test_other_duration_texts_are_rejected(text: str) -> None:
    with pytest.raises(
        ValueError, match=f"^{re.escape(repr(text))} is not a duration: write a number"
    ):
        Duration.parse(text)


@pytest.mark.parametrize(
    ("text", "nearest"),
    [("1.5ms", "2ms"), ("0.0015s", "2ms"), ("1001us", "1ms"), ("2.0004s", "2s"), ("1ms1ns", "1ms")],
)
def test_durations_finer_than_a_millisecond_are_refused(text: str, nearest: str) -> None:
    # Istio's webhook: "only durations to ms precision are supported".
    with pytest.raises(ValueError) as refused:
        Duration.parse(text)
    assert str(refused.value) == (
        f"{text!r} is finer than a millisecond: Istio takes whole milliseconds, "
        f"so write {nearest} or another whole number of milliseconds"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0s", "'0s' is too short: a duration must be at least 1ms"),
        ("0.9ms", "'0.9ms' is too short: a duration must be at least 1ms"),
        ("999us", "'999us' is too short: a duration must be at least 1ms"),
        ("-0s", "'-0s' is too short: a duration must be at least 1ms"),
        ("-1s", "'-1s' is negative: a duration must be at least 1ms"),
        ("24h1ms", "'24h1ms' is too long: a duration must be at most 24h"),
        ("86400.001s", "'86400.001s' is too long: a duration must be at most 24h"),
        (
            "9" * 64 + "h",
            f"'{'9' * 64}h' is not a duration: write a number with a unit, "
            "such as 500ms, 0.5s, 1m30s or 2h",
        ),
    ],
)
def test_durations_out_of_range_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        Duration.parse(text)
    assert str(refused.value) == message


def test_durations_order_and_convert() -> None:
    assert Duration(500) < Duration(2000)
    assert Duration(1500).seconds == 1.5
    with pytest.raises(ValueError, match="is too short: a duration must be at least 1ms"):
        Duration.parse("0ms")


def test_durations_are_immutable_values_that_copy() -> None:
    duration = Duration(1500)
    with pytest.raises(AttributeError):
        duration.ms = 2  # type: ignore[misc]
    assert copy.deepcopy(duration) == duration == Duration.parse("1.5s")
    assert pickle.loads(pickle.dumps(duration)) == duration
    assert {Duration(1000), Duration.parse("1s")} == {Duration(1000)}
    assert sorted([Duration(2), Duration(1)]) == [Duration(1), Duration(2)]


def test_duration_defaults_read_as_durations_in_the_json_schema() -> None:
    # A dataclass default would be written as {"ms": 10000}.
    interval = mesh_json_schema()["$defs"]["OutlierDetection"]["properties"]["interval"]
    assert interval["default"] == "10s"


def test_a_duration_text_is_read_once_and_its_errors_every_time() -> None:
    from sailplan.model.base import Duration

    first = Duration.parse("1m30s")
    assert Duration.parse("1m30s") is first
    assert first == Duration(90_000)
    for _ in range(2):
        with pytest.raises(ValueError, match="finer than a millisecond"):
            Duration.parse("1.5ms")
