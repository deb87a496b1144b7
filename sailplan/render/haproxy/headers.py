"""A route's header changes: on the request once the route is picked, on the app's answer on its
way back. Envoy removes first, then sets, then adds; so do these rules."""

from __future__ import annotations

from sailplan.model import HeaderChanges, Route

from .quoting import bare, literal_format


def _changes(direction: str, changes: HeaderChanges | None, on_route: str) -> list[str]:
    if changes is None:
        return []
    lines = [f"{direction} del-header {bare(name)} if {on_route}" for name in changes.remove or []]
    lines += [
        f"{direction} set-header {bare(name)} {literal_format(value)} if {on_route}"
        for name, value in sorted((changes.set or {}).items())
    ]
    lines += [
        f"{direction} add-header {bare(name)} {literal_format(value)} if {on_route}"
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
