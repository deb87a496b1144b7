"""Folding an ingress route's match and a service rule's match into one (model/intersect.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sailplan.model import Match, StringMatch
from sailplan.model.intersect import (
    Inexpressible,
    intersect,
    intersect_lists,
    intersect_strings,
    literal_prefix,
)


def _m(data: dict[str, Any]) -> Match:
    return Match.model_validate(data)


def _s(**kind: str) -> StringMatch:
    return StringMatch.model_validate(kind)


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("/api/v1/.*", "/api/v1/"),
        ("^/api/v[0-9]+", "/api/v"),
        (r"/a\.b/c", "/a.b/c"),
        ("/items?", "/item"),
        ("/items+", "/items"),
        ("/x{2}", "/"),
        ("/a|/b", ""),
        ("(?i)/api", ""),
        ("[/]api", ""),
        (".*", ""),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert literal_prefix(pattern) == prefix


def test_prefixes_and_exact_values() -> None:
    api, users = _s(prefix="/api"), _s(prefix="/api/users")
    assert intersect_strings("path", api, users) == users
    assert intersect_strings("path", users, _s(prefix="/admin")) is None
    assert intersect_strings("path", api, _s(exact="/api/x")) == _s(exact="/api/x")
    assert intersect_strings("path", api, _s(exact="/x")) is None
    assert intersect_strings("path", _s(exact="/a"), _s(exact="/b")) is None


def test_a_regex_inside_the_prefix_is_kept_and_one_outside_never_matches() -> None:
    api = _s(prefix="/api")
    assert intersect_strings("path", api, _s(regex="/api/v1/.*")) == _s(regex="/api/v1/.*")
    assert intersect_strings("path", api, _s(regex="/web/.*")) is None
    assert intersect_strings("path", _s(exact="/api/v1"), _s(regex="/api/v[0-9]")) == _s(
        exact="/api/v1"
    )
    assert intersect_strings("path", _s(exact="/api/v1/x"), _s(regex="/api/v[0-9]")) is None


def test_what_one_condition_cannot_say_is_named() -> None:
    folded = intersect_strings("path", _s(prefix="/api/v1"), _s(regex="/api/v[0-9]/.*"))
    assert folded == Inexpressible(
        "path",
        "the regex '/api/v[0-9]/.*' does not provably start with the prefix '/api/v1'; "
        "write the regex so that it starts with '/api/v1'",
    )
    assert isinstance(
        intersect_strings("path", _s(regex="/a.*"), _s(regex="/a/b.*")), Inexpressible
    )


def test_whole_matches() -> None:
    jason = _m({"headers": {"end-user": "jason"}})
    users = _m({"path": {"prefix": "/api/users"}})
    assert intersect(jason, users) == _m(
        {"path": {"prefix": "/api/users"}, "headers": {"end-user": "jason"}}
    )
    assert intersect(jason, _m({"headers": {"end-user": "bob"}})) is None
    assert intersect(users, _m({"path": {"exact": "/admin"}})) is None
    assert intersect(_m({"method": "GET"}), _m({"method": "POST"})) is None


def test_lists_are_alternatives() -> None:
    outer = [_m({"path": {"prefix": "/api"}}), _m({"path": {"prefix": "/web"}})]
    inner = [_m({"path": {"prefix": "/api/v1"}})]
    assert intersect_lists(outer, inner) == inner
    assert intersect_lists(outer, None) == outer
    assert intersect_lists(None, inner) == inner
    assert intersect_lists([_m({"path": {"prefix": "/web"}})], inner) == []
