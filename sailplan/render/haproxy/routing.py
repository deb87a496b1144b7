"""Frontends and route rules: the Host header names a service, that service's routes in order
pick a route, the route's faults apply, and its split picks a version backend.

Routing decisions are kept in transaction variables (`txn.svc`, `txn.route`, `txn.draw`), so a
split is drawn once per request and every later rule sees the same number.
"""

from __future__ import annotations

from collections.abc import Sequence

from sailplan.model import Route

from .answers import answer_lines
from .backends import (
    backend_choice,
    backends,
    cluster_members,
    mirror_listener,
    outlier_lines,
    version_cluster,
)
from .conditions import alternatives, percent_condition, rule_per_alternative, when
from .context import Context, DnsEndpoints, Passthrough, Writer, flat
from .cors import cors_lines
from .endpoints import mirror_socket, servers
from .globals import ABORT_BODY, DEFAULT_SERVER_TIMEOUT, DNS_FAILURE_BODY
from .headers import request_header_lines, response_header_lines
from .observability import backend_lines, flag, frontend_lines, hop_lines, route_label
from .quoting import acl_name, bare, fetch_arg, quote
from .rewrite import alternative_lines, needs_alternative, rewrite_lines
from .security import inbound as secure_inbound
from .security import meshed

HOP_SUFFIX = "__hop"
# For connections to apps (the sidecar's own app, destinations outside the mesh): HAProxy ends a
# server connection it closes first with a reset (to keep its ports out of TIME_WAIT), and an app
# waiting on it for the next request reads ECONNRESET. With `safe` reuse every connection of a
# caller got its own connection to the app, reset when the caller left. As in Envoy's pool, any
# request takes an idle connection to the app, and idle ones are kept an hour (Envoy's upstream
# idle timeout), so the app's own keep-alive timeout closes them, cleanly, first.
APP_REUSE = "http-reuse always"
APP_POOL = "pool-purge-delay 1h"
# Passthrough: one server stands for every destination, and HAProxy keeps its idle connections
# only up to the most it had in use at once, plus `pool-low-conn`. An idle connection to one app
# serves no request to another, so without that slack the surplus was reset. (Below 32 idle
# connections a thread also keeps to its own, instead of taking another thread's.)
PASSTHROUGH_POOL = f"{APP_POOL} pool-low-conn 32"
# The tag of a per-service routing frontend's socket -> the proxy its log lines name.
PROXY_NAMES = {"o": "outbound", "g": "ingress"}


def _passthrough_address(ctx: Context) -> list[str]:
    """An explicit proxy's passthrough: the Host's name -> `txn.daddr`, the address to dial. A
    literal IPv4 address is taken as it is (the cast to an address fails for anything else). In
    a cluster a name is asked of the cluster's DNS as the pod's own resolver would: a short name
    is a Service of the workload's namespace (its first search domain); a name with dots is
    asked as written. With static addresses (the sandbox) there is no DNS to ask: a name is a
    service of the mesh the sidecar does not route (`_unrouted_pods`), or nothing. No address,
    no request: set-dst would keep the proxy's own address, 127.0.0.1, and the request would
    reach whatever listens on the Host's port there."""
    lines = ["http-request set-var(txn.daddr) var(txn.host),ipmask(32)"]
    unset = "!{ var(txn.daddr) -m found }"
    if isinstance(ctx.endpoints, DnsEndpoints):
        search = fetch_arg(f".{ctx.endpoints.namespace}.svc.{ctx.endpoints.cluster_domain}")
        lines += [
            f"http-request set-var(txn.dname) var(txn.host) if {unset} {{ var(txn.host) -m sub . }}",
            f"http-request set-var-fmt(txn.dname) %[var(txn.host)]{search} "
            f"if {unset} !{{ var(txn.host) -m sub . }}",
            f"http-request do-resolve(txn.daddr,kubedns,ipv4) var(txn.dname) if {unset}",
        ]
    else:
        lines += _unrouted_pick(ctx, unset)
        lines.append(f"http-request set-var(txn.dname) var(txn.host) if {unset}")
    return [
        *lines,
        "http-request return status 503 content-type text/plain "
        f"lf-string {quote(DNS_FAILURE_BODY + ': %[var(txn.dname)]')}{flag('DF')} if {unset}",
    ]


