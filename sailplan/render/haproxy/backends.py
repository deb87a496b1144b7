"""Backends: a route's split over versions, its retries and timeouts, the service's load balancing,
connection pool and outlier detection."""

from __future__ import annotations

from functools import cache

from sailplan.model import Duration, Route, Service
from sailplan.model.policy import ConnectionPool, HashCookie
from sailplan.model.route import RETRY_STATUS_CODES

from .context import Context, Writer
from .endpoints import servers
from .globals import DEFAULT_SERVER_TIMEOUT, OUTLIER_MAP, OVERFLOW_BODY
from .headers import destination_header_lines
from .observability import ALL_VERSIONS_ROUTE, backend_lines, flag, route_label
from .quoting import bare, fetch_text, format_text, ident, quote

# HAProxy 2.6 retry-on keywords for each condition of the spec, with Envoy's meaning of each.
# Envoy's `reset` covers any reset before an answer (a broken answer is a protocol error, so a
# reset), failed connections included; `5xx` covers resets too, and 5xx answers, of which HAProxy
# can retry 500-504 only. An empty tuple:
# nothing HAProxy could retry, as for Envoy to an HTTP/1.1 app (no stream is refused, no HTTP/3
# is spoken; `retriable-status-codes` only says the listed codes are retried). Conditions
# missing here are refused by `check` on the builtin plane (model/route.py).
_RETRY_ON: dict[str, tuple[str, ...]] = {
    "5xx": (
        "500",
        "501",
        "502",
        "503",
        "504",
        "conn-failure",
        "empty-response",
        "junk-response",
        "response-timeout",
    ),
    "gateway-error": ("502", "503", "504"),
    "reset": ("conn-failure", "empty-response", "junk-response", "response-timeout"),
    "reset-before-request": ("conn-failure",),
    "connect-failure": ("conn-failure",),
    "refused-stream": (),
    "http3-post-connect-failure": (),
    "retriable-status-codes": (),
    **{str(code): (str(code),) for code in RETRY_STATUS_CODES},
}
# Istio's default retry policy for a route without `retries`: 2 retries on connect-failure,
# refused-stream, unavailable, cancelled (the last two are gRPC statuses, refused-stream an
# HTTP/2 stream error: none can reach an HTTP/1 backend), no status codes. A request the app has
# seen is never retried. `option redispatch 1` sends each retry to the next endpoint, as Envoy's
# previous_hosts predicate does.
_DEFAULT_RETRIES = ["retries 2", "retry-on conn-failure"]
_BALANCE = {"round-robin": "roundrobin", "random": "random", "least-request": "leastconn"}


ATTEMPTS_SUFFIX = "__attempts"


def route_backend(service_name: str, service: Service, route_index: int, version: str) -> str:
    """`<service>__<route name>__<version>`: what metrics and the access log call it."""
    return ident(service_name, route_label(service, route_index), version)


def all_versions_backend(service_name: str) -> str:
    return ident(service_name, "all")


def backend_choice(ctx: Context, service_name: str, *, guarded: bool = False) -> list[str]:
    """`use_backend` lines: the route's split over versions, else every version."""
    service = ctx.mesh.services[service_name]
    lines = []
    for index, route in enumerate(service.routes):
        on_route = f"{{ var(txn.route) -m str {service_name}.{index} }}"
        weights = [(v, w) for v, w in route.weights.items() if w > 0]
        bound = 0
        for position, (version, weight) in enumerate(weights):
            backend = route_backend(service_name, service, index, version)
            if position == len(weights) - 1:
                lines.append(f"use_backend {backend} if {on_route}")
            else:
                bound += weight
                lines.append(
                    f"use_backend {backend} if {on_route} {{ var(txn.draw) -m int lt {bound} }}"
                )
    if guarded:
        lines.append(
            f"use_backend {all_versions_backend(service_name)} if {{ var(txn.svc) -m str {service_name} }}"
        )
    else:
        lines.append(f"default_backend {all_versions_backend(service_name)}")
    return lines


