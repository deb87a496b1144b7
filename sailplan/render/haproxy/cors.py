"""A route's CORS policy, as Envoy's CORS filter applies it (istio's `corsPolicy`).

Envoy's filter runs once the route is picked and before the fault filter. A request whose Origin
is allowed is latched: a preflight (`OPTIONS` with a non-empty Access-Control-Request-Method) is
answered 200 at once, and every answer to the request, the filter's own preflight answer and the
proxy's local replies included, gets access-control-allow-origin (the request's origin), the
credentials flag and the expose headers. A request from another origin is left alone, its
preflight forwarded to the app (Istio's default `unmatchedPreflights: FORWARD`).

`http-after-response` is HAProxy's counterpart of the filter's encoder side: it runs on every
answer, the app's and HAProxy's own (`http-request return`, redirects, 503s and 504s).
"""

from __future__ import annotations

from sailplan.model import Route, StringMatch

from .quoting import acl_name, bare, literal_format, quote

# The allowed origin of the request, set once the route is picked; its presence is what makes
# the answers carry the CORS headers.
ORIGIN_VAR = "txn.cors_origin"
_METHOD = {"exact": "str", "prefix": "beg", "regex": "reg"}
_HAS_ORIGIN = "{ req.fhdr(origin) -m len gt 0 }"
_PREFLIGHT = "METH_OPTIONS { req.fhdr(access-control-request-method) -m len gt 0 }"


def _origin_pattern(origin: StringMatch) -> str:
    value = origin.value
    if origin.kind == "regex":
        # Envoy's safe_regex matches the whole origin; HAProxy's `-m reg` searches in it.
        value = f"^(?:{value})$"
    return f"-m {_METHOD[origin.kind]} -- {quote(value)}"


def cors_lines(route: Route, on_route: str, scope: str) -> list[str]:
    """In the routing frontend right after the route is picked, before its faults. `scope`
    keeps the ACL name unique within the frontend."""
    cors = route.cors
    if cors is None:
        return []
    allowed = acl_name(scope, "cors")
    if cors.allows_any_origin:
        # An entry matching the text `*` allows every origin in Envoy.
        lines = [f"acl {allowed} req.fhdr(origin) -m found"]
    else:
        # Declarations under one name are ORed.
        lines = [
            f"acl {allowed} req.fhdr(origin) {_origin_pattern(origin)}"
            for origin in cors.allow_origins
        ]
    # Envoy treats a missing or empty Origin as no CORS request at all.
    condition = f"{on_route} {_HAS_ORIGIN} {allowed}"
    lines.append(f"http-request set-var({ORIGIN_VAR}) req.fhdr(origin) if {condition}")
    preflight = "http-request return status 200"
    for name, values in (
        ("access-control-allow-methods", cors.allow_methods),
        ("access-control-allow-headers", cors.allow_headers),
    ):
        if values:
            preflight += f" hdr {bare(name)} {literal_format(','.join(values))}"
    if cors.max_age is not None:
        preflight += f" hdr access-control-max-age {cors.max_age.ms // 1000}"
    lines.append(f"{preflight} if {condition} {_PREFLIGHT}")
    latched = f"{on_route} {{ var({ORIGIN_VAR}) -m found }}"
    lines.append(
        f"http-after-response set-header access-control-allow-origin %[var({ORIGIN_VAR})] "
        f"if {latched}"
    )
    if cors.allow_credentials:
        lines.append(
            f"http-after-response set-header access-control-allow-credentials true if {latched}"
        )
    if cors.expose_headers:
        lines.append(
            "http-after-response set-header access-control-expose-headers "
            f"{literal_format(','.join(cors.expose_headers))} if {latched}"
        )
    return lines
