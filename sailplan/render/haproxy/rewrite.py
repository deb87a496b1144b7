"""A route's rewrites: the path (a prefix, an exact path, or by regex) and the authority, once the
route is picked and before a mirror copies the request (Envoy's router rewrites the request
before it shadows it)."""

from __future__ import annotations

from collections.abc import Sequence

from sailplan.model import Route

from .quoting import literal_format, quote

ALTERNATIVE_VAR = "txn.alt"


def pcre_literal(text: str) -> str:
    """Text as a PCRE pattern of itself: every character but letters and digits escaped (PCRE
    reads a backslash before any non-alphanumeric character as that character)."""
    return "".join(char if char.isalnum() else f"\\{char}" for char in text)


def needs_alternative(route: Route) -> bool:
    """A prefix rewrite replaces the prefix of the alternative that matched: with several
    alternatives the proxy remembers which one did."""
    return (
        route.rewrite is not None and route.rewrite.uri is not None and len(route.match or []) > 1
    )


def alternative_lines(prefix: Sequence[str], groups: list[list[str]]) -> list[str]:
    """Before the route's own lines: the first alternative that holds, numbered, in the same
    order Istio turns match blocks into Envoy routes."""
    unset = f"!{{ var({ALTERNATIVE_VAR}) -m found }}"
    return [
        f"http-request set-var({ALTERNATIVE_VAR}) int({number}) if "
        + " ".join([*prefix, unset, *group])
        for number, group in enumerate(groups)
    ]


def rewrite_lines(route: Route, on_route: str) -> list[str]:
    rewrite = route.rewrite
    if rewrite is None:
        return []
    lines = []
    if rewrite.uri is not None:
        several = needs_alternative(route)
        for number, match in enumerate(route.match or []):
            # check refuses a prefix rewrite without a prefix or exact path (model/route.py).
            assert match.path is not None and match.path.kind != "regex"
            condition = on_route
            if several:
                condition += f" {{ var({ALTERNATIVE_VAR}) -m int eq {number} }}"
            if match.path.kind == "exact":
                lines.append(f"http-request set-path {literal_format(rewrite.uri)} if {condition}")
            else:
                # Envoy replaces the prefix as the request wrote it, in any case it matched.
                anycase = "(?i)" if match.ignore_uri_case else ""
                pattern = f"{anycase}^{pcre_literal(match.path.value)}(.*)"
                lines.append(
                    f"http-request replace-path {quote(pattern)} "
                    f"{literal_format(rewrite.uri + chr(92) + '1')} if {condition}"
                )
    if rewrite.uri_regex_rewrite is not None:
        regex = rewrite.uri_regex_rewrite
        # The spec's pattern matches the whole path, as a match's regex does.
        lines.append(
            f"http-request replace-path {quote(f'^(?:{regex.match})$')} "
            f"{literal_format(regex.rewrite)} if {on_route}"
        )
    if rewrite.authority is not None:
        lines.append(f"http-request set-header host {quote(rewrite.authority)} if {on_route}")
    return lines