def _pool_lines(service: Service) -> list[str]:
    """Load balancing and the connection pool's options of the section holding the servers."""
    policy = service.policy
    lines = []
    if policy is not None and policy.load_balancer is not None:
        lb = policy.load_balancer
        if lb.algorithm is not None:
            lines.append(f"balance {_BALANCE[lb.algorithm]}")
        elif lb.hash_header is not None:
            lines += [f"balance hdr({bare(lb.hash_header)})", "hash-type consistent"]
        elif lb.hash_source_ip:
            lines += ["balance source", "hash-type consistent"]
        elif lb.hash_query_parameter is not None:
            lines += [f"balance url_param {bare(lb.hash_query_parameter)}", "hash-type consistent"]
        elif lb.hash_cookie is not None:
            lines += _hash_cookie_lines(lb.hash_cookie)
    if policy is not None and policy.connection_pool is not None:
        lines += _connection_pool_lines(policy.connection_pool)
    return lines


_OVERFLOW_ANSWER = (
    f"http-request return status 503 content-type text/plain string {quote(OVERFLOW_BODY)}"
    f"{flag('UO')}"
)


def _hash_cookie_lines(cookie: HashCookie) -> list[str]:
    """Hash on a cookie's value, in the section holding the servers (its variables are this
    transaction's: a route's attempts listener is a transaction of its own). With a ttl, a
    request without the cookie gets a new value, hashed on at once, and the answer sets it as
    Envoy's `Set-Cookie` does (the value in double quotes, which the client sends back as they
    are, so the follow-ups hash on the same text)."""
    lines = [
        f"http-request set-var(txn.lb_cookie) req.cook({fetch_text(cookie.name)})",
        # An empty value counts as no cookie, as Envoy reads it.
        "http-request unset-var(txn.lb_cookie) if { var(txn.lb_cookie) -m len 0 }",
    ]
    if cookie.ttl is not None:
        made = quote('"%[uuid]"')
        lines += [
            f"http-request set-var-fmt(txn.lb_made) {made} if !{{ var(txn.lb_cookie) -m found }}",
            "http-request set-var(txn.lb_cookie) var(txn.lb_made) if { var(txn.lb_made) -m found }",
        ]
        attributes = f"; Max-Age={cookie.ttl.ms // 1000}"
        if cookie.path is not None:
            attributes += f"; Path={cookie.path}"
        set_cookie = f"{format_text(cookie.name)}=%[var(txn.lb_made)]{format_text(attributes)}"
        lines.append(
            f"http-response add-header set-cookie {quote(set_cookie + '; HttpOnly')} "
            "if { var(txn.lb_made) -m found }"
        )
    # Without the cookie the expression has no value, and HAProxy picks round robin.
    return [*lines, "balance hash var(txn.lb_cookie)", "hash-type consistent"]


def _overflow_if(condition: str) -> str:
    return f"{_OVERFLOW_ANSWER} if {condition}"


def _overflow_lines(service: Service, members: list[str]) -> list[str]:
    """The connection pool's limits, in the backend the caller's request enters (so its log
    line carries the UO flag). `members`: the backends whose requests count together, as one
    Envoy cluster's."""
    pool = service.policy.connection_pool if service.policy is not None else None
    if pool is None:
        return []
    lines = []
    if pool.max_connections is not None or pool.http2_max_requests is not None:
        # be_conn() counts this request too.
        lines.append(f"http-request set-var(txn.pool) be_conn({members[0]})")
        lines += [
            f"http-request set-var(txn.pool) be_conn({name}),add(txn.pool)" for name in members[1:]
        ]
    if pool.max_connections is not None:
        # Envoy answers at once when the pool and its pending queue are full; maxqueue alone
        # would only redispatch, so check the queue explicitly.
        full = pool.max_connections + pool.max_pending_requests
        lines.append(_overflow_if(f"{{ var(txn.pool) -m int gt {full} }}"))
    if pool.http2_max_requests is not None:
        # The one past the limit is answered 503, as Envoy answers a request over
        # max_requests without queuing it.
        lines.append(_overflow_if(f"{{ var(txn.pool) -m int gt {pool.http2_max_requests} }}"))
    return lines


def _connection_pool_lines(pool: ConnectionPool) -> list[str]:
    """What HAProxy can honour of Istio's connectionPool besides its limits (`_overflow_lines`);
    check refuses the rest on builtin."""
    lines = []
    if pool.max_requests_per_connection == 1:
        # Each connection to an endpoint carries one request; the caller's stays alive.
        lines.append("option http-server-close")
    if pool.connect_timeout is not None:
        lines.append(f"timeout connect {pool.connect_timeout.ms}ms")
    return lines