def _unrouted_pick(ctx: Context, condition: str = "") -> list[str]:
    """Static addresses: when the Host names a service of the mesh this sidecar does not route,
    one of its pods, at random, into `txn.daddr` and `txn.dport` (see `_unrouted_pods`)."""
    hosts = f"{ctx.config_dir}/hosts.map"
    when = f" if {condition}" if condition else ""
    return [
        f"http-request set-var-fmt(txn.dpick) {PASSTHROUGH_KEY}%[var(txn.host)]{when}",
        f"http-request set-var(txn.dpick) var(txn.dpick),map_str({hosts}){when}",
        "http-request set-var(txn.dpods) var(txn.dpick),field(2,/) if { var(txn.dpick) -m found }",
        f"http-request set-var-fmt(txn.dpick) {PASSTHROUGH_KEY}%[var(txn.dpick),field(1,/)]/"
        "%[rand,mod(txn.dpods)] if { var(txn.dpods) -m found }",
        f"http-request set-var(txn.dpod) var(txn.dpick),map_str({hosts}) "
        "if { var(txn.dpods) -m found }",
        "http-request set-var(txn.daddr) var(txn.dpod),field(1,:),ipmask(32) "
        "if { var(txn.dpod) -m found }",
        "http-request set-var(txn.dport) var(txn.dpod),field(2,:) if { var(txn.dpod) -m found }",
    ]


# In the Host map, a key no Host has (`txn.host` is the Host up to its `:`): `:<host>` -> the
# unrouted service it names and its pod count, `:<service>/<n>` -> its n-th pod's address.
PASSTHROUGH_KEY = ":"


def _unrouted_pods(
    ctx: Context, service_names: Sequence[str] | None
) -> dict[str, list[tuple[str, int]]]:
    """Static addresses (the sandbox, benchmarks): the pods of each http service a sidecar does
    not route (not in its `calls`), so that its explicit proxy passes a call to one through to
    one of them with no mesh policy, as a call to the Service's ClusterIP does in a cluster
    (where the passthrough resolves the name, and kube-proxy picks the pod). In the Host map,
    not the config: a scoped sidecar stays small however many services it does not call.
    The transparent sandbox's sidecars read them too (its services' addresses are virtual)."""
    if service_names is None or isinstance(ctx.endpoints, DnsEndpoints):
        return {}
    routed = set(service_names)
    found = {}
    for service_name in ctx.http_services():
        versions = ctx.endpoints.addresses.get(service_name, {})
        pods = [address for version in sorted(versions) for address in versions[version]]
        if service_name not in routed and pods:
            found[service_name] = pods
    return found


def service_routing(
    ctx: Context, service_name: str, tag: str, *, guarded: bool = False
) -> list[str]:
    """The rules of the service's routing frontend: pick the route, apply its faults. Shared by
    the sidecar's outbound and the gateway's ingress (`tag` tells their sockets apart)."""
    service = ctx.mesh.services[service_name]
    unset = "!{ var(txn.route) -m found }"
    # In a flat frontend every service's rules share one list: each rule checks its service.
    prefix = [f"{{ var(txn.svc) -m str {service_name} }}", unset] if guarded else [unset]
    lines = [f"# services.{service_name}"]
    for index, route in enumerate(service.routes):
        label = f"{service_name}.{index}"
        name = f" {route.name}" if route.name else ""
        lines.append(f"# services.{service_name}.routes[{index}]{name}")
        acls, groups = alternatives(route.match, acl_name(service_name, f"r{index}"))
        lines += acls
        rule = f"http-request set-var(txn.route) str({label})"
        if needs_alternative(route):
            lines += alternative_lines(prefix, groups)
        lines += rule_per_alternative(rule, prefix, groups)
        on_route = f"{{ var(txn.route) -m str {label} }}"
        own_answer = route.fault is not None and route.fault.abort is not None
        if route.answer is not None or own_answer or route.cors is not None:
            # The proxy's own answer never reaches a backend, which names the route otherwise.
            lines += backend_lines(
                route_label(service, index), None, on_route, logged=ctx.mesh.access_log
            )
        # Envoy's CORS filter comes before its fault filter.
        lines += cors_lines(route, on_route, acl_name(service_name, f"r{index}"))
        lines += _faults(route, on_route)
        lines += answer_lines(route, on_route)
        lines += request_header_lines(route, on_route)
        lines += response_header_lines(route, on_route)
        lines += rewrite_lines(route, on_route)
        for mirror in route.copies:
            # Each mirror draws on its own, as each of Envoy's request_mirror_policies does.
            socket = mirror_socket(ctx, tag, service_name, mirror.to)
            if socket is not None:
                lines.append(
                    f"http-request lua.sailplan_mirror {quote(socket)}"
                    + when([on_route, percent_condition(mirror.percent)])
                )
    return lines


def _faults(route: Route, on_route: str) -> list[str]:
    if route.fault is None:
        return []
    lines = []
    if route.fault.delay is not None:
        lines.append(
            f"http-request lua.sailplan_delay {route.fault.delay.fixed.ms}"
            + when([on_route, percent_condition(route.fault.delay.percent)])
        )
    if route.fault.abort is not None:
        lines.append(
            f"http-request return status {route.fault.abort.status} content-type text/plain "
            f"string {quote(ABORT_BODY)}{flag('FI')}"
            + when([on_route, percent_condition(route.fault.abort.percent)])
        )
    return lines


