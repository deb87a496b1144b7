"""The builtin plane for real: a caller's sidecar and the ingress gateway, compiled from the spec,
run on Debian's haproxy in front of one backend per pod that answers `<service>/<version>`.

A mesh with authorization (`allow`, or `authorization.default: deny`) runs in full: every pod
gets its own sidecar in front of its backend, each with a certificate for its workload's SPIFFE
ID from a CA made for the run (the gateway too), so requests cross two sidecars over mTLS as
`mtls` says and the called pod's inbound listener decides on the caller's identity. A request
then comes from the sidecar of the service that sends it, from the gateway, or from a plaintext
client straight to the pods' inbound ports.

A service with `calls` is the one case where the address the app dialled matters: its sidecar
sends a Host it does not route to that address (passthrough). For its sidecars the runner plays
the cluster's part: each Service gets a ClusterIP, a port of a "kube-proxy" (haproxy in tcp
mode, round robin over the Service's pods); the sidecar is compiled as in a cluster
(`original-destination`), and the PROXY protocol header the runner sends first stands for the
original destination iptables REDIRECT records (the ClusterIP of the Host's Service), the one
change to the compiled config being `accept-proxy` on the outbound bind."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from proxy_support import Backend, Reply, free_port, loopback_ports, request, running_haproxy

import sailplan
from sailplan.model.security import denies_by_default, ingress_identity, service_identity
from sailplan.render.haproxy import (
    Passthrough,
    ProxyConfig,
    ProxyPorts,
    StaticEndpoints,
    compile_gateway,
    compile_sidecar,
)
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.sandbox.certs import new_authority, write_identity

from .scenarios import DEFAULT_CALLER, PLAINTEXT

CALLER = DEFAULT_CALLER


@dataclass
class BuiltinPlane:
    sidecar_port: int
    gateway_port: int | None
    pods: dict[str, list[Backend]]  # `<service>/<version>` -> its running pods
    # With authorization: service -> the outbound port of its first pod's sidecar, and the
    # inbound ports of its pods' sidecars (where a plaintext client connects, in turn).
    callers: dict[str, int] = field(default_factory=dict)
    inbound: dict[str, list[int]] = field(default_factory=dict)
    # Outbound ports of sidecars of services with `calls`, which take the original destination
    # in a PROXY header, and each Service's ClusterIP port (see the module).
    transparent: set[int] = field(default_factory=set)
    cluster_ips: dict[str, int] = field(default_factory=dict)
    _turns: dict[str, int] = field(default_factory=dict)

    def send(
        self,
        path: str,
        *,
        via: str,
        host: str,
        method: str,
        headers: dict[str, str],
        body: str = "",
        caller: str | None = None,
    ) -> Reply:
        port = self.sidecar_port if via == "mesh" else self.gateway_port
        if via == "mesh" and caller not in (None, CALLER):
            assert self.callers, "callers other than the default need a mesh with authorization"
            if caller == PLAINTEXT:
                service = host.split(".")[0].split(":")[0]
                turn = self._turns.get(service, 0)
                self._turns[service] = turn + 1
                port = self.inbound[service][turn % len(self.inbound[service])]
            else:
                port = self.callers[caller]
        assert port is not None, "the mesh has no ingress"
        data = body.encode() if body else None
        if port in self.transparent:
            # The app dialled the Service the Host names: its ClusterIP is the destination.
            dialled = self.cluster_ips[host.split(".")[0].split(":")[0]]
            return _request_dialled(port, dialled, path, host, method, headers, data)
        return request(port, path, host=host, method=method, headers=headers, body=data, timeout=15)


class _Redirected(http.client.HTTPConnection):
    """A connection to a sidecar's outbound port as iptables REDIRECT hands it over: the PROXY
    header names the address the app dialled (127.0.0.1:`dialled`)."""

    def __init__(self, port: int, dialled: int) -> None:
        super().__init__("127.0.0.1", port, timeout=15)
        self.dialled = dialled

    def connect(self) -> None:
        super().connect()
        source = self.sock.getsockname()[1]
        self.sock.sendall(f"PROXY TCP4 127.0.0.1 127.0.0.1 {source} {self.dialled}\r\n".encode())


def _request_dialled(
    port: int,
    dialled: int,
    path: str,
    host: str,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
) -> Reply:
    started = time.monotonic()
    connection = _Redirected(port, dialled)
    try:
        connection.request(method, path, body=body, headers={"host": host, **headers})
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        lines = tuple((name.lower(), value) for name, value in response.getheaders())
        return Reply(response.status, text, time.monotonic() - started, lines)
    finally:
        connection.close()


def _passthrough(mesh: sailplan.Mesh, service: str) -> Passthrough:
    """As in a cluster for a sidecar with `calls` (see the module), else the explicit proxy's."""
    return "host-header" if mesh.services[service].calls is None else "original-destination"