def _server_options(service: Service) -> str:
    options = []
    policy = service.policy
    pool = policy.connection_pool if policy is not None else None
    if pool is not None and pool.max_connections is not None:
        options.append(f"maxconn {pool.max_connections}")
    return " ".join(options)


def outlier_lines(
    ctx: Context, service: Service, section: str, cluster: str, members: list[str], wait: str
) -> list[str]:
    """Outlier detection in `section`, which holds servers of a cluster: mesh.lua counts the
    answer of every attempt and ejects the server from every section in `members`. A
    tcp-response rule runs on each answer before HAProxy decides on a retry (an http-response
    rule would see the last attempt's only); it waits up to `wait`, the section's longest wait
    for an answer, for the status line. It calls Lua for a 5xx, or for a server the Lua lists
    in the map while it has errors counted. `cluster`: Istio's cluster, a version's subset or
    the whole service."""
    outlier = service.policy.outlier_detection if service.policy is not None else None
    if outlier is None:
        return []
    counting = f"{ctx.config_dir}/{OUTLIER_MAP}"
    arguments = [
        quote(counting),
        quote(cluster),
        quote(",".join(members)),
        str(outlier.consecutive_5xx_errors),
        str(outlier.consecutive_gateway_errors or 0),
        str(outlier.base_ejection_time.ms),
        str(outlier.max_ejection_percent),
        str(outlier.interval.ms),
    ]
    listed = f"srv_name,concat(@{bare(section)}),map({counting})"
    return [
        f"tcp-response inspect-delay {wait}",
        f"tcp-response content lua.sailplan_outlier {' '.join(arguments)} "
        # The status comes first in both alternatives: the server is known before its answer.
        f"if {{ status ge 500 }} || {{ status ge 0 }} {{ {listed} -m found }}",
    ]


def mirror_listener(service_name: str, version: str) -> str:
    return ident(service_name, "mirror", version)


def version_cluster(service_name: str, version: str) -> str:
    """Istio's cluster of a version's subset, as outlier detection names it."""
    return f"{service_name}|{version}"


def cluster_members(service: Service, service_name: str, version: str) -> list[str]:
    """The sections holding the servers of a version's subset: each route's backend to it (or
    the attempts listener of a route with a timeout), then the listener of copies mirrored to
    it, since Envoy sends shadow copies through the same cluster."""
    members = [
        route_backend(service_name, service, index, version)
        + (ATTEMPTS_SUFFIX if route.timeout is not None else "")
        for index, route in enumerate(service.routes)
        if route.weights.get(version, 0) > 0
    ]
    if any(m.to == version for route in service.routes for m in route.copies):
        members.append(mirror_listener(service_name, version))
    return members


