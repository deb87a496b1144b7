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
    flat,
    lua_source,
    refuse_shared_ports,
    shard_of,
)
from .globals import (
    ABORT_BODY,
    NO_ROUTE_BODY,
    NO_UPSTREAM_BODY,
    OUTLIER_MAP,
    OVERFLOW_BODY,
    TIMEOUT_BODY,
    global_sections,
    proxy_files,
)
from .ingress import ingress
from .routing import hosts_map, inbound, outbound_front, service_sections

__all__ = [
    "ABORT_BODY",
    "FLAT_SERVICE_LIMIT",
    "GLOBAL_FILE",
    "INBOUND_FILE",
    "NO_ROUTE_BODY",
    "NO_UPSTREAM_BODY",
    "OUTBOUND_FILE",
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
    "shard_file",
]

DEFAULT_PORTS = ProxyPorts()


def _refuse_stalling_regexes(mesh: Mesh) -> None:
    """A mesh validated for istio can still reach HAProxy (the sandbox runs every mesh on it):
    its regexes must not be able to stall the proxy either."""
    problems = backtracking_problems(mesh)
    if problems:
        raise SpecError(problems)


GLOBAL_FILE = "00-global.cfg"
INBOUND_FILE = "10-inbound.cfg"
OUTBOUND_FILE = "20-outbound.cfg"
# The most outbound config a shard may hold before the shard count doubles. The fullest shard
# is what is compared, so the hash's uneven spread cannot pass it; the rest of Kubernetes'
# 1 MiB ConfigMap limit is margin. Fewer, fuller shards: every Deployment projects each one, so
# the shard count multiplies the size of every pod template (bench/meshgen.py at 5,000
# services: 64 shards of at most 804 KiB, where half a MiB needed 128).
SHARD_TARGET_BYTES = 900 * 1024


def shard_file(index: int) -> str:
    return f"20-outbound-{index:03d}.cfg"


