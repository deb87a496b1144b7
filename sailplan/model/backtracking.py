"""Regexes that could stall the builtin proxy, refused where the builtin data plane runs them.

Istio hands regexes to Envoy's RE2, which matches in linear time. The builtin proxy is HAProxy,
whose PCRE2 backtracks: `(a+)+$` or `(a|a)+$` take exponential time on a value that almost
matches, `.*a.*b` quadratic time, and one such request per connection slows a sidecar to a crawl
(issue 10 measured 12,079 rps falling to ~150). HAProxy has no linear-time matcher, so the builtin
plane accepts only patterns whose backtracking stays linear. The rules are conservative — a few
safe patterns are refused too — and each refusal says how to rewrite the pattern:

1. a repeated part of varying length (`(\\w+\\s?)*`, `([a-z]+\\.)+`) — unless the repetition is
   small and bounded (`(\\d{1,3}\\.){3}`);
2. a repeated alternation whose branches can start with the same character (`(a|ab)*`);
3. two unbounded repetitions that can take the same characters with nothing but those characters
   between them (`\\d+\\d+`, `.*a.*b`) — a final `.*` that can only succeed is allowed.

The pattern is parsed with Python's regex parser after mapping the few RE2-only constructs to
equivalents of the same shape; RE2 has already accepted it.
"""

from __future__ import annotations

import re
import re._constants as sre  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sailplan.model.errors import Problem, shown

if TYPE_CHECKING:
    from sailplan.model.match import Match
    from sailplan.model.mesh import Mesh

# Past this count a bounded repetition is treated as unbounded.
_SMALL_REPEAT = 16
_OTHER = 256  # every code point above Latin-1, as one symbol
_ALL = frozenset(range(_OTHER + 1))
_DIGIT = frozenset(range(ord("0"), ord("9") + 1))
_WORD = _DIGIT | frozenset(range(ord("a"), ord("z") + 1)) | frozenset(range(ord("A"), ord("Z") + 1))
_WORD = _WORD | {ord("_"), _OTHER} | frozenset(range(0xC0, 0x100))
_SPACE = frozenset(b" \t\n\r\f\v")
_CATEGORIES = {
    sre.CATEGORY_DIGIT: _DIGIT,
    sre.CATEGORY_NOT_DIGIT: _ALL - _DIGIT,
    sre.CATEGORY_WORD: _WORD,
    sre.CATEGORY_NOT_WORD: _ALL - _WORD,
    sre.CATEGORY_SPACE: _SPACE,
    sre.CATEGORY_NOT_SPACE: _ALL - _SPACE,
}
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)

# RE2 syntax Python's parser does not know, mapped to constructs of the same shape.
_TO_PYTHON = [
    (re.compile(r"\\Q(.*?)(?:\\E|\Z)", re.S), lambda m: re.escape(m.group(1))),
    (re.compile(r"\\[pP](\{\^?\w+\}|\w)"), lambda m: r"\w"),
    (re.compile(r"\[:\^?\w+:\]"), lambda m: r"\w"),
    (re.compile(r"\\x\{[0-9A-Fa-f]+\}"), lambda m: r"\w"),
    (re.compile(r"\\C"), lambda m: "."),
    (re.compile(r"\\z"), lambda m: r"\Z"),
    (re.compile(r"\(\?<(?=[A-Za-z_])"), lambda m: "(?P<"),
    # Inline flags may stand anywhere in RE2; case folding only widens what is compared below.
    (re.compile(r"\(\?[imsU-]+\)"), lambda m: ""),
    (re.compile(r"\(\?[imsU-]+:"), lambda m: "(?:"),
]


class _Risk(Exception):
    pass


def backtracking_risk(pattern: str) -> str | None:
    """Why HAProxy could backtrack super-linearly on `pattern`, or None when it cannot."""
    text = pattern
    for expression, replacement in _TO_PYTHON:
        text = expression.sub(replacement, text)
    try:
        text = _mark_alternatives(text)
        with warnings.catch_warnings():
            # "Possible nested set": Python's own syntax plans, not the pattern's risk.
            warnings.simplefilter("ignore", FutureWarning)
            parsed = sre_parse.parse(text)
    except (re.error, OverflowError, RecursionError):
        return (
            "cannot be checked for backtracking on the builtin proxy: "
            "simplify it or use the istio data plane"
        )
    try:
        _check_sequence(list(parsed), at_end=True)
    except _Risk as risk:
        return str(risk)
    return None