def _redirected(config: ProxyConfig, ports: ProxyPorts) -> dict[str, str]:
    """The compiled files with `accept-proxy` on the outbound bind (see the module)."""
    bind = f"bind 127.0.0.1:{ports.outbound}\n"
    files = dict(config.files)
    found = [name for name, text in files.items() if bind in text]
    assert len(found) == 1 and files[found[0]].count(bind) == 1, f"outbound bind in {found}"
    files[found[0]] = files[found[0]].replace(
        bind, f"bind 127.0.0.1:{ports.outbound} accept-proxy\n"
    )
    return files


@contextmanager
def _kube_proxy(
    addresses: Mapping[str, Mapping[str, list[tuple[str, int]]]], directory: Path
) -> Iterator[dict[str, int]]:
    """Service -> its ClusterIP's port: haproxy in tcp mode, round robin over the pods of
    every version (`addresses`: service -> version -> pod addresses)."""
    pods = {
        service: [pod for version in versions.values() for pod in version]
        for service, versions in addresses.items()
    }
    cluster_ips = {service: free_port() for service in pods}
    lines = [
        "global\n    maxconn 1000\n",
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n"
        "    timeout server 60s\n",
    ]
    for service, addresses in pods.items():
        lines.append(
            f"listen {service}\n    bind 127.0.0.1:{cluster_ips[service]}\n    balance roundrobin\n"
            + "".join(f"    server pod{i} {a}:{p}\n" for i, (a, p) in enumerate(addresses))
        )
    with running_haproxy({"haproxy.cfg": "\n".join(lines)}, directory, list(cluster_ips.values())):
        yield cluster_ips


@contextmanager
def builtin_plane(
    mesh: sailplan.Mesh, directory: Path, refusing: dict[str, int] | None = None
) -> Iterator[BuiltinPlane]:
    """`refusing`: `<service>/<version>` -> how many of its first pods get a port nothing
    listens on (connections refused at once)."""
    if any(denies_by_default(mesh, name) for name in mesh.services):
        with secured_plane(mesh, directory, refusing) as plane:
            yield plane
        return
    # The endpoints below are bare apps, not sidecars: plaintext, whatever the scenario says.
    mesh = mesh.model_copy(update={"mtls": "disable"})
    with ExitStack() as stack:
        addresses: dict[str, dict[str, list[tuple[str, int]]]] = {}
        running: dict[str, list[Backend]] = {}
        for service_name, service in mesh.services.items():
            addresses[service_name] = {}
            for version_name, version in service.versions.items():
                pods = []
                dead = (refusing or {}).get(f"{service_name}/{version_name}", 0)
                for replica in range(max(version.replicas, 0)):
                    if replica < dead:
                        pods.append(("127.0.0.1", free_port()))
                        continue
                    backend = Backend(f"{service_name}/{version_name}").start()
                    stack.callback(backend.stop)
                    running.setdefault(f"{service_name}/{version_name}", []).append(backend)
                    pods.append(("127.0.0.1", backend.port))
                addresses[service_name][version_name] = pods
        endpoints = StaticEndpoints(addresses)

        sidecar_ports = loopback_ports()
        passthrough = _passthrough(mesh, CALLER)
        sidecar = compile_sidecar(
            mesh,
            CALLER,
            "v1",
            endpoints=endpoints,
            ports=sidecar_ports,
            app_port=free_port(),
            config_dir=str(directory / "sidecar"),
            runtime_dir=str(directory / "sidecar"),
            passthrough=passthrough,
        )
        files = dict(sidecar.files)
        transparent: set[int] = set()
        cluster_ips: dict[str, int] = {}
        if passthrough == "original-destination":
            files = _redirected(sidecar, sidecar_ports)
            transparent.add(sidecar_ports.outbound)
            cluster_ips = stack.enter_context(_kube_proxy(addresses, directory / "kube-proxy"))
        stack.enter_context(running_haproxy(files, directory / "sidecar", [sidecar_ports.outbound]))
        gateway_port = None
        if mesh.ingress is not None:
            gateway_port = free_port()
            gateway_ports = ProxyPorts(
                free_port(), free_port(), free_port(), free_port(), "127.0.0.1"
            )
            gateway = compile_gateway(
                mesh,
                endpoints=endpoints,
                listen_port=gateway_port,
                ports=gateway_ports,
                config_dir=str(directory / "gateway"),
                runtime_dir=str(directory / "gateway"),
            )
            stack.enter_context(
                running_haproxy(gateway.files, directory / "gateway", [gateway_port])
            )
        yield BuiltinPlane(
            sidecar_ports.outbound,
            gateway_port,
            running,
            transparent=transparent,
            cluster_ips=cluster_ips,
        )


