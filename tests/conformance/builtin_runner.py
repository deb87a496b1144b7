"""The builtin plane for real: a caller's sidecar and the ingress gateway, compiled from the spec,
run on Debian's haproxy in front of one backend per pod that answers `<service>/<version>`.

A mesh with authorization (`allow`, or `authorization.default: deny`) runs in full: every pod
gets its own sidecar in front of its backend, each with a certificate for its workload's SPIFFE
ID from a CA made for the run (the gateway too), so requests cross two sidecars over mTLS as
`mtls` says and the called pod's inbound listener decides on the caller's identity. A request
then comes from the sidecar of the service that sends it, from the gateway, or from a plaintext
client straight to the pods' inbound ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from proxy_support import Backend, Reply, free_port, request, running_haproxy

import sailplan
from sailplan.model.security import denies_by_default, ingress_identity, service_identity
from sailplan.render.haproxy import ProxyPorts, StaticEndpoints, compile_gateway, compile_sidecar
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
        return request(port, path, host=host, method=method, headers=headers, body=data, timeout=15)


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

        sidecar_ports = ProxyPorts(free_port(), free_port(), free_port(), free_port(), "127.0.0.1")
        sidecar = compile_sidecar(
            mesh,
            CALLER,
            "v1",
            endpoints=endpoints,
            ports=sidecar_ports,
            app_port=free_port(),
            config_dir=str(directory / "sidecar"),
            runtime_dir=str(directory / "sidecar"),
            passthrough="host-header",
        )
        stack.enter_context(
            running_haproxy(sidecar.files, directory / "sidecar", [sidecar_ports.outbound])
        )
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
        yield BuiltinPlane(sidecar_ports.outbound, gateway_port, running)


def _ports() -> ProxyPorts:
    return ProxyPorts(free_port(), free_port(), free_port(), free_port(), "127.0.0.1")


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
        for service_name, version_name, replica, ports in pods:
            if ports is None:  # a pod that refuses every connection
                continue
            backend = Backend(f"{service_name}/{version_name}").start()
            stack.callback(backend.stop)
            running.setdefault(f"{service_name}/{version_name}", []).append(backend)
            pod_dir = directory / f"{service_name}-{version_name}-{replica}"
            config = compile_sidecar(
                mesh,
                service_name,
                version_name,
                endpoints=endpoints,
                ports=ports,
                app_port=backend.port,
                config_dir=str(pod_dir),
                runtime_dir=str(pod_dir),
                passthrough="host-header",
            )
            identity = service_identity(mesh, service_name)
            write_identity(Path(cert_dir_of(str(pod_dir))), authority, identity)
            stack.enter_context(
                running_haproxy(config.files, pod_dir, [ports.inbound, ports.outbound])
            )
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
        yield BuiltinPlane(callers[CALLER], gateway_port, running, callers, inbound)
