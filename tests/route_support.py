"""A caller's sidecar on real HAProxy in front of service1's v1 and v2, for the route feature
tests (headers, rewrites, redirects, matches)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxy_support import Backend, Reply, backends, free_port, request, running_haproxy

import sailplan
from sailplan.render.haproxy import ProxyPorts, StaticEndpoints, compile_sidecar


def spec(routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "routes",
        # Plaintext, as the conformance runner: these tests look at routing, not at mTLS.
        "mtls": "disable",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {"v1": {"image": "a"}, "v2": {"image": "b"}},
                "routes": routes,
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }


def load(routes: list[dict[str, Any]]) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(spec(routes)))


def problems(routes: list[dict[str, Any]]) -> list[str]:
    """The problems `check` reports for these routes of service1."""
    with pytest.raises(sailplan.SpecError) as error:
        load(routes)
    return [str(problem) for problem in error.value.problems]


@dataclass
class Sidecar:
    port: int
    pods: dict[str, Backend]  # version -> its one pod

    def get(self, path: str = "/", **kwargs: Any) -> Reply:
        return request(self.port, path, **kwargs)

    def last(self, version: str) -> tuple[str, str, list[tuple[str, str]]]:
        """Method, path and header lines of the last request the version's pod saw."""
        pod = self.pods[version]
        method, path, _ = pod.requests[-1]
        return method, path, [(k.lower(), v) for k, v in pod.header_lines[-1]]


def values(lines: list[tuple[str, str]] | tuple[tuple[str, str], ...], name: str) -> list[str]:
    return [value for key, value in lines if key == name]


@contextmanager
def sidecar(mesh: sailplan.Mesh) -> Iterator[Sidecar]:
    with (
        backends("v1", "v2") as pods,
        tempfile.TemporaryDirectory(prefix="sp-r-") as name,
    ):
        directory = Path(name)
        addresses = {version: [("127.0.0.1", pod.port)] for version, pod in pods.items()}
        ports = ProxyPorts(free_port(), free_port(), free_port(), free_port(), "127.0.0.1")
        config = compile_sidecar(
            mesh,
            "caller",
            "v1",
            endpoints=StaticEndpoints({"service1": addresses}),
            ports=ports,
            app_port=free_port(),
            config_dir=str(directory),
            runtime_dir=str(directory),
            passthrough="host-header",
        )
        with running_haproxy(config.files, directory, [ports.outbound]):
            yield Sidecar(ports.outbound, pods)
