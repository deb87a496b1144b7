"""What every part of the compiler shares: where the proxy listens, where endpoints come from, the
compiled files, and the mesh being compiled."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Literal

from sailplan import constants as c
from sailplan.model import Mesh

# Up to this many services, one flat list of rules is cheaper than a hop per request.
FLAT_SERVICE_LIMIT = 16


def refuse_shared_ports(owner: str, listeners: Mapping[str, int]) -> None:
    """A port given to two of one proxy's listeners is refused while compiling, not found when the
    proxy starts: the configs say `noreuseport`, so HAProxy would fail to bind it (without that,
    both frontends would start and the kernel would split the port's connections)."""
    repeated = [port for port, count in Counter(listeners.values()).items() if count > 1]
    if repeated:
        names = [name for name, port in listeners.items() if port == repeated[0]]
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        raise ValueError(
            f"the {owner}'s {listed} ports are {'both' if len(names) == 2 else 'all'} "
            f"{repeated[0]}: each listener needs its own port"
        )


@dataclass(frozen=True)
class ProxyPorts:
    """Where the proxy listens."""

    outbound: int = c.PROXY_OUTBOUND_PORT
    inbound: int = c.PROXY_INBOUND_PORT
    admin: int = c.PROXY_ADMIN_PORT
    health: int = c.PROXY_HEALTH_PORT
    bind_address: str = "0.0.0.0"
    # Sidecar to sidecar mTLS, when the mesh has it (`c.PROXY_MTLS_PORT`).
    mtls: int = c.PROXY_MTLS_PORT

    def __post_init__(self) -> None:
        refuse_shared_ports(
            "proxy",
            {
                "outbound": self.outbound,
                "inbound": self.inbound,
                "mTLS": self.mtls,
                "admin": self.admin,
                "health": self.health,
            },
        )


@dataclass(frozen=True)
class DnsEndpoints:
    """Kubernetes: each version's pods behind the headless Service `<service>-<version>`.
    `slots` is the least number of server slots per version; more when `replicas` needs them."""

    namespace: str
    cluster_domain: str = "cluster.local"
    slots: int = 10
    # The port pods are dialled on; None: the service's port (iptables in the pod redirect it to
    # the sidecar). Explicit-proxy pods have no redirect: callers dial the sidecar's inbound port.
    port: int | None = None


@dataclass(frozen=True)
class StaticEndpoints:
    """Sandbox and benchmarks: explicit addresses, service -> version -> [(host, port)].
    `mtls`: the same pods' mTLS listeners, which sidecars dial when the mesh has mTLS (else
    `addresses`); a call passed through outside the mesh's routes goes to `addresses`."""

    addresses: Mapping[str, Mapping[str, Sequence[tuple[str, int]]]]
    mtls: Mapping[str, Mapping[str, Sequence[tuple[str, int]]]] | None = None


Endpoints = DnsEndpoints | StaticEndpoints
Passthrough = Literal["original-destination", "host-header"]


@dataclass(frozen=True)
class ProxyConfig:
    """File name -> content: `haproxy.cfg`, or the `NN-*.cfg` files of a sidecar's directory
    (`SidecarCompiler.files`); `mesh.lua` when the mesh needs Lua, `outlier.map` with outlier
    detection."""

    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def haproxy_cfg(self) -> str:
        """The config as HAProxy reads it: `haproxy.cfg`, or every *.cfg file in name order."""
        if "haproxy.cfg" in self.files:
            return self.files["haproxy.cfg"]
        return "\n".join(text for name, text in sorted(self.files.items()) if name.endswith(".cfg"))


def lua_source() -> str:
    return resources.files("sailplan.render").joinpath("mesh.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Context:
    """One compilation: the mesh and where its proxies find endpoints, listen and keep files."""

    mesh: Mesh
    endpoints: Endpoints
    ports: ProxyPorts
    config_dir: str
    runtime_dir: str

    @cached_property
    def _keys(self) -> dict[str, str]:
        return service_keys(sorted(self.mesh.services))

    def service_key(self, service_name: str) -> str:
        return self._keys[service_name]

    def uses_lua(self) -> bool:
        routes = any(
            bool(route.copies) or (route.fault is not None and route.fault.delay is not None)
            for service in self.mesh.services.values()
            for route in service.routes
        )
        # Outlier detection counts answers and ejects endpoints in mesh.lua; with mTLS the
        # inbound listener reads the caller's SPIFFE ID there.
        return routes or self.uses_outlier_detection() or self.mesh.mtls != "disable"

    def uses_outlier_detection(self) -> bool:
        return any(
            service.policy is not None and service.policy.outlier_detection is not None
            for service in self.mesh.services.values()
        )

    def http_services(self) -> list[str]:
        return [s for s in sorted(self.mesh.services) if self.mesh.services[s].protocol != "tcp"]


def _digest(service_name: str) -> bytes:
    return hashlib.sha256(service_name.encode()).digest()


def service_keys(service_names: Sequence[str]) -> dict[str, str]:
    """A short name of each service for its unix sockets. From the name alone, not its place
    among the services, so adding a service changes no other service's config text. 8 base32
    characters (40 bits) keep a socket path within HAProxy's limit in the sandbox's directories;
    the rare services that share them get 16."""
    short = {name: base64.b32encode(_digest(name)).decode().lower() for name in service_names}
    count = Counter(key[:8] for key in short.values())
    return {name: key[:8] if count[key[:8]] == 1 else key[:16] for name, key in short.items()}


def shard_of(service_name: str, shards: int) -> int:
    """The outbound shard of a service among `shards` (a power of two): doubling the count
    splits every shard in two and moves nothing between the others."""
    return int.from_bytes(_digest(service_name)[:8], "big") % shards


def flat(service_names: Sequence[str]) -> bool:
    return len(service_names) <= FLAT_SERVICE_LIMIT


class Writer:
    """haproxy.cfg text, one section at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, header: str, *body: str, comment: str | None = None) -> None:
        if self.lines:
            self.lines.append("")
        if comment:
            self.lines.append(f"# {comment}")
        self.lines.append(header)
        self.lines.extend([f"    {line}" for line in body if line])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
