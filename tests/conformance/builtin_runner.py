"""The builtin plane for real: a caller's sidecar and the ingress gateway, compiled from the spec,
run on Debian's haproxy in front of one backend per pod that answers `<service>/<version>`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from proxy_support import Backend, Reply, free_port, request, running_haproxy

import sailplan
from sailplan.render.haproxy import ProxyPorts, StaticEndpoints, compile_gateway, compile_sidecar

CALLER = "caller"


@dataclass
class BuiltinPlane:
    sidecar_port: int
    gateway_port: int | None
    pods: dict[str, list[Backend]]  # `<service>/<version>` -> its running pods

    def send(
        self,
        path: str,
        *,
        via: str,
        host: str,
        method: str,
        headers: dict[str, str],
        body: str = "",
    ) -> Reply:
        port = self.sidecar_port if via == "mesh" else self.gateway_port
        assert port is not None, "the mesh has no ingress"
        data = body.encode() if body else None
        return request(port, path, host=host, method=method, headers=headers, body=data, timeout=15)


@contextmanager
def builtin_plane(
    mesh: sailplan.Mesh, directory: Path, refusing: dict[str, int] | None = None
) -> Iterator[BuiltinPlane]:
    """`refusing`: `<service>/<version>` -> how many of its first pods get a port nothing
    listens on (connections refused at once)."""
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