def _ports() -> ProxyPorts:
    return loopback_ports()


@contextmanager
def secured_plane(
    mesh: sailplan.Mesh, directory: Path, refusing: dict[str, int] | None = None
) -> Iterator[BuiltinPlane]:
    """Every pod behind its own sidecar with its workload's certificate; see the module."""
    authority = new_authority("conformance mesh CA")
    with ExitStack() as stack:
        # Ports first: every sidecar's endpoints are the other pods' inbound listeners.
        addresses: dict[str, dict[str, list[tuple[str, int]]]] = {}
        pods: list[tuple[str, str, int, ProxyPorts | None]] = []
        for service_name, service in mesh.services.items():
            addresses[service_name] = {}
            for version_name, version in service.versions.items():
                dead = (refusing or {}).get(f"{service_name}/{version_name}", 0)
                addresses[service_name][version_name] = []
                for replica in range(max(version.replicas, 0)):
                    ports = None if replica < dead else _ports()
                    port = free_port() if ports is None else ports.inbound
                    addresses[service_name][version_name].append(("127.0.0.1", port))
                    pods.append((service_name, version_name, replica, ports))
        endpoints = StaticEndpoints(addresses)
        running: dict[str, list[Backend]] = {}
        callers: dict[str, int] = {}
        inbound: dict[str, list[int]] = {}
        transparent: set[int] = set()
        cluster_ips: dict[str, int] = {}
        if any(service.calls is not None for service in mesh.services.values()):
            # A Service's ClusterIP leads to its pods' sidecars' inbound listeners.
            cluster_ips = stack.enter_context(_kube_proxy(addresses, directory / "kube-proxy"))
        for service_name, version_name, replica, ports in pods:
            if ports is None:  # a pod that refuses every connection
                continue
            backend = Backend(f"{service_name}/{version_name}").start()
            stack.callback(backend.stop)
            running.setdefault(f"{service_name}/{version_name}", []).append(backend)
            pod_dir = directory / f"{service_name}-{version_name}-{replica}"
            passthrough = _passthrough(mesh, service_name)
            config = compile_sidecar(
                mesh,
                service_name,
                version_name,
                endpoints=endpoints,
                ports=ports,
                app_port=backend.port,
                config_dir=str(pod_dir),
                runtime_dir=str(pod_dir),
                passthrough=passthrough,
            )
            files = dict(config.files)
            if passthrough == "original-destination":
                files = _redirected(config, ports)
                transparent.add(ports.outbound)
            identity = service_identity(mesh, service_name)
            write_identity(Path(cert_dir_of(str(pod_dir))), authority, identity)
            stack.enter_context(running_haproxy(files, pod_dir, [ports.inbound, ports.outbound]))
            callers.setdefault(service_name, ports.outbound)
            inbound.setdefault(service_name, []).append(ports.inbound)
        gateway_port = None
        if mesh.ingress is not None:
            gateway_port = free_port()
            gateway_dir = directory / "gateway"
            gateway = compile_gateway(
                mesh,
                endpoints=endpoints,
                listen_port=gateway_port,
                ports=_ports(),
                config_dir=str(gateway_dir),
                runtime_dir=str(gateway_dir),
            )
            write_identity(Path(cert_dir_of(str(gateway_dir))), authority, ingress_identity(mesh))
            stack.enter_context(running_haproxy(gateway.files, gateway_dir, [gateway_port]))
        yield BuiltinPlane(
            callers[CALLER], gateway_port, running, callers, inbound, transparent, cluster_ips
        )
