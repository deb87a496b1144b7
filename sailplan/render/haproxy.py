"""The builtin data plane's proxy config: a mesh compiled to `haproxy.cfg` (+ Lua) per workload.

One compiler serves the cluster (endpoints found through the headless Service of each version),
the sandbox and the benchmarks (static loopback addresses). The shape of the config:

- `outbound` (15001): the caller's side. The Host header names a service; that service's routes,
  in order, pick a route; the route's faults apply; its split picks a version backend.
- `inbound` (15006): the callee's side, straight to the app.
- `ingress` (gateway only): the ingress routes pick a service, then the same service routing.
- `health` (15021) and `admin` (15020, Prometheus `/metrics` and `/stats`).

Routing decisions are kept in transaction variables (`txn.svc`, `txn.route`, `txn.draw`), so a
split is drawn once per request and every later rule sees the same number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from sailplan import constants as c
from sailplan.model import Match, Mesh, Route, Service, StringMatch
from sailplan.model.ingress import IngressRoute

# Envoy's own texts, so clients and dashboards see the same answers on both data planes.
TIMEOUT_BODY = "upstream request timeout"
ABORT_BODY = "fault filter abort"
OVERFLOW_BODY = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
NO_UPSTREAM_BODY = "no healthy upstream"
NO_ROUTE_BODY = "no route"

# A route's percentages allow decimals down to 0.0001: draw from a million.
_DRAW_RANGE = 1_000_000

# HAProxy 2.6 retry-on keywords for each condition of the spec (Envoy's meaning of each).
_RETRY_ON = {
    "5xx": (
        "500",
        "501",
        "502",
        "503",
        "504",
        "conn-failure",
        "empty-response",
        "response-timeout",
    ),
    "gateway-error": ("502", "503", "504"),
    "reset": ("empty-response", "junk-response", "response-timeout"),
    "connect-failure": ("conn-failure",),
}
_BALANCE = {"round-robin": "roundrobin", "random": "random", "least-request": "leastconn"}
_DEFAULT_SERVER_TIMEOUT = "300s"
_HOP_SUFFIX = "__hop"
# Up to this many services, one flat list of rules is cheaper than a hop per request.
FLAT_SERVICE_LIMIT = 16


@dataclass(frozen=True)
class ProxyPorts:
    """Where the proxy listens."""

    outbound: int = c.PROXY_OUTBOUND_PORT
    inbound: int = c.PROXY_INBOUND_PORT
    admin: int = c.PROXY_ADMIN_PORT
    health: int = c.PROXY_HEALTH_PORT
    bind_address: str = "0.0.0.0"


@dataclass(frozen=True)
class DnsEndpoints:
    """Kubernetes: each version's pods behind the headless Service `<service>-<version>`."""

    namespace: str
    cluster_domain: str = "cluster.local"
    slots: int = 10


@dataclass(frozen=True)
class StaticEndpoints:
    """Sandbox and benchmarks: explicit addresses, service -> version -> [(host, port)]."""

    addresses: Mapping[str, Mapping[str, Sequence[tuple[str, int]]]]


Endpoints = DnsEndpoints | StaticEndpoints
Passthrough = Literal["original-destination", "host-header"]


@dataclass(frozen=True)
class ProxyConfig:
    """File name -> content; `haproxy.cfg` always, `mesh.lua` when a route needs Lua."""

    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def haproxy_cfg(self) -> str:
        return self.files["haproxy.cfg"]


def lua_source() -> str:
    return resources.files("sailplan.render").joinpath("mesh.lua").read_text(encoding="utf-8")


def _quote(text: str) -> str:
    """One HAProxy argument, taken literally: single quotes stop escapes and `$VAR` expansion;
    a single quote inside is closed, escaped and reopened, as in a shell."""
    return "'" + text.replace("'", "'\\''") + "'"


def _ident(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]", "_", part) for part in parts)


def _flat(service_names: Sequence[str]) -> bool:
    return len(service_names) <= FLAT_SERVICE_LIMIT


def _percent_condition(percent: float) -> str:
    """A condition true for `percent`% of requests; empty when always true."""
    if percent >= 100:
        return ""
    threshold = round(percent * _DRAW_RANGE / 100)
    return f"{{ rand({_DRAW_RANGE}) -m int lt {threshold} }}"


