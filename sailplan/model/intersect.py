"""The requests two matches both accept, as one match — or why no single match can say it.

An ingress route picks a service; that service's own rules then pick the version. The builtin
gateway evaluates the two in turn, but an Istio gateway reads one VirtualService rule per request,
and a rule matches each field (path, method, a header, a query parameter) with ONE condition. So
the gateway's rule for "ingress route AND service rule" needs both conditions folded into one per
field. This module folds them when the result is provably exact, says "never" when no request can
satisfy both, and names the field when neither is provable, so `check` can refuse the mesh for the
istio plane instead of rendering a rule that routes differently (divergence D6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

from sailplan.model.match import Match, StringMatch

# Characters that make a regex character anything but itself.
_META = frozenset(".^$*+?()[]{}|\\")
_QUANTIFIERS = frozenset("*?{")
# `\` followed by one of these is the character itself.
_ESCAPED_LITERALS = frozenset(".^$*+?()[]{}|\\/-")


@dataclass(frozen=True)
class Inexpressible:
    """No single match can say "both": `field` names where, `reason` says why."""

    field: str
    reason: str


NEVER = None  # no request satisfies both


def literal_prefix(pattern: str) -> str:
    """A prefix every string fully matching `pattern` starts with (possibly ""), read from the
    leading literal characters. Conservative: alternation or flags anywhere give ""."""
    if pattern.startswith("^"):
        pattern = pattern[1:]
    if "|" in pattern or pattern.startswith("(?"):
        return ""
    prefix: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in _ESCAPED_LITERALS:
            literal, width = pattern[index + 1], 2
        elif char in _META:
            break
        else:
            literal, width = char, 1
        following = pattern[index + width : index + width + 1]
        if following and (following in _QUANTIFIERS or following == "+"):
            # `x?`, `x*`, `x{0,…}` may drop the character; `x+` keeps one, then anything.
            if following == "+":
                prefix.append(literal)
            break
        prefix.append(literal)
        index += width
    return "".join(prefix)


def intersect_strings(
    field: str, a: StringMatch | None, b: StringMatch | None
) -> StringMatch | Inexpressible | None:
    """One condition equivalent to `a AND b` (None for "no condition" when both are absent)."""
    if a is None or b is None or a == b:
        return a or b
    # `{}` (a header is present) adds nothing to a condition on its value.
    if a.kind == "present":
        return b
    if b.kind == "present":
        return a
    if a.kind == "regex" and b.kind != "regex":
        a, b = b, a
    if b.kind == "regex":
        if a.kind == "exact":
            return a if re2.fullmatch(b.value, a.value) else NEVER
        literal = literal_prefix(b.value)
        if a.kind == "prefix":
            if literal.startswith(a.value):
                return b  # every string the regex matches already has the prefix
            if not a.value.startswith(literal):
                return NEVER
            return Inexpressible(
                field,
                f"the regex {b.value!r} does not provably start with the prefix {a.value!r}; "
                f"write the regex so that it starts with {a.value!r}",
            )
        other = literal_prefix(a.value)
        if not (other.startswith(literal) or literal.startswith(other)):
            return NEVER
        return Inexpressible(field, f"two different regexes ({a.value!r}, {b.value!r})")
    if a.kind == "prefix" and b.kind == "prefix":
        longer, shorter = sorted((a, b), key=lambda m: len(m.value), reverse=True)
        return longer if longer.value.startswith(shorter.value) else NEVER
    if {a.kind, b.kind} == {"exact", "prefix"}:
        exact, prefix = (a, b) if a.kind == "exact" else (b, a)
        return exact if exact.value.startswith(prefix.value) else NEVER
    return NEVER  # two different exact values


def intersect(a: Match, b: Match) -> Match | Inexpressible | None:
    """One match accepting exactly the requests both accept; None when none can."""
    folded: dict[str, Any] = {}
    never = False
    if a.path is not None and b.path is not None and a.ignore_uri_case != b.ignore_uri_case:
        return Inexpressible(
            "path", "one side ignores the path's letter case and the other does not"
        )
    ignore_case = bool(a.ignore_uri_case or b.ignore_uri_case)
    if ignore_case and a.path is not None and b.path is not None:
        # Both ignore case (exact and prefix paths only): fold the lowercase forms.
        a = a.model_copy(update={"path": _lowered(a.path)})
        b = b.model_copy(update={"path": _lowered(b.path)})
    if ignore_case:
        folded["ignore_uri_case"] = True
    for field in ("path", "method"):
        one, other = getattr(a, field), getattr(b, field)
        if one is None and other is None:
            continue  # neither asks: no condition, not "never"
        both = intersect_strings(field, one, other)
        if isinstance(both, Inexpressible):
            return both
        never |= both is NEVER
        folded[field] = both
    for field in ("headers", "query"):
        mapped = _intersect_maps(field, getattr(a, field), getattr(b, field))
        if isinstance(mapped, Inexpressible):
            return mapped
        never |= mapped is NEVER
        folded[field] = mapped or None
    without = _union_without(a.without_headers, b.without_headers)
    if isinstance(without, Inexpressible):
        return without
    folded["without_headers"] = without or None
    return NEVER if never else Match(**folded)


def _lowered(match: StringMatch) -> StringMatch:
    return match.model_copy(update={match.kind: match.value.lower()})


def _union_without(
    a: Mapping[str, StringMatch] | None, b: Mapping[str, StringMatch] | None
) -> dict[str, StringMatch] | Inexpressible:
    """Both sides' negative conditions hold together; one name with two different conditions
    would need two negative conditions on one header, which a match cannot say."""
    merged = dict(a or {})
    for name, condition in (b or {}).items():
        if name in merged and merged[name] != condition:
            return Inexpressible(
                f"withoutHeaders.{name}",
                f"the two sides exclude different values ({merged[name].describe()!r}, "
                f"{condition.describe()!r})",
            )
        merged[name] = condition
    return merged


def _intersect_maps(
    field: str, a: dict[str, StringMatch] | None, b: dict[str, StringMatch] | None
) -> dict[str, StringMatch] | Inexpressible | None:
    if not a or not b:
        return dict(a or b or {})
    merged: dict[str, StringMatch] = dict(a)
    for key, value in b.items():
        both = intersect_strings(f"{field}.{key}", merged.get(key), value)
        if both is NEVER or isinstance(both, Inexpressible):
            return both
        merged[key] = both
    return merged


def intersect_lists(
    outer: list[Match] | None, inner: list[Match] | None
) -> list[Match] | Inexpressible | None:
    """Alternatives accepting what both lists accept (None means "any request"); [] when no
    request can; Inexpressible when a needed alternative cannot be written as one match."""
    if outer is None:
        return inner
    if inner is None:
        return outer
    combined: list[Match] = []
    for a in outer:
        for b in inner:
            both = intersect(a, b)
            if isinstance(both, Inexpressible):
                return both
            if both is not NEVER and both not in combined:
                combined.append(both)
    return combined