class SidecarCompiler:
    """Compiles the sidecars of one mesh that share endpoints and ports (a cluster's pods).

    Every sidecar carries the same outbound section (client-side routing of every service), so it
    is rendered once, a text per service; each sidecar adds only its inbound listener. HAProxy
    reads a directory given to `-f` in name order, so a sidecar's config is a set of files:
    `00-global.cfg` and `10-inbound.cfg` of its own, and the mesh's `20-outbound.cfg` (the
    outbound listener) with, past FLAT_SERVICE_LIMIT services, the services' sections in
    `20-outbound-NNN.cfg` shards, each service in the shard its name hashes to (`shards`).
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
        self._passthrough: Passthrough = passthrough
        head = Writer()
        global_sections(self._ctx, head, sidecar=True)
        self._globals = head.text()
        self._services = self._ctx.http_services()
        self._service_order = {name: index for index, name in enumerate(self._services)}
        self._hop = not flat(self._services)
        self._front = self._outbound_front(self._services)
        self._hosts_map = hosts_map(self._ctx)
        self._sections: dict[tuple[str, bool], str] = {}
        self._scoped: dict[tuple[str, ...], str] = {}
        shared = proxy_files(self._ctx, "")
        self._pages = {n: text for n, text in shared.files.items() if n.endswith(".http")}
        self._lua = shared.files.get("mesh.lua")

    def _outbound_front(self, service_names: list[str]) -> str:
        out = Writer()
        outbound_front(self._ctx, out, self._passthrough, service_names)
        return out.text()

    def _section(self, service: str, hop: bool) -> str:
        """The service's outbound sections; the same text in every sidecar that routes it."""
        text = self._sections.get((service, hop))
        if text is None:
            out = Writer()
            service_sections(self._ctx, out, service, "o", hop=hop)
            text = self._sections[service, hop] = out.text()
        return text

    def _inbound(self, service: str, version: str, app_port: int | None) -> str:
        if service not in self.mesh.services or version not in self.mesh.services[service].versions:
            raise KeyError(f"the mesh has no workload {service}-{version}")
        out = Writer()
        inbound(self._ctx, out, app_port or self.mesh.services[service].port, service)
        return out.text()

    def callees(self, service: str) -> list[str] | None:
        """The http services the service's `calls` lists, or None when it calls the whole mesh
        (and its sidecars share the mesh's outbound files)."""
        calls = self.mesh.services[service].calls
        if calls is None:
            return None
        # By the mesh's order of services, looked up rather than scanned: a scan of every service
        # per workload made scoped meshes render in quadratic time.
        order = self._service_order
        return sorted({name for name in calls if name in order}, key=order.__getitem__)

    def _scoped_outbound(self, callees: list[str]) -> str:
        """The outbound sections of a sidecar scoped to `callees`; a service's versions share
        their `calls`, so the text is made once per list."""
        key = tuple(callees)
        text = self._scoped.get(key)
        if text is None:
            hop = not flat(callees)
            text = self._scoped[key] = "\n".join(
                [self._outbound_front(callees), *(self._section(name, hop) for name in callees)]
            )
        return text

    def sidecar(self, service: str, version: str, app_port: int | None = None) -> ProxyConfig:
        """The workload's config as one `haproxy.cfg`: the same sections as `files`, in order."""
        inbound_text = self._inbound(service, version, app_port)
        callees = self.callees(service)
        if callees is not None:
            text = "\n".join([self._globals, inbound_text, self._scoped_outbound(callees)])
            return proxy_files(self._ctx, text, hosts_map=hosts_map(self._ctx, callees))
        parts = [self._globals, inbound_text, self._front]
        parts += [self._section(name, self._hop) for name in self._services]
        return proxy_files(self._ctx, "\n".join(parts), hosts_map=self._hosts_map)

    def files(self, service: str, version: str, app_port: int | None = None) -> ProxyConfig:
        """The workload's config directory: its own files, the shared outbound and its shards."""
        files = dict(self.workload_files(service, version, app_port))
        if self.callees(service) is None:
            for shared in self.shared_outbound():
                files.update(shared)
        return ProxyConfig(files=dict(sorted(files.items())))

    def workload_files(
        self, service: str, version: str, app_port: int | None = None
    ) -> dict[str, str]:
        """What is the workload's own: the global sections, its inbound listener, error pages;
        with `calls`, its own outbound listener and Host map, of the listed services only."""
        files = dict(self._pages)
        files[GLOBAL_FILE] = self._globals
        files[INBOUND_FILE] = self._inbound(service, version, app_port)
        callees = self.callees(service)
        if callees is not None:
            files[OUTBOUND_FILE] = self._scoped_outbound(callees)
            files["hosts.map"] = hosts_map(self._ctx, callees)
            if self._lua is not None:
                files["mesh.lua"] = self._lua
        return dict(sorted(files.items()))

    def shared_outbound(self) -> list[dict[str, str]]:
        """The files every sidecar shares: first `20-outbound.cfg` with the Host map (and the Lua),
        then, past FLAT_SERVICE_LIMIT services, one file per shard."""
        base = {OUTBOUND_FILE: self._front, "hosts.map": self._hosts_map}
        if self._lua is not None:
            base["mesh.lua"] = self._lua
        if self._ctx.uses_outlier_detection():
            # Empty: the Lua fills HAProxy's in-memory copy, but the map must exist to load.
            base[OUTLIER_MAP] = ""
        if not self._hop:
            base[OUTBOUND_FILE] = "\n".join(
                [self._front, *(self._section(name, False) for name in self._services)]
            )
            return [dict(sorted(base.items()))]
        shards = self.shards()
        texts = []
        for index, names in enumerate(shards):
            header = (
                f"# outbound shard {index} of {len(shards)}: the services whose name hashes "
                "here; generated by sailplan, do not edit\n"
            )
            texts.append(
                {
                    shard_file(index): header
                    + "".join(f"\n{self._section(name, True)}" for name in names)
                }
            )
        return [dict(sorted(base.items())), *texts]

    def shards(self) -> list[list[str]]:
        """The services of each shard: the fewest shards, a power of two, none over
        SHARD_TARGET_BYTES. A service's shard depends on its name and the count alone, so a
        change to one service changes one shard until the count doubles."""
        sizes = {name: len(self._section(name, True).encode()) + 1 for name in self._services}
        count = 1
        while True:
            shards: list[list[str]] = [[] for _ in range(count)]
            for name in self._services:
                shards[shard_of(name, count)].append(name)
            if count >= len(self._services) or all(
                sum(sizes[name] for name in shard) <= SHARD_TARGET_BYTES for shard in shards
            ):
                return shards
            count *= 2


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
    redirect_port: int | None = None,
    public_port: int | None = None,
) -> ProxyConfig:
    """The ingress gateway: ingress routes pick a service, that service's routes pick the version.
    With `tls.httpsRedirect`, `redirect_port` is the plain listener's and `public_port` the
    HTTPS port clients reach (the spec's `port` by default)."""
    if mesh.ingress is None:
        raise ValueError(f"mesh {mesh.name!r} has no ingress")
    _refuse_stalling_regexes(mesh)
    listeners = {"listen": listen_port, "admin": ports.admin, "health": ports.health}
    if redirect_port is not None and mesh.ingress.tls and mesh.ingress.tls.https_redirect:
        listeners["redirect"] = redirect_port
    refuse_shared_ports("gateway", listeners)
    ctx = Context(mesh, endpoints, ports, config_dir, runtime_dir)
    out = Writer()
    global_sections(ctx, out)
    ingress(ctx, out, listen_port, redirect_port, public_port)
    return proxy_files(ctx, out.text())
