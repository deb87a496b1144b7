"""A route's match as HAProxy ACLs, and the random draws of percentages.

Every match value becomes a named ACL (`acl <name> <fetch> -m <method> -- '<value>'`) rather than
an anonymous `{ ... }` block: inside braces HAProxy ends the block at any word `}` and reads a
word starting with `-` as a flag, even quoted, so a value could close the condition or vanish.
In a named ACL `--` ends the flags and every word after it is a pattern.
"""

from __future__ import annotations

from collections.abc import Sequence

from sailplan.model import Match, StringMatch

from .quoting import acl_name, bare, quote

# A route's percentages allow decimals down to 0.0001: draw from a million.
_DRAW_RANGE = 1_000_000
_METHOD = {"exact": "str", "prefix": "beg", "regex": "reg"}


def percent_condition(percent: float) -> str:
    """A condition true for `percent`% of requests; empty when always true."""
    if percent >= 100:
        return ""
    threshold = round(percent * _DRAW_RANGE / 100)
    return f"{{ rand({_DRAW_RANGE}) -m int lt {threshold} }}"


def _fetches(match: Match) -> list[tuple[str, StringMatch, str]]:
    """(fetch, condition, how): `how` is "" for a plain condition, "-i" for a path matched in
    any letter case, "not" for a `withoutHeaders` condition."""
    fetches = []
    if match.path is not None:
        fetches.append(("path", match.path, "-i" if match.ignore_uri_case else ""))
    if match.method is not None:
        fetches.append(("method", match.method, ""))
    # fhdr: the whole header value; hdr would split it at commas and match the pieces.
    for name, header in sorted((match.headers or {}).items()):
        fetches.append((f"req.fhdr({bare(name)})", header, ""))
    for name, param in sorted((match.query or {}).items()):
        fetches.append((f"url_param({bare(name)})", param, ""))
    for name, header in sorted((match.without_headers or {}).items()):
        fetches.append((f"req.fhdr({bare(name)})", header, "not"))
    return fetches


def _pattern(kind: str, value: str) -> str:
    # HAProxy loads no pattern from an empty word: `-m str ''` would match nothing at all.
    if kind == "present" or (value == "" and kind == "prefix"):
        return "-m found"
    if value == "" and kind == "exact":
        return "-m len 0"
    return f"-m {_METHOD[kind]} -- {quote(value)}"


def alternatives(matches: Sequence[Match] | None, scope: str) -> tuple[list[str], list[list[str]]]:
    """The ACL declarations and the OR of ANDs of their names; [[]] means every request.
    `scope` keeps the names unique within a frontend."""
    if not matches:
        return [], [[]]
    declarations: list[str] = []
    groups: list[list[str]] = []
    for number, match in enumerate(matches):
        names = []
        for index, (fetch, string_match, how) in enumerate(_fetches(match)):
            name = acl_name(scope, f"m{number}", str(index))
            value = string_match.value
            if string_match.kind == "regex":
                # Envoy's safe_regex matches the whole value; HAProxy's `-m reg` searches in it.
                value = f"^(?:{value})$"
            flag = "-i " if how == "-i" else ""
            declarations.append(f"acl {name} {fetch} {flag}{_pattern(string_match.kind, value)}")
            if how != "not":
                names.append(name)
                continue
            names.append(f"!{name}")
            if string_match.kind != "present" and string_match.matches_empty():
                # Istio has Envoy read a missing header as empty here, and the condition matches
                # an empty value, so only a header that is there can fail it.
                found = acl_name(scope, f"m{number}", f"{index}f")
                declarations.append(f"acl {found} {fetch} -m found")
                names.append(found)
        groups.append(names)
    return declarations, groups


def when(*groups: Sequence[str]) -> str:
    text = " ".join(part for group in groups for part in group if part)
    return f" if {text}" if text else ""


def rule_per_alternative(
    rule: str, prefix: Sequence[str], alternatives: list[list[str]]
) -> list[str]:
    """`rule if prefix AND (alt1 OR alt2 ...)` as one line per alternative. Every prefix here
    checks that the variable the rule sets is still unset, so the lines act as one OR; one line
    would outgrow HAProxy's 64 words per line after a few alternatives."""
    return [rule + when(prefix, alternative) for alternative in alternatives]