def hosts_map(ctx: Context, service_names: Sequence[str] | None = None) -> str:
    """Host -> service, for each of its `host_names` (the port is stripped first)."""
    lines = []
    for service_name in ctx.http_services() if service_names is None else service_names:
        for name in host_names(ctx, service_name):
            lines.append(f"{bare(name)} {service_name}")
    for service_name, pods in _unrouted_pods(ctx, service_names).items():
        for name in host_names(ctx, service_name):
            lines.append(f"{PASSTHROUGH_KEY}{bare(name)} {bare(service_name)}/{len(pods)}")
        for index, (host, port) in enumerate(pods):
            lines.append(f"{PASSTHROUGH_KEY}{bare(service_name)}/{index} {bare(host)}:{port}")
    return "\n".join(lines) + "\n"


def host_names(ctx: Context, service_name: str) -> tuple[str, ...]:
    """The Hosts that name a service: short name, name.ns, name.ns.svc, FQDN."""
    namespace = ctx.mesh.target_namespace
    domain = (
        ctx.endpoints.cluster_domain if isinstance(ctx.endpoints, DnsEndpoints) else "cluster.local"
    )
    return (
        service_name,
        f"{service_name}.{namespace}",
        f"{service_name}.{namespace}.svc",
        f"{service_name}.{namespace}.svc.{domain}",
    )


def dispatch_lines(ctx: Context, service_names: Sequence[str], tag: str) -> list[str]:
    """Rules of the front listener once `txn.svc` is known.

    Small meshes: every service's rules in one flat list, guarded by service. Past
    FLAT_SERVICE_LIMIT services one lookup hops into the service's own routing frontend, so a
    request walks only its service's rules. Flat, every request walked every rule: 1,000
    services cut throughput 70-fold; the hop costs about 0.02 vCPU at 1,000 rps, more than
    the flat list of a small mesh does (bench/FINDINGS.md).
    """
    if not flat(service_names):
        hop = "{ var(txn.svc) -m found }"
        return [
            *hop_lines(hop, logged=ctx.mesh.access_log),
            f"use_backend %[var(txn.svc),concat(,,{HOP_SUFFIX})] if {hop}",
        ]
    return routing_rules(ctx, service_names, tag, guarded=True)


def routing_rules(
    ctx: Context, service_names: Sequence[str], tag: str, *, guarded: bool
) -> list[str]:
    """The services' route picking, faults and backend choice; `guarded` when several services
    share one frontend, so each rule checks its service and the draw waits for a service."""
    services = [ctx.mesh.services[name] for name in service_names]
    lines = []
    if any(route.copies for service in services for route in service.routes):
        lines.append("option http-buffer-request")
    if any(len(route.weights) > 1 for service in services for route in service.routes):
        condition = " if { var(txn.svc) -m found }" if guarded else ""
        lines.append(f"http-request set-var(txn.draw) rand(100){condition}")
    for name in service_names:
        lines += service_routing(ctx, name, tag, guarded=guarded)
    for name in service_names:
        lines += backend_choice(ctx, name, guarded=guarded)
    return lines


def service_frontends(ctx: Context, out: Writer, service_names: Sequence[str], tag: str) -> None:
    """The backends of every service and, past FLAT_SERVICE_LIMIT services, a routing
    frontend per service reached through a unix socket."""
    hop = not flat(service_names)
    for service_name in service_names:
        service_sections(ctx, out, service_name, tag, hop=hop)


def service_sections(ctx: Context, out: Writer, service_name: str, tag: str, *, hop: bool) -> None:
    """One service's sections: its backends, and its routing frontend when `hop`. Their text
    depends on this service alone (sockets are named by `service_key`), so the outbound shards
    of a mesh change only where a service changed."""
    prefix = f"{ctx.runtime_dir}/{tag}{ctx.service_key(service_name)}"
    if hop:
        socket = f"unix@{prefix}.sock"
        out.section(
            f"backend {service_name}{HOP_SUFFIX}",
            f"server routes {socket}",
            comment=f"services.{service_name}: into its routing frontend",
        )
        out.section(
            f"frontend {service_name}__routes",
            f"bind {socket} mode 600",
            *frontend_lines(PROXY_NAMES[tag], logged=ctx.mesh.access_log, caller_from_header=True),
            *routing_rules(ctx, [service_name], tag, guarded=False),
        )
    backends(ctx, out, service_name, prefix)
    _mirror_listeners(ctx, out, service_name, tag)


