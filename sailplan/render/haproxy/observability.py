"""What the builtin proxies tell about each request: one JSON access-log line, an `x-request-id`,
and backend names that say which route and version served it (the Prometheus exporter labels
its series with them).

Field names follow Istio's JSON access log (Envoy's command operators in snake case), so one log
pipeline reads both planes; `version`, `retries` and `proxy` are ours. `response_flags` uses
Envoy's short flags: DI (fault delay), FI (fault abort), UO (connection pool overflow), NR (no
route), UT (upstream request timeout), UF (upstream connection failure), UH (no healthy upstream),
DF (an explicit proxy's passthrough found no address for the Host),
comma-separated as Envoy writes them (`DI,UT`); `-` when none.

Rules here run in every frontend that logs (outbound, inbound, ingress, and past
FLAT_SERVICE_LIMIT services the per-service routing frontends, which log instead of the
frontend that hopped into them, so each request is logged once per proxy).
"""

from __future__ import annotations

from functools import cache

from sailplan.model import Service

from .quoting import bare

# Set on the proxy's own answers (`http-request return`) to name their flag; never reaches the
# client and cannot be set by an app (removed from every upstream response).
FLAG_HEADER = "x-sailplan-flag"
# The caller's address, handed to a per-service routing frontend over its unix socket.
CALLER_HEADER = "x-sailplan-caller"
REQUEST_ID_HEADER = "x-request-id"

# (field, value) in output order. HAProxy evaluates request fetches only while the request is
# there, so the request's parts are kept in txn variables by `_request_lines` and read back here;
# `json(utf8s)` escapes them (and drops invalid UTF-8) so every line parses.
_FIELDS = (
    # The moment the request's headers were read, ISO 8601 in UTC with milliseconds.
    (
        "start_time",
        '"%[var(txn.log_start),div(1000),utime(%Y-%m-%dT%H:%M:%S)]'
        '.%[var(txn.log_start),mod(1000),add(1000),regsub(^1,)]Z"',
    ),
    ("downstream_remote_address", '"%[var(txn.log_caller),json(utf8s)]"'),
    ("method", '"%HM"'),
    ("authority", '"%[var(txn.log_authority),json(utf8s)]"'),
    ("path", '"%[var(txn.log_path),json(utf8s)]"'),
    ("response_code", "%ST"),
    ("response_flags", '"%[var(txn.log_flags,-)]"'),
    ("route_name", '"%[var(txn.log_route,-)]"'),
    ("version", '"%[var(txn.log_version,-)]"'),
    ("upstream_cluster", '"%b"'),
    ("upstream_host", '"%si:%sp"'),
    ("duration", "%Ta"),
    # A string: HAProxy writes `+N` when the last attempt was redispatched to another server.
    ("retries", '"%rc"'),
    ("request_id", '"%[var(txn.log_request_id),json(utf8s)]"'),
    ("proxy", '"{proxy}"'),
)
ACCESS_LOG_FIELDS = tuple(name for name, _ in _FIELDS)


@cache
def log_format(proxy: str) -> str:
    """The `log-format` argument: one JSON object per request, without spaces, so it is one word.
    `proxy` is `outbound`, `inbound` or `ingress`, also in the routing frontends behind a hop."""
    fields = ",".join(f'"{name}":{value.replace("{proxy}", proxy)}' for name, value in _FIELDS)
    return "'{" + fields + "}'"


def frontend_lines(proxy: str, *, logged: bool, caller_from_header: bool = False) -> list[str]:
    """The first lines of a frontend that carries requests: an id for the request when it has
    none (Envoy's `x-request-id`, set whether or not anything logs), and with `logged` (the
    mesh's `accessLog`) its log format, the request's parts remembered for the log line and the
    response flag. Per frontend, not in `defaults`: the health and admin frontends log nothing."""
    return list(_frontend_lines(proxy, logged, caller_from_header))


# Built once per kind of frontend: a large mesh has a routing frontend per service.
@cache
def _frontend_lines(proxy: str, logged: bool, caller_from_header: bool) -> tuple[str, ...]:
    if not logged:
        return (
            # `defaults` has `log global` for the proxy's own notices (servers going down).
            "no log",
            _REQUEST_ID_LINE,
            # The flag of the proxy's own answers is for the log line; it never reaches anyone.
            f"http-response del-header {FLAG_HEADER}",
            f"http-after-response del-header {FLAG_HEADER}",
        )
    return (
        f"log-format {log_format(proxy)}",
        *_request_lines(caller_from_header),
        *_response_lines(),
    )


