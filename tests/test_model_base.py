"""Durations, percentages and names: the value types every model uses."""

from __future__ import annotations

import pytest

from sailplan.model import Duration


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
    ],
)
def test_durations_parse_to_milliseconds(text: str, ms: int, canonical: str) -> None:
    duration = Duration.parse(text)
    assert duration.ms == ms
    assert str(duration) == canonical
    assert Duration.parse(str(duration)) == duration


@pytest.mark.parametrize("text", ["", "2", "1.5s", "2d", "-1s", "s", "1 s", "1sec"])
def test_other_duration_texts_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(text)


def test_durations_order_and_convert() -> None:
    assert Duration(500) < Duration(2000)
    assert Duration(1500).seconds == 1.5
    with pytest.raises(ValueError, match="is too short: a duration must be at least 1ms"):
        Duration.parse("0ms")