def backends(ctx: Context, out: Writer, service_name: str, socket_prefix: str) -> None:
    """A backend per (route, version) the route sends traffic to, and one of every version.
    `socket_prefix` names the unix sockets of the service's deadline hops."""
    service = ctx.mesh.services[service_name]
    options = _server_options(service)
    versions = sorted(service.versions)
    # What every backend of the service repeats, once: its backends' names, the members of each
    # version's pool, the servers (bench/FINDINGS.md point 10, a render linear in services).
    weights = [route.weights for route in service.routes]
    names = {
        (index, version): route_backend(service_name, service, index, version)
        for index, split in enumerate(weights)
        for version, weight in split.items()
        if weight > 0
    }
    # Envoy keeps one connection pool per cluster, and Istio makes a cluster of each version's
    # subset: every route's backend to a version counts against the same `maxConnections`.
    pool_members = {
        version: [name for (_, to), name in names.items() if to == version] for version in versions
    }
    outlier = service.policy is not None and service.policy.outlier_detection is not None
    pool = _pool_lines(service)
    version_servers = {v: servers(ctx, service_name, v, options) for v in versions}
    for index, route in enumerate(service.routes):
        for version, weight in weights[index].items():
            if weight <= 0:
                continue
            name = names[index, version]
            where = f"services.{service_name}.routes[{index}] -> {version}"
            # The longest an attempt here waits for its answer: the per-try timeout, else the
            # route's, which the outer listener enforces.
            attempt_timeout = _attempt_timeout(route) or route.timeout
            body = outlier_lines(
                ctx,
                service,
                name + (ATTEMPTS_SUFFIX if route.timeout is not None else ""),
                version_cluster(service_name, version),
                cluster_members(service, service_name, version) if outlier else [],
                f"{attempt_timeout.ms}ms" if attempt_timeout else DEFAULT_SERVER_TIMEOUT,
            )
            body += [*pool, *_attempt_lines(route)]
            body += version_servers[version]
            logged = backend_lines(route_label(service, index), version, logged=ctx.mesh.access_log)
            logged += _overflow_lines(service, pool_members[version])
            # In the section the caller's request enters, so a timed route's attempts listener
            # gets the changed request and its answers (its own 504 included) are changed once.
            logged += destination_header_lines(route, version)
            if route.timeout is None:
                out.section(f"backend {name}", *logged, *body, comment=where)
                continue
            # Envoy's route timeout bounds the whole request, connecting and every retry
            # included; HAProxy's `timeout server` bounds one attempt's wait for an answer. So
            # the route's backend hops into a listener that makes the attempts, and its own
            # `timeout server` is the deadline for all of them together.
            socket = f"unix@{socket_prefix}.r{index}.{versions.index(version)}.sock"
            out.section(
                f"backend {name}",
                *logged,
                f"timeout server {route.timeout.ms}ms",
                "retries 0",
                f"server attempts {socket}",
                comment=f"{where}: the route's timeout, over all attempts",
            )
            out.section(
                f"listen {name}{ATTEMPTS_SUFFIX}",
                f"bind {socket} mode 600",
                # The request was logged by the frontend that received it.
                "no log",
                # Once the deadline has passed the caller is gone: make no further attempt.
                "option abortonclose",
                *body,
                comment=f"{where}: the attempts",
            )
    # Istio's cluster of the host without subset: a pool of its own.
    everyone = all_versions_backend(service_name)
    body = [
        *backend_lines(ALL_VERSIONS_ROUTE, None, logged=ctx.mesh.access_log),
        *outlier_lines(
            ctx, service, everyone, f"{service_name}|", [everyone], DEFAULT_SERVER_TIMEOUT
        ),
        *_overflow_lines(service, [everyone]),
        *pool,
        *_DEFAULT_RETRIES,
    ]
    for version in versions:
        body += version_servers[version]
    out.section(
        f"backend {everyone}",
        *body,
        comment=f"services.{service_name}: every version, for requests no route matched",
    )


def _attempt_timeout(route: Route) -> Duration | None:
    """How long one attempt may wait for its answer, when that is shorter than the route's
    timeout. The route's own timeout is the outer listener's: bounding the attempts by it too
    raced the two timers, and an inner 504 lost Envoy's UT flag in the access log."""
    per_try = route.retries.per_try_timeout if route.retries else None
    if per_try is None or (route.timeout is not None and per_try.ms >= route.timeout.ms):
        return None
    return per_try


def _attempt_lines(route: Route) -> list[str]:
    """Timeout and retries of a route. HAProxy's `timeout server` bounds each attempt, so a
    route with a per-try timeout shorter than its timeout gets it per attempt."""
    lines = []
    attempt_timeout = _attempt_timeout(route)
    if attempt_timeout is not None:
        lines.append(f"timeout server {attempt_timeout.ms}ms")
    retries = route.retries
    if retries is None:
        return lines + _DEFAULT_RETRIES
    if retries.attempts == 0:
        # Envoy makes no retry at all; HAProxy's own default would retry a connection 3 times.
        return [*lines, "retries 0"]
    return [*lines, f"retries {retries.attempts}", f"retry-on {_retry_on(retries.conditions)}"]


# Once per set of conditions: every route of a large mesh repeats a few.
@cache
def _retry_on(conditions: tuple[str, ...]) -> str:
    keywords: list[str] = []
    for condition in conditions:
        for keyword in _RETRY_ON[condition]:
            if keyword not in keywords:
                keywords.append(keyword)
    return " ".join(keywords) or "none"