def _mark_alternatives(text: str) -> str:
    """Put an empty group at the start of every alternative. Python's parser would otherwise
    merge `a|a` into `a` and `a|b` into `[ab]`, hiding the overlap PCRE2 backtracks over."""
    out: list[str] = []
    index, in_class = 0, False
    while index < len(text):
        char = text[index]
        if char == "\\":
            out.append(text[index : index + 2])
            index += 2
            continue
        out.append(char)
        if in_class:
            in_class = char != "]" or out[-2:] == ["[", "]"]
        elif char == "[":
            in_class = True
            if text[index + 1 : index + 2] == "^":
                out.append("^")
                index += 1
            if text[index + 1 : index + 2] == "]":  # a leading ] is a member, not the end
                out.append("]")
                index += 1
        elif char == "|":
            out.append("()")
        index += 1
    return "()" + "".join(out)


# -- the shape of a parsed pattern ------------------------------------------------------------


def _chars(items: list[Any]) -> frozenset[int]:
    """Every character the items can match."""
    found: set[int] = set()
    for op, av in items:
        found |= _item_chars(op, av)
    return frozenset(found)


def _folded(code: int) -> set[int]:
    char = chr(code) if code < _OTHER else ""
    codes = {code} | {ord(c) for c in (char.lower(), char.upper()) if len(c) == 1}
    return {c if c < _OTHER else _OTHER for c in codes}


def _item_chars(op: Any, av: Any) -> frozenset[int]:
    if op is sre.LITERAL:
        return frozenset(_folded(av))
    if op is sre.NOT_LITERAL:
        return _ALL - {av}
    if op is sre.ANY:
        return _ALL
    if op is sre.IN:
        return _class_chars(av)
    if op is sre.SUBPATTERN:
        return _chars(list(av[-1]))
    if op in _REPEATS:
        return _chars(list(av[2]))
    if op is sre.BRANCH:
        return frozenset().union(*(_chars(list(branch)) for branch in av[1]))
    return frozenset()  # anchors and the like match no character


def _class_chars(items: list[Any]) -> frozenset[int]:
    found: set[int] = set()
    negate = False
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            found |= _folded(av)
        elif op is sre.RANGE:
            low, high = av
            found |= set(range(min(low, _OTHER), min(high, _OTHER) + 1))
        elif op is sre.CATEGORY:
            found |= _CATEGORIES.get(av, _ALL)
    return _ALL - found | {_OTHER} if negate else frozenset(found)


def _lengths(items: list[Any]) -> tuple[int, float]:
    """The shortest and longest text the items can match (inf when unbounded)."""
    low, high = 0, 0.0
    for op, av in items:
        item_low, item_high = _item_lengths(op, av)
        low += item_low
        high += item_high
    return low, high


def _item_lengths(op: Any, av: Any) -> tuple[int, float]:
    if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
        return 1, 1
    if op is sre.SUBPATTERN:
        return _lengths(list(av[-1]))
    if op in _REPEATS:
        low, high, body = av
        body_low, body_high = _lengths(list(body))
        top = float("inf") if high == sre.MAXREPEAT else high * body_high
        return low * body_low, top
    if op is sre.BRANCH:
        spans = [_lengths(list(branch)) for branch in av[1]]
        return min(s[0] for s in spans), max(s[1] for s in spans)
    return 0, 0


def _first(items: list[Any]) -> frozenset[int]:
    """Characters a match of the items can start with."""
    found: set[int] = set()
    for op, av in items:
        if op is sre.SUBPATTERN:
            found |= _first(list(av[-1]))
        elif op in _REPEATS:
            found |= _first(list(av[2]))
        elif op is sre.BRANCH:
            for branch in av[1]:
                found |= _first(list(branch))
        else:
            found |= _item_chars(op, av)
        if _item_lengths(op, av)[0] > 0:
            break
    return frozenset(found)


def _unbounded(op: Any, av: Any) -> bool:
    return op in _REPEATS and (av[1] == sre.MAXREPEAT or av[1] > _SMALL_REPEAT)


def _repeats_inside(items: list[Any]) -> Iterator[tuple[Any, Any]]:
    for op, av in items:
        if op in _REPEATS:
            yield op, av
            yield from _repeats_inside(list(av[2]))
        elif op is sre.SUBPATTERN:
            yield from _repeats_inside(list(av[-1]))
        elif op is sre.BRANCH:
            for branch in av[1]:
                yield from _repeats_inside(list(branch))


# -- the rules ----------------------------------------------------------------------------------


def _check_sequence(items: list[Any], *, at_end: bool) -> None:
    for index, (op, av) in enumerate(items):
        last = at_end and index == len(items) - 1
        if op in _REPEATS:
            _check_repeat(op, av)
            _check_sequence(list(av[2]), at_end=False)
        elif op is sre.SUBPATTERN:
            _check_sequence(list(av[-1]), at_end=last)
        elif op is sre.BRANCH:
            for branch in av[1]:
                _check_sequence(list(branch), at_end=last)
    _check_adjacent(items, at_end=at_end)


