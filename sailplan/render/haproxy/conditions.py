"""A route's match as HAProxy ACL conditions, and the random draws of percentages."""

from __future__ import annotations

from collections.abc import Sequence

from sailplan.model import Match, StringMatch

from .quoting import quote

# A route's percentages allow decimals down to 0.0001: draw from a million.
_DRAW_RANGE = 1_000_000


def percent_condition(percent: float) -> str:
    """A condition true for `percent`% of requests; empty when always true."""
    if percent >= 100:
        return ""
    threshold = round(percent * _DRAW_RANGE / 100)
    return f"{{ rand({_DRAW_RANGE}) -m int lt {threshold} }}"


def _string_condition(fetch: str, match: StringMatch) -> str:
    if match.kind == "exact":
        return f"{{ {fetch} -m str {quote(match.value)} }}"
    if match.kind == "prefix":
        return f"{{ {fetch} -m beg {quote(match.value)} }}"
    return f"{{ {fetch} -m reg {quote(match.value)} }}"


def _match_conditions(match: Match) -> list[str]:
    conditions = []
    if match.path is not None:
        conditions.append(_string_condition("path", match.path))
    if match.method is not None:
        conditions.append(_string_condition("method", match.method))
    for name, header in sorted((match.headers or {}).items()):
        conditions.append(_string_condition(f"req.hdr({name})", header))
    for name, param in sorted((match.query or {}).items()):
        conditions.append(_string_condition(f"url_param({name})", param))
    return conditions


def alternatives(matches: Sequence[Match] | None) -> list[list[str]]:
    """OR of ANDs, as HAProxy condition groups; [[]] means every request."""
    if not matches:
        return [[]]
    return [_match_conditions(m) for m in matches]


def when(*groups: Sequence[str]) -> str:
    text = " ".join(part for group in groups for part in group if part)
    return f" if {text}" if text else ""


def any_of(prefix: Sequence[str], alternatives: list[list[str]]) -> str:
    """`prefix AND (alt1 OR alt2 ...)`, repeating the prefix in each branch as HAProxy requires."""
    branches = [" ".join([*prefix, *alternative]) for alternative in alternatives]
    return " if " + " or ".join(branches)
