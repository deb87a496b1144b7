"""Matches: string matches, alternatives, catch-alls."""

from __future__ import annotations

from sailplan.model import Match, StringMatch


def test_a_plain_string_is_an_exact_match() -> None:
    match = StringMatch.model_validate("jason")
    assert (match.kind, match.value) == ("exact", "jason")
    assert match.to_dict() == {"exact": "jason"}


def test_match_fields_and_description() -> None:
    match = Match.model_validate(
        {
            "path": {"prefix": "/api"},
            "method": "POST",
            "headers": {"end-user": "jason"},
            "query": {"v": {"regex": "^2"}},
        }
    )
    assert match.describe() == "POST /api* end-user: jason ?v=~^2"
    assert not match.is_catch_all


def test_an_empty_match_catches_everything() -> None:
    assert Match().is_catch_all
    assert Match().describe() == "any request"


def test_regex_paths_need_no_leading_slash() -> None:
    assert Match.model_validate({"path": {"regex": ".*/health$"}}).path == StringMatch(
        regex=".*/health$"
    )