def _check_repeat(op: Any, av: Any) -> None:
    high, body = av[1], list(av[2])
    if high <= 1:
        return
    body_low, body_high = _lengths(body)
    unbounded = _unbounded(op, av)
    inner_unbounded = any(_unbounded(o, a) for o, a in _repeats_inside(body))
    if body_low != body_high and (unbounded or inner_unbounded):
        raise _Risk(
            "repeats a part of varying length, which HAProxy's backtracking matcher can take "
            "exponential time on; on the builtin data plane repeat single characters instead "
            "(e.g. `[a-z.]+` for `([a-z]+\\.)+`) or use the istio data plane"
        )
    if unbounded:
        for _, inner_av in _branches(body):
            firsts = [_first(list(branch)) for branch in inner_av[1]]
            empty = [_lengths(list(branch))[0] == 0 for branch in inner_av[1]]
            for i, one in enumerate(firsts):
                if sum(empty) > 1 or any(one & other for other in firsts[i + 1 :]):
                    raise _Risk(
                        "repeats alternatives that can start with the same character, which "
                        "HAProxy's backtracking matcher can take exponential time on; on the "
                        "builtin data plane make each alternative start differently (e.g. "
                        "`a(b)?` for `(a|ab)`) or use the istio data plane"
                    )


def _branches(items: list[Any]) -> Iterator[tuple[Any, Any]]:
    for op, av in items:
        if op is sre.BRANCH:
            yield op, av
            for branch in av[1]:
                yield from _branches(list(branch))
        elif op is sre.SUBPATTERN:
            yield from _branches(list(av[-1]))


def _check_adjacent(items: list[Any], *, at_end: bool) -> None:
    """Two unbounded repetitions that can share characters, with only characters the first
    can take (or optional parts) between them: each split point is tried."""
    for index, (op, av) in enumerate(items):
        if not _unbounded(op, av):
            continue
        taken = _chars(list(av[2]))
        for later_index in range(index + 1, len(items)):
            later_op, later_av = items[later_index]
            if _unbounded(later_op, later_av):
                rest = items[later_index + 1 :]
                tail_succeeds = (
                    at_end
                    and _chars(list(later_av[2])) >= _ALL - {ord("\n")}
                    and _lengths(rest)[0] == 0
                )
                if taken & _chars(list(later_av[2])) and not tail_succeeds:
                    raise _Risk(
                        "has two repetitions that can match the same characters one after "
                        "the other (such as `.*a.*b` or `\\d+\\d+`), which HAProxy's "
                        "backtracking matcher takes quadratic time or worse on; on the builtin "
                        "data plane exclude what follows (e.g. `[^a]*a`) or use the istio "
                        "data plane"
                    )
                break
            between = _item_chars(later_op, later_av)
            if _item_lengths(later_op, later_av)[0] > 0 and not between <= taken:
                break


# -- where regexes are in a mesh ---------------------------------------------------------------


def _match_regexes(at: str, match: Match) -> Iterator[tuple[str, str]]:
    for field in ("path", "method"):
        condition = getattr(match, field)
        if condition is not None and condition.kind == "regex":
            yield f"{at}.{field}.regex", condition.value
    for group in ("headers", "query", "without_headers"):
        for name, condition in sorted((getattr(match, group) or {}).items()):
            if condition.kind == "regex":
                where = "withoutHeaders" if group == "without_headers" else group
                yield f"{at}.{where}.{name}.regex", condition.value


def backtracking_problems(mesh: Mesh) -> list[Problem]:
    """Every regex of the mesh the builtin proxy could stall on, at its path."""
    found: list[tuple[str, str]] = []
    for service_name, service in mesh.services.items():
        for index, route in enumerate(service.routes):
            for number, match in enumerate(route.match or []):
                at = f"services.{service_name}.routes[{index}].match[{number}]"
                found += _match_regexes(at, match)
            if route.rewrite is not None and route.rewrite.uri_regex_rewrite is not None:
                at = f"services.{service_name}.routes[{index}].rewrite.uriRegexRewrite.match"
                found.append((at, route.rewrite.uri_regex_rewrite.match))
            for number, origin in enumerate(route.cors.allow_origins if route.cors else []):
                if origin.kind == "regex":
                    at = f"services.{service_name}.routes[{index}].cors.allowOrigins[{number}]"
                    found.append((f"{at}.regex", origin.value))
    if mesh.ingress is not None:
        for index, ingress_route in enumerate(mesh.ingress.routes):
            for number, match in enumerate(ingress_route.match or []):
                found += _match_regexes(f"ingress.routes[{index}].match[{number}]", match)
    problems = []
    for path, pattern in found:
        risk = backtracking_risk(pattern)
        if risk is not None:
            problems.append(Problem(path, f"{shown(pattern)} {risk}"))
    return problems
