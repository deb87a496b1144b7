"""The builtin data plane's proxy config: a mesh compiled to `haproxy.cfg` (+ Lua) per workload.

One compiler serves the cluster (endpoints found through the headless Service of each version),
the sandbox and the benchmarks (static loopback addresses). The shape of the config:

- `outbound` (15001): the caller's side. The Host header names a service; that service's routes,
  in order, pick a route; the route's faults apply; its split picks a version backend.
- `inbound` (15006): the callee's side, straight to the app.
- `ingress` (gateway only): the ingress routes pick a service, then the same service routing.
- `health` (15021) and `admin` (15020, Prometheus `/metrics` and `/stats`).

The package grows by concern: `globals` (global, defaults, health, admin, error pages),
`endpoints` (server lines), `conditions` (matches as ACLs), `routing` (frontends, Host dispatch,
route rules), `backends` (splits, retries, timeouts, pool, outlier), `ingress` (the gateway),
`observability` (access log, request ids, route names of backends) and `quoting` (the one
boundary between spec values and config text).
"""

from __future__ import annotations

from sailplan.model import Mesh, SpecError
from sailplan.model.backtracking import backtracking_problems

from .backends import all_versions_backend, route_backend
from .context import (
    FLAT_SERVICE_LIMIT,
    Context,
    DnsEndpoints,
    Endpoints,
    Passthrough,
    ProxyConfig,
    ProxyPorts,
    StaticEndpoints,
    Writer,
    lua_source,
)
from .globals import (
    ABORT_BODY,
    NO_ROUTE_BODY,
    NO_UPSTREAM_BODY,
    OVERFLOW_BODY,
    TIMEOUT_BODY,
    global_sections,
    proxy_files,
)
from .ingress import ingress
from .routing import hosts_map, inbound, outbound

__all__ = [
    "ABORT_BODY",
    "FLAT_SERVICE_LIMIT",
    "NO_ROUTE_BODY",
    "NO_UPSTREAM_BODY",
    "OVERFLOW_BODY",
    "TIMEOUT_BODY",
    "DnsEndpoints",
    "Endpoints",
    "Passthrough",
    "ProxyConfig",
    "ProxyPorts",
    "SidecarCompiler",
    "StaticEndpoints",
    "all_versions_backend",
    "compile_gateway",
    "compile_sidecar",
    "lua_source",
    "route_backend",
]

DEFAULT_PORTS = ProxyPorts()


def _refuse_stalling_regexes(mesh: Mesh) -> None:
    """A mesh validated for istio can still reach HAProxy (the sandbox runs every mesh on it):
    its regexes must not be able to stall the proxy either."""
    problems = backtracking_problems(mesh)
    if problems:
        raise SpecError(problems)


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
        ports: ProxyPorts = DEFAULT_PORTS,
        config_dir: str = "/etc/sailplan",
        runtime_dir: str = "/var/run/sailplan",
        passthrough: Passthrough = "original-destination",
    ) -> None:
        _refuse_stalling_regexes(mesh)
        self.mesh = mesh
        self._ctx = Context(mesh, endpoints, ports, config_dir, runtime_dir)
        head = Writer()
        global_sections(self._ctx, head, sidecar=True)
        self._globals = head.lines
        tail = Writer()
        outbound(self._ctx, tail, passthrough)
        self._outbound = tail.lines
        self._hosts_map = hosts_map(self._ctx)

    def sidecar(self, service: str, version: str, app_port: int | None = None) -> ProxyConfig:
        if service not in self.mesh.services or version not in self.mesh.services[service].versions:
            raise KeyError(f"the mesh has no workload {service}-{version}")
        out = Writer()
        out.lines = list(self._globals)
        inbound(self._ctx, out, app_port or self.mesh.services[service].port, service)
        out.lines += ["", *self._outbound]
        return proxy_files(self._ctx, out.text(), hosts_map=self._hosts_map)


def compile_sidecar(
    mesh: Mesh,
    service: str,
    version: str,
    *,
    endpoints: Endpoints,
    ports: ProxyPorts = DEFAULT_PORTS,
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
    ports: ProxyPorts = DEFAULT_PORTS,
    config_dir: str = "/etc/sailplan",
    runtime_dir: str = "/var/run/sailplan",
) -> ProxyConfig:
    """The ingress gateway: ingress routes pick a service, that service's routes pick the version."""
    if mesh.ingress is None:
        raise ValueError(f"mesh {mesh.name!r} has no ingress")
    _refuse_stalling_regexes(mesh)
    ctx = Context(mesh, endpoints, ports, config_dir, runtime_dir)
    out = Writer()
    global_sections(ctx, out)
    ingress(ctx, out, listen_port)
    return proxy_files(ctx, out.text())
