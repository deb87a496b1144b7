"""A route's header changes: on the request once the route is picked, on the app's answer on its
way back. Envoy removes first, then sets, then adds; so do these rules."""

from __future__ import annotations

from sailplan.model import HeaderChanges, Route

from .quoting import bare, literal_format


def _changes(direction: str, changes: HeaderChanges | None, on_route: str | None) -> list[str]:
    """The rules of one direction's changes, each under `on_route` (None: unconditional, in a
    section only that route's requests reach)."""
    if changes is None:
        return []
    when = "" if on_route is None else f" if {on_route}"
    lines = [f"{direction} del-header {bare(name)}{when}" for name in changes.remove or []]
    lines += [
        f"{direction} set-header {bare(name)} {literal_format(value)}{when}"
        for name, value in sorted((changes.set or {}).items())
    ]
    lines += [
        f"{direction} add-header {bare(name)} {literal_format(value)}{when}"
        for name, value in sorted((changes.add or {}).items())
    ]
    return lines


def request_header_lines(route: Route, on_route: str) -> list[str]:
    """In the routing frontend, after the faults (an aborted request is never forwarded) and
    before the mirror, which copies the request as it will be forwarded."""
    if route.headers is None:
        return []
    return _changes("http-request", route.headers.request, on_route)


def response_header_lines(route: Route, on_route: str) -> list[str]:
    """`http-response` rules run on a server's answers only: the proxy's own answers (an abort,
    a 503 or 504 it makes) keep their headers, as Envoy's local replies do."""
    if route.headers is None:
        return []
    return _changes("http-response", route.headers.response, on_route)


def destination_header_lines(route: Route, version: str) -> list[str]:
    """`destinationHeaders` of one version, in the route's backend to that version: its
    requests only, after the routing frontend's rules (the route's own changes, which touch
    other headers), and its answers only."""
    changes = (route.destination_headers or {}).get(version)
    if changes is None:
        return []
    return [
        *_changes("http-request", changes.request, None),
        *_changes("http-response", changes.response, None),
    ]