# W3C traceparent/tracestate and B3 headers pass through untouched, as every header does.
_REQUEST_ID_LINE = (
    f"http-request set-header {REQUEST_ID_HEADER} %[uuid] "
    f"unless {{ req.hdr({REQUEST_ID_HEADER}) -m len gt 0 }}"
)


def _request_lines(caller_from_header: bool) -> list[str]:
    lines = ["http-request set-var(txn.log_start) date(0,ms)"]
    if caller_from_header:
        lines += [
            f"http-request set-var(txn.log_caller) req.hdr({CALLER_HEADER})",
            f"http-request del-header {CALLER_HEADER}",
        ]
    else:
        lines.append("http-request set-var-fmt(txn.log_caller) %[src]:%[src_port]")
    return [
        *lines,
        "http-request set-var(txn.log_authority) req.hdr(host)",
        "http-request set-var(txn.log_path) pathq",
        _REQUEST_ID_LINE,
        f"http-request set-var(txn.log_request_id) req.hdr({REQUEST_ID_HEADER})",
    ]


def hop_lines(hop_condition: str, *, logged: bool) -> list[str]:
    """Before hopping into a per-service routing frontend: that frontend logs the request."""
    if not logged:
        return []
    return [
        f"http-request set-header {CALLER_HEADER} %[var(txn.log_caller)] if {hop_condition}",
        f"http-request set-log-level silent if {hop_condition}",
    ]


def _response_lines() -> list[str]:
    """The response flag, from the proxy's own answer or from how the upstream failed."""
    no_flag = "!{ var(txn.log_flags) -m found }"
    # Without an upstream answer, a 504 is the route timeout and a 503 a failed connection (a
    # server was chosen) or no server to choose.
    proxy_answer = f"!{{ var(txn.log_answered) -m bool }} {no_flag}"
    return [
        "http-response set-var(txn.log_answered) bool(true)",
        f"http-response del-header {FLAG_HEADER}",
        f"http-after-response set-var(txn.log_flags) res.hdr({FLAG_HEADER}) "
        f"if {{ res.hdr({FLAG_HEADER}) -m found }}",
        f"http-after-response del-header {FLAG_HEADER}",
        f"http-after-response set-var(txn.log_flags) str(UT) if {{ status 504 }} {proxy_answer}",
        "http-after-response set-var(txn.log_flags) str(UF) "
        f"if {{ status 503 }} {proxy_answer} {{ srv_name -m found }}",
        f"http-after-response set-var(txn.log_flags) str(UH) if {{ status 503 }} {proxy_answer}",
        # mesh.lua's delay action sets txn.log_delayed.
        "http-after-response set-var-fmt(txn.log_flags) DI,%[var(txn.log_flags)] "
        f"if {_DELAYED} {{ var(txn.log_flags) -m found }}",
        f"http-after-response set-var(txn.log_flags) str(DI) if {_DELAYED} {no_flag}",
    ]


_DELAYED = "{ var(txn.log_delayed) -m found }"


def flag(name: str) -> str:
    """Appended to an `http-request return`: the flag its log line carries."""
    return f" hdr {FLAG_HEADER} {name}"


def backend_lines(
    route: str, version: str | None, condition: str = "", *, logged: bool
) -> list[str]:
    """In a backend (or under `condition`): the route and version its log lines name."""
    if not logged:
        return []
    when = f" if {condition}" if condition else ""
    lines = [f"http-request set-var(txn.log_route) str({bare(route)}){when}"]
    if version is not None:
        lines.append(f"http-request set-var(txn.log_version) str({bare(version)})")
    return lines


# What Istio's VirtualService calls the rule that sends requests no route matched to every version.
ALL_VERSIONS_ROUTE = "all-versions"


def route_label(service: Service, index: int) -> str:
    """A route's name in backend names, metrics and the access log: its `name`, else Istio's
    `route-<index>`; `route.<index>` when another route of the service is named `route-<index>`
    (a `.` never occurs in a route name, so backend names stay unique)."""
    route = service.routes[index]
    if route.name is not None:
        return route.name
    label = f"route-{index}"
    if any(other.name == label for other in service.routes):
        return f"route.{index}"
    return label