def _mirror_listeners(ctx: Context, out: Writer, service_name: str, tag: str) -> None:
    """A listener per version the service's routes mirror to. The Lua action writes each copy
    to it (method, headers and body as they came), and it spreads the copies over every pod of
    the version in turn, as Envoy's shadow cluster does."""
    service = ctx.mesh.services[service_name]
    for version in sorted({m.to for r in service.routes for m in r.copies}):
        socket = mirror_socket(ctx, tag, service_name, version)
        if socket is None:
            continue
        name = mirror_listener(service_name, version)
        out.section(
            f"listen {name}",
            f"bind {socket} mode 600",
            "no log",
            "retries 0",
            # The copies' answers count for outlier detection, and ejected pods get no copies.
            *outlier_lines(
                ctx,
                service,
                name,
                version_cluster(service_name, version),
                cluster_members(service, service_name, version),
                DEFAULT_SERVER_TIMEOUT,
            ),
            *servers(ctx, service_name, version, ""),
            comment=f"services.{service_name}: copies mirrored to {version}",
        )


def inbound(ctx: Context, out: Writer, app_port: int, service_name: str) -> None:
    """The callee's side (15006): straight to the app, or through mTLS and authorization."""
    if meshed(ctx):
        secure_inbound(ctx, out, service_name)
    else:
        out.section(
            "frontend inbound",
            f"bind {ctx.ports.bind_address}:{ctx.ports.inbound}",
            *frontend_lines("inbound", logged=ctx.mesh.access_log),
            "default_backend inbound_app",
        )
    out.section(
        "backend inbound_app",
        APP_REUSE,
        f"server app 127.0.0.1:{app_port} {APP_POOL}",
        comment="the app this sidecar sits next to",
    )


def outbound(
    ctx: Context,
    out: Writer,
    passthrough: Passthrough,
    service_names: Sequence[str] | None = None,
) -> None:
    """The caller's side (15001): the Host picks a service; unknown hosts pass through.
    `service_names`: the services it routes (default: every http service)."""
    names = ctx.http_services() if service_names is None else service_names
    outbound_front(ctx, out, passthrough, names)
    service_frontends(ctx, out, names, "o")


def outbound_front(
    ctx: Context, out: Writer, passthrough: Passthrough, service_names: Sequence[str]
) -> None:
    """`frontend outbound` and the passthrough backend. Past FLAT_SERVICE_LIMIT services its
    text names no service: each request hops into its service's sections by name."""
    # Loopback only: the pod's own connections reach it through iptables REDIRECT, which sends
    # locally generated traffic to 127.0.0.1; another pod dialling <pod IP>:15001 finds nothing
    # listening there, so the sidecar is no relay for the rest of the cluster.
    body = [f"bind 127.0.0.1:{ctx.ports.outbound}"]
    if passthrough == "host-header":
        # An explicit proxy receives `GET http://host/path`; apps expect origin form.
        body.append("http-request set-uri %[pathq] if { url_reg ^[a-zA-Z][a-zA-Z0-9+.-]*:// }")
    body += [
        *frontend_lines("outbound", logged=ctx.mesh.access_log),
        "http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
        f"http-request set-var(txn.svc) var(txn.host),map_str({ctx.config_dir}/hosts.map)",
        *dispatch_lines(ctx, service_names, "o"),
        "default_backend passthrough",
    ]
    out.section("frontend outbound", *body)
    if passthrough == "original-destination":
        # After iptables REDIRECT, 0.0.0.0:0 means the address the caller originally dialled.
        pick = []
        if not isinstance(ctx.endpoints, DnsEndpoints):
            # The transparent sandbox: a service's virtual address is no ClusterIP (no
            # kube-proxy there turns it into a pod), so its sidecar picks the pod itself.
            found = "{ var(txn.daddr) -m found }"
            pick = [
                *_unrouted_pick(ctx),
                f"http-request set-dst var(txn.daddr) if {found}",
                f"http-request set-dst-port var(txn.dport) if {found}",
            ]
        out.section(
            "backend passthrough",
            *pick,
            # A connection is reused only for the same destination address.
            APP_REUSE,
            f"server original-destination 0.0.0.0:0 {PASSTHROUGH_POOL}",
            comment="unknown destinations go where the caller sent them",
        )
    else:
        # Explicit proxy: the Host names the destination.
        out.section(
            "backend passthrough",
            "http-request set-var(txn.dport) req.hdr(host),field(2,:)",
            "http-request set-var(txn.dport) str(80) if !{ var(txn.dport) -m found } or { var(txn.dport) -m len 0 }",
            *_passthrough_address(ctx),
            "http-request set-dst var(txn.daddr)",
            "http-request set-dst-port var(txn.dport)",
            # A connection is reused only for the same destination address and port.
            APP_REUSE,
            f"server host-header 0.0.0.0:0 {PASSTHROUGH_POOL}",
            comment="unknown destinations go to the host:port the request names",
        )
