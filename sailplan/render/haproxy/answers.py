"""Routes that answer the request themselves: a redirect, or a fixed response (Istio's
`redirect` and `directResponse`). They act once the route is picked, after its faults, as Envoy's
router does after the fault filter."""

from __future__ import annotations

from sailplan.model import Route

from .quoting import format_text, quote


def _location(route: Route) -> tuple[str, str]:
    """The Location as a log-format string, without and with the request's query string."""
    redirect = route.redirect
    assert redirect is not None
    # The request's own scheme unless one is given (the gateway may terminate TLS).
    scheme = redirect.scheme or "%[ssl_fc,iif(https,http)]"
    if redirect.authority is not None:
        host = format_text(redirect.authority)
        if redirect.port is not None:
            host = host.split(":", 1)[0]
    elif redirect.port is not None:
        host = "%[req.hdr(host),field(1,:)]"
    else:
        host = "%[req.hdr(host)]"
    port = f":{redirect.port}" if redirect.port is not None else ""
    path = format_text(redirect.uri) if redirect.uri is not None else "%[path]"
    base = f"{scheme}://{host}{port}{path}"
    return base, f"{base}?%[query]"


def answer_lines(route: Route, on_route: str) -> list[str]:
    if route.redirect is not None:
        plain, with_query = _location(route)
        code = route.redirect.code
        # Envoy keeps the request's query string on a redirect.
        has_query = "{ query -m len gt 0 }"
        return [
            f"http-request redirect location {quote(with_query)} code {code} "
            f"if {on_route} {has_query}",
            f"http-request redirect location {quote(plain)} code {code} if {on_route}",
        ]
    if route.respond is not None:
        line = f"http-request return status {route.respond.status}"
        if route.respond.body:
            line += f" content-type text/plain string {quote(route.respond.body)}"
        return [f"{line} if {on_route}"]
    return []
