"""What the sandbox runs and where: pure, so it can be tested without starting anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sailplan.model import Mesh, Problem, SpecError
from sailplan.render.haproxy import (
    ProxyConfig,
    ProxyPorts,
    StaticEndpoints,
    compile_gateway,
    compile_sidecar,
)


@dataclass(frozen=True)
class Instance:
    """One replica of one version: the app and its sidecar."""

    service: str
    version: str
    replica: int
    app_port: int
    sidecar: ProxyPorts

    @property
    def name(self) -> str:
        return f"{self.service}-{self.version}-{self.replica}"


@dataclass(frozen=True)
class Plan:
    instances: tuple[Instance, ...]
    gateway_port: int | None
    gateway: ProxyPorts | None

    def topology(self) -> tuple[tuple[str, str, int], ...]:
        """What a route change cannot alter without a restart."""
        return tuple((i.service, i.version, i.replica) for i in self.instances)

    def endpoints(self) -> StaticEndpoints:
        """A version's endpoints are its sidecars' inbound listeners, as pod IPs are in a cluster."""
        addresses: dict[str, dict[str, list[tuple[str, int]]]] = {}
        for instance in self.instances:
            versions = addresses.setdefault(instance.service, {})
            versions.setdefault(instance.version, []).append(
                ("127.0.0.1", instance.sidecar.inbound)
            )
        return StaticEndpoints(addresses)


def check_runnable(mesh: Mesh) -> None:
    """Every version the sandbox starts needs a `local` command."""
    problems = [
        Problem(
            f"services.{service_name}.versions.{version_name}.local",
            "the sandbox needs a local command to run this version, e.g. local: {command: [python, app.py]}",
        )
        for service_name, service in mesh.services.items()
        for version_name, version in service.versions.items()
        if version.local is None and version.replicas > 0
    ]
    if problems:
        raise SpecError(problems)


def make_plan(mesh: Mesh, next_port: Callable[[], int], ingress_port: int = 0) -> Plan:
    """Allocate ports for every instance and the gateway (ingress_port 0: any free port)."""

    def proxy_ports() -> ProxyPorts:
        return ProxyPorts(next_port(), next_port(), next_port(), next_port(), "127.0.0.1")

    instances = tuple(
        Instance(service_name, version_name, replica, next_port(), proxy_ports())
        for service_name in sorted(mesh.services)
        for version_name in sorted(mesh.services[service_name].versions)
        for replica in range(mesh.services[service_name].versions[version_name].replicas)
    )
    if mesh.ingress is None:
        return Plan(instances, None, None)
    return Plan(instances, ingress_port or next_port(), proxy_ports())


def compile_configs(
    mesh: Mesh, plan: Plan, runtime_root: Path
) -> Iterator[tuple[str, Path, ProxyConfig]]:
    """(process name, its config directory, its config) for every sidecar and the gateway."""
    endpoints = plan.endpoints()
    for instance in plan.instances:
        directory = runtime_root / instance.name
        yield (
            f"{instance.name}-proxy",
            directory,
            compile_sidecar(
                mesh,
                instance.service,
                instance.version,
                endpoints=endpoints,
                ports=instance.sidecar,
                app_port=instance.app_port,
                config_dir=str(directory),
                runtime_dir=str(directory),
                passthrough="host-header",
            ),
        )
    if plan.gateway is not None and plan.gateway_port is not None:
        directory = runtime_root / "gateway"
        yield (
            "gateway",
            directory,
            compile_gateway(
                mesh,
                endpoints=endpoints,
                listen_port=plan.gateway_port,
                ports=plan.gateway,
                config_dir=str(directory),
                runtime_dir=str(directory),
            ),
        )