def _string_condition(fetch: str, match: StringMatch) -> str:
    if match.kind == "exact":
        return f"{{ {fetch} -m str {_quote(match.value)} }}"
    if match.kind == "prefix":
        return f"{{ {fetch} -m beg {_quote(match.value)} }}"
    return f"{{ {fetch} -m reg {_quote(match.value)} }}"


def _match_conditions(match: Match) -> list[str]:
    conditions = []
    if match.path is not None:
        conditions.append(_string_condition("path", match.path))
    if match.method is not None:
        conditions.append(_string_condition("method", match.method))
    for name, header in sorted((match.headers or {}).items()):
        conditions.append(_string_condition(f"req.hdr({name})", header))
    for name, param in sorted((match.query or {}).items()):
        conditions.append(_string_condition(f"url_param({name})", param))
    return conditions


def _alternatives(matches: Sequence[Match] | None) -> list[list[str]]:
    """OR of ANDs, as HAProxy condition groups; [[]] means every request."""
    if not matches:
        return [[]]
    return [_match_conditions(m) for m in matches]


def _when(*groups: Sequence[str]) -> str:
    text = " ".join(part for group in groups for part in group if part)
    return f" if {text}" if text else ""


def _or(prefix: Sequence[str], alternatives: list[list[str]]) -> str:
    """`prefix AND (alt1 OR alt2 ...)`, repeating the prefix in each branch as HAProxy requires."""
    branches = [" ".join([*prefix, *alternative]) for alternative in alternatives]
    return " if " + " or ".join(branches)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, header: str, *body: str, comment: str | None = None) -> None:
        if self.lines:
            self.lines.append("")
        if comment:
            self.lines.append(f"# {comment}")
        self.lines.append(header)
        self.lines.extend(f"    {line}" for line in body if line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass(frozen=True)
class _Compiler:
    mesh: Mesh
    endpoints: Endpoints
    ports: ProxyPorts
    config_dir: str
    runtime_dir: str

    # -- endpoints --------------------------------------------------------------------------

    def servers(self, service_name: str, version: str, options: str) -> list[str]:
        service = self.mesh.services[service_name]
        suffix = f" {options}" if options else ""
        if isinstance(self.endpoints, DnsEndpoints):
            host = (
                f"{service_name}-{version}.{self.endpoints.namespace}"
                f".svc.{self.endpoints.cluster_domain}"
            )
            return [
                f"server-template {version}- {self.endpoints.slots} {host}:{service.port} "
                f"resolvers kubedns init-addr none resolve-prefer ipv4{suffix}"
            ]
        addresses = self.endpoints.addresses.get(service_name, {}).get(version, ())
        return [
            f"server {version}-{index} {host}:{port}{suffix}"
            for index, (host, port) in enumerate(addresses)
        ]

    def mirror_base(self, service_name: str, version: str) -> str | None:
        service = self.mesh.services[service_name]
        if isinstance(self.endpoints, DnsEndpoints):
            return (
                f"http://{service_name}-{version}.{self.endpoints.namespace}"
                f".svc.{self.endpoints.cluster_domain}:{service.port}"
            )
        addresses = self.endpoints.addresses.get(service_name, {}).get(version, ())
        if not addresses:
            return None
        host, port = addresses[0]
        return f"http://{host}:{port}"

    # -- global sections ----------------------------------------------------------------------

    def uses_lua(self) -> bool:
        return any(
            route.mirror is not None or (route.fault is not None and route.fault.delay is not None)
            for service in self.mesh.services.values()
            for route in service.routes
        )

    def globals(self, out: _Writer) -> None:
        out.section(
            "global",
            "log stdout format raw local0 notice",
            f"stats socket {self.runtime_dir}/admin.sock mode 600 level admin expose-fd listeners",
            # Two threads answer a 1,000 rps sidecar with room to spare and keep memory small.
            "nbthread 2",
            "hard-stop-after 30s",
            f"lua-load {self.config_dir}/mesh.lua" if self.uses_lua() else "",
            comment=f"generated by sailplan from mesh {self.mesh.name!r}; do not edit",
        )
        out.section(
            "defaults",
            "mode http",
            "log global",
            "option dontlognull",
            "option http-keep-alive",
            # On reload, an old worker answers the next request on an idle keep-alive connection
            # (with Connection: close) instead of closing under a client that is sending one.
            "option idle-close-on-response",
            "http-reuse safe",
            "option redispatch 1",
            "timeout connect 5s",
            "timeout client 60s",
            f"timeout server {_DEFAULT_SERVER_TIMEOUT}",
            "timeout http-request 30s",
            "timeout http-keep-alive 60s",
            "timeout queue 30s",
            f"errorfile 504 {self.config_dir}/504.http",
            f"errorfile 503 {self.config_dir}/503.http",
        )
        if isinstance(self.endpoints, DnsEndpoints):
            # parse-resolv-conf ignores search/ndots: every name used below is fully qualified.
            out.section(
                "resolvers kubedns",
                "parse-resolv-conf",
                "hold valid 5s",
                "hold nx 5s",
                "accepted_payload_size 8192",
            )
        bind = self.ports.bind_address
        out.section(
            "frontend health",
            f"bind {bind}:{self.ports.health}",
            "no log",
            f"http-request return status 200 content-type text/plain string ready if {{ path {c.PROXY_HEALTH_PATH} }}",
            "http-request return status 404 content-type text/plain string unknown",
        )
        out.section(
            "frontend admin",
            f"bind {bind}:{self.ports.admin}",
            "no log",
            "http-request use-service prometheus-exporter if { path /metrics }",
            "stats enable",
            "stats uri /stats",
            "stats show-legends",
        )

    # -- service routing -------------------------------------------------------------------------

    def service_routing(self, service_name: str, *, guarded: bool = False) -> list[str]:
        """The rules of the service's routing frontend: pick the route, apply its faults. Shared by
        the sidecar's outbound and the gateway's ingress."""
        service = self.mesh.services[service_name]
        unset = "!{ var(txn.route) -m found }"
        # In a flat frontend every service's rules share one list: each rule checks its service.
        prefix = [f"{{ var(txn.svc) -m str {service_name} }}", unset] if guarded else [unset]
        lines = [f"# services.{service_name}"]
        for index, route in enumerate(service.routes):
            label = f"{service_name}.{index}"
            name = f" {route.name}" if route.name else ""
            lines.append(f"# services.{service_name}.routes[{index}]{name}")
            lines.append(
                f"http-request set-var(txn.route) str({label})"
                + _or(prefix, _alternatives(route.match))
            )
            on_route = f"{{ var(txn.route) -m str {label} }}"
            lines += self.faults(route, on_route)
            if route.mirror is not None:
                base = self.mirror_base(service_name, route.mirror.to)
                if base is not None:
                    lines.append(
                        f"http-request lua.sailplan_mirror {base}"
                        + _when([on_route, _percent_condition(route.mirror.percent)])
                    )
        return lines

    def faults(self, route: Route, on_route: str) -> list[str]:
        if route.fault is None:
            return []
        lines = []
        if route.fault.delay is not None:
            lines.append(
                f"http-request lua.sailplan_delay {route.fault.delay.fixed.ms}"
                + _when([on_route, _percent_condition(route.fault.delay.percent)])
            )
        if route.fault.abort is not None:
            lines.append(
                f"http-request return status {route.fault.abort.status} content-type text/plain "
                f"string {_quote(ABORT_BODY)}"
                + _when([on_route, _percent_condition(route.fault.abort.percent)])
            )
        return lines

    def backend_choice(self, service_name: str, *, guarded: bool = False) -> list[str]:
        """`use_backend` lines: the route's split over versions, else every version."""
        service = self.mesh.services[service_name]
        lines = []
        for index, route in enumerate(service.routes):
            on_route = f"{{ var(txn.route) -m str {service_name}.{index} }}"
            weights = [(v, w) for v, w in route.weights.items() if w > 0]
            bound = 0
            for position, (version, weight) in enumerate(weights):
                backend = route_backend(service_name, index, version)
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

    def pool_lines(self, service: Service) -> list[str]:
        policy = service.policy
        lines = []
        if policy is not None and policy.load_balancer is not None:
            lb = policy.load_balancer
            if lb.algorithm is not None:
                lines.append(f"balance {_BALANCE[lb.algorithm]}")
            else:
                lines += [f"balance hdr({lb.hash_header})", "hash-type consistent"]
        if policy is not None and policy.connection_pool is not None:
            # Envoy answers at once when the pool and its pending queue are full; maxqueue alone
            # would only redispatch, so check the queue explicitly.
            pending = policy.connection_pool.max_pending_requests
            full = f"{{ be_conn() gt {policy.connection_pool.max_connections + pending} }}"
            lines.append(
                f"http-request return status 503 content-type text/plain string {_quote(OVERFLOW_BODY)} if {full}"
            )
        return lines

    def server_options(self, service: Service) -> str:
        options = []
        policy = service.policy
        if policy is not None and policy.connection_pool is not None:
            options.append(f"maxconn {policy.connection_pool.max_connections}")
        if policy is not None and policy.outlier_detection is not None:
            outlier = policy.outlier_detection
            # A server is marked down after N consecutive 5xx seen on live traffic (HAProxy
            # watches every response, so Istio's sweep `interval` has no counterpart). Two passing
            # TCP checks one ejection time apart let it back in: it stays out between one and
            # two ejection times, where Envoy keeps it out for the ejection time times ejections.
            ejection = outlier.base_ejection_time.ms
            options.append(
                f"check observe layer7 error-limit {outlier.consecutive_5xx_errors} on-error mark-down "
                f"inter {ejection}ms fastinter {ejection}ms downinter {ejection}ms rise 2 fall 1"
            )
        return " ".join(options)

    def backends(self, out: _Writer, service_name: str) -> None:
        service = self.mesh.services[service_name]
        options = self.server_options(service)
        for index, route in enumerate(service.routes):
            for version, weight in route.weights.items():
                if weight <= 0:
                    continue
                body = [*self.pool_lines(service), *self.attempt_lines(route)]
                body += self.servers(service_name, version, options)
                out.section(
                    f"backend {route_backend(service_name, index, version)}",
                    *body,
                    comment=f"services.{service_name}.routes[{index}] -> {version}",
                )
        body = list(self.pool_lines(service))
        for version in sorted(service.versions):
            body += self.servers(service_name, version, options)
        out.section(
            f"backend {all_versions_backend(service_name)}",
            *body,
            comment=f"services.{service_name}: every version, for requests no route matched",
        )

    def attempt_lines(self, route: Route) -> list[str]:
        """Timeout and retries of a route. HAProxy's `timeout server` bounds each attempt, so a
        route with retries gets its per-try timeout (or the route timeout) per attempt."""
        lines = []
        per_try = route.retries.per_try_timeout if route.retries else None
        attempt_timeout = min(
            (d for d in (per_try, route.timeout) if d is not None), default=None, key=lambda d: d.ms
        )
        if attempt_timeout is not None:
            lines.append(f"timeout server {attempt_timeout.ms}ms")
        retries = route.retries
        if retries is not None and retries.attempts > 0:
            keywords: list[str] = []
            for condition in retries.conditions:
                for keyword in _RETRY_ON.get(condition, (condition,)):
                    if keyword not in keywords:
                        keywords.append(keyword)
            lines += [f"retries {retries.attempts}", f"retry-on {' '.join(keywords)}"]
        else:
            # Only failed connections are retried (once), never a request the app has seen.
            lines += ["retries 1", "retry-on conn-failure"]
        return lines

    # -- whole configs ----------------------------------------------------------------------------

    def hosts_map(self) -> str:
        """Host -> service: short name, name.ns, name.ns.svc, FQDN (the port is stripped first)."""
        namespace = self.mesh.target_namespace
        domain = (
            self.endpoints.cluster_domain
            if isinstance(self.endpoints, DnsEndpoints)
            else "cluster.local"
        )
        lines = []
        for service_name in self.http_services():
            for name in (
                service_name,
                f"{service_name}.{namespace}",
                f"{service_name}.{namespace}.svc",
                f"{service_name}.{namespace}.svc.{domain}",
            ):
                lines.append(f"{name} {service_name}")
        return "\n".join(lines) + "\n"

    def http_services(self) -> list[str]:
        return [s for s in sorted(self.mesh.services) if self.mesh.services[s].protocol != "tcp"]

    def dispatch_lines(self, service_names: Sequence[str]) -> list[str]:
        """Rules of the front listener once `txn.svc` is known.

        Small meshes: every service's rules in one flat list, guarded by service. Past
        FLAT_SERVICE_LIMIT services one lookup hops into the service's own routing frontend, so a
        request walks only its service's rules. Flat, every request walked every rule: 1,000
        services cut throughput 70-fold; the hop costs about 0.02 vCPU at 1,000 rps, more than
        the flat list of a small mesh does (bench/FINDINGS.md).
        """
        if not _flat(service_names):
            return [
                f"use_backend %[var(txn.svc),concat(,,{_HOP_SUFFIX})] if {{ var(txn.svc) -m found }}"
            ]
        return self.routing_rules(service_names, guarded=True)

    def routing_rules(self, service_names: Sequence[str], *, guarded: bool) -> list[str]:
        """The services' route picking, faults and backend choice; `guarded` when several services
        share one frontend, so each rule checks its service and the draw waits for a service."""
        services = [self.mesh.services[name] for name in service_names]
        lines = []
        if any(route.mirror for service in services for route in service.routes):
            lines.append("option http-buffer-request")
        if any(len(route.weights) > 1 for service in services for route in service.routes):
            when = " if { var(txn.svc) -m found }" if guarded else ""
            lines.append(f"http-request set-var(txn.draw) rand(100){when}")
        for name in service_names:
            lines += self.service_routing(name, guarded=guarded)
        for name in service_names:
            lines += self.backend_choice(name, guarded=guarded)
        return lines

    def service_frontends(self, out: _Writer, service_names: Sequence[str], tag: str) -> None:
        """The backends of every service and, past FLAT_SERVICE_LIMIT services, a routing
        frontend per service reached through a unix socket."""
        hop = not _flat(service_names)
        for index, service_name in enumerate(service_names):
            if hop:
                socket = f"unix@{self.runtime_dir}/{tag}{index}.sock"
                out.section(
                    f"backend {service_name}{_HOP_SUFFIX}",
                    f"server routes {socket}",
                    comment=f"services.{service_name}: into its routing frontend",
                )
                out.section(
                    f"frontend {service_name}__routes",
                    f"bind {socket} mode 600",
                    *self.routing_rules([service_name], guarded=False),
                )
            self.backends(out, service_name)

    def inbound(self, out: _Writer, app_port: int) -> None:
        bind = self.ports.bind_address
        out.section(
            "frontend inbound",
            f"bind {bind}:{self.ports.inbound}",
            "default_backend inbound_app",
        )
        out.section(
            "backend inbound_app",
            f"server app 127.0.0.1:{app_port}",
            comment="the app this sidecar sits next to",
        )

    def outbound(self, out: _Writer, passthrough: Passthrough) -> None:
        body = [f"bind {self.ports.bind_address}:{self.ports.outbound}"]
        if passthrough == "host-header":
            # An explicit proxy receives `GET http://host/path`; apps expect origin form.
            body.append("http-request set-uri %[pathq] if { url_reg ^[a-zA-Z][a-zA-Z0-9+.-]*:// }")
        body += [
            "http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
            f"http-request set-var(txn.svc) var(txn.host),map_str({self.config_dir}/hosts.map)",
            *self.dispatch_lines(self.http_services()),
            "default_backend passthrough",
        ]
        out.section("frontend outbound", *body)
        if passthrough == "original-destination":
            # After iptables REDIRECT, 0.0.0.0:0 means the address the caller originally dialled.
            out.section(
                "backend passthrough",
                "server original-destination 0.0.0.0:0",
                comment="unknown destinations go where the caller sent them",
            )
        else:
            # Explicit proxy (sandbox): the Host names the destination; literal IPs only.
            out.section(
                "backend passthrough",
                "http-request set-var(txn.dport) req.hdr(host),field(2,:)",
                "http-request set-var(txn.dport) str(80) if !{ var(txn.dport) -m found } or { var(txn.dport) -m len 0 }",
                "http-request set-dst req.hdr(host),field(1,:)",
                "http-request set-dst-port var(txn.dport)",
                "server host-header 0.0.0.0:0",
                comment="unknown destinations go to the host:port the request names",
            )
        self.service_frontends(out, self.http_services(), "o")

    def ingress(self, out: _Writer, listen_port: int) -> None:
        assert self.mesh.ingress is not None
        ingress = self.mesh.ingress
        body = [f"bind {self.ports.bind_address}:{listen_port}"]
        if "*" not in ingress.hosts:
            body.append("http-request set-var(txn.host) req.hdr(host),field(1,:),lower")
            allowed = []
            for host in ingress.hosts:
                if host.startswith("*."):
                    allowed.append(f"{{ var(txn.host) -m end {host[1:]} }}")
                else:
                    allowed.append(f"{{ var(txn.host) -m str {host} }}")
            body.append(
                f"http-request return status 404 content-type text/plain string {_quote(NO_ROUTE_BODY)} "
                f"unless {' or '.join(allowed)}"
            )
        for index, ingress_route in enumerate(ingress.routes):
            body.append(self.ingress_route_line(ingress_route, index))
        targets = sorted({r.service for r in ingress.routes})
        body += self.dispatch_lines(targets)
        body.append("default_backend no_route")
        out.section("frontend ingress", *body, comment="ingress: the mesh's front door")
        out.section(
            "backend no_route",
            f"http-request return status 404 content-type text/plain string {_quote(NO_ROUTE_BODY)}",
            comment="no ingress route matched",
        )
        self.service_frontends(out, targets, "g")

    def ingress_route_line(self, ingress_route: IngressRoute, index: int) -> str:
        unset = "!{ var(txn.svc) -m found }"
        return f"http-request set-var(txn.svc) str({ingress_route.service})" + _or(
            [unset], _alternatives(ingress_route.match)
        )

    def files(self, config: str, *, with_hosts: bool = False) -> ProxyConfig:
        files = {
            "haproxy.cfg": config,
            "503.http": _error_response(503, "Service Unavailable", NO_UPSTREAM_BODY),
            "504.http": _error_response(504, "Gateway Timeout", TIMEOUT_BODY),
        }
        if with_hosts:
            files["hosts.map"] = self.hosts_map()
        if self.uses_lua():
            files["mesh.lua"] = lua_source()
        return ProxyConfig(files=dict(sorted(files.items())))


def _error_response(status: int, reason: str, body: str) -> str:
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: text/plain\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n"
        "\r\n"
        f"{body}"
    )


