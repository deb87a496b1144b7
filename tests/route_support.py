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
from proxy_support import Backend, Reply, backends, request, running_caller

import sailplan


def spec(routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "routes",
        # Plaintext: the tests' pods are bare HTTP servers, not sidecars holding mesh certificates.
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
        addresses = {version: [("127.0.0.1", pod.port)] for version, pod in pods.items()}
        with running_caller(mesh, addresses, Path(name)) as ports:
            yield Sidecar(ports.outbound, pods)