def route_backend(service_name: str, route_index: int, version: str) -> str:
    return _ident(service_name, f"r{route_index}", version)


def all_versions_backend(service_name: str) -> str:
    return _ident(service_name, "all")


class SidecarCompiler:
    """Compiles the sidecars of one mesh that share endpoints and ports (a cluster's pods).

    Every sidecar carries the same outbound section (client-side routing of every service), so it
    is rendered once; each sidecar adds only its inbound listener.
    """

    def __init__(
        self,
        mesh: Mesh,
        *,
        endpoints: Endpoints,
        ports: ProxyPorts = ProxyPorts(),
        config_dir: str = "/etc/sailplan",
        runtime_dir: str = "/var/run/sailplan",
        passthrough: Passthrough = "original-destination",
    ) -> None:
        self.mesh = mesh
        self._compiler = _Compiler(mesh, endpoints, ports, config_dir, runtime_dir)
        head = _Writer()
        self._compiler.globals(head)
        self._globals = head.lines
        tail = _Writer()
        self._compiler.outbound(tail, passthrough)
        self._outbound = tail.lines

    def sidecar(self, service: str, version: str, app_port: int | None = None) -> ProxyConfig:
        if service not in self.mesh.services or version not in self.mesh.services[service].versions:
            raise KeyError(f"the mesh has no workload {service}-{version}")
        out = _Writer()
        out.lines = list(self._globals)
        self._compiler.inbound(out, app_port or self.mesh.services[service].port)
        out.lines += ["", *self._outbound]
        return self._compiler.files(out.text(), with_hosts=True)


def compile_sidecar(
    mesh: Mesh,
    service: str,
    version: str,
    *,
    endpoints: Endpoints,
    ports: ProxyPorts = ProxyPorts(),
    app_port: int | None = None,
    config_dir: str = "/etc/sailplan",
    runtime_dir: str = "/var/run/sailplan",
    passthrough: Passthrough = "original-destination",
) -> ProxyConfig:
    """The sidecar of one workload: inbound to its app, outbound through every service's routes."""
    compiler = SidecarCompiler(
        mesh,
        endpoints=endpoints,
        ports=ports,
        config_dir=config_dir,
        runtime_dir=runtime_dir,
        passthrough=passthrough,
    )
    return compiler.sidecar(service, version, app_port)


def compile_gateway(
    mesh: Mesh,
    *,
    endpoints: Endpoints,
    listen_port: int = 8080,
    ports: ProxyPorts = ProxyPorts(),
    config_dir: str = "/etc/sailplan",
    runtime_dir: str = "/var/run/sailplan",
) -> ProxyConfig:
    """The ingress gateway: ingress routes pick a service, that service's routes pick the version."""
    if mesh.ingress is None:
        raise ValueError(f"mesh {mesh.name!r} has no ingress")
    compiler = _Compiler(mesh, endpoints, ports, config_dir, runtime_dir)
    out = _Writer()
    compiler.globals(out)
    compiler.ingress(out, listen_port)
    return compiler.files(out.text())
