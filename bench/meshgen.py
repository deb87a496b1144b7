"""Generated meshes for scale benchmarks: N services, 2 versions each, routes with matches,
faults and retries, in the YAML shape `load_mesh_text` reads."""

from __future__ import annotations

from typing import Any

import yaml


def service_name(index: int) -> str:
    return f"svc{index:05d}"


def called_services(index: int, services: int, calls: int) -> list[str]:
    """The `calls` services after service `index`, wrapping around (never itself): every service
    is called by as many as it calls, so every sidecar carries the same number of services."""
    return [
        service_name((index + step) % services) for step in range(1, min(calls, services - 1) + 1)
    ]


def generated_mesh_document(
    services: int, data_plane: str = "builtin", calls: int | None = None
) -> dict[str, Any]:
    """A mesh of `services` services; every one calls into the policies a real mesh uses. With
    `calls`, each service says which `calls` services it calls (its sidecar's egress scope)."""
    if services < 1:
        raise ValueError("a generated mesh needs at least one service")
    if calls is not None and calls < 1:
        raise ValueError(f"calls must be 1 or more, not {calls}")
    document: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": f"bench-{services}",
        "namespace": "bench",
        "dataPlane": data_plane,
        "services": {},
    }
    if data_plane == "builtin":
        # The outbound cost is measured straight to an app, not a sidecar: plaintext.
        document["mtls"] = "disable"
    for index in range(services):
        name = service_name(index)
        versions = {
            version: {
                "image": f"example.org/{name}:{version}",
                "env": {"SERVICE_VERSION": version},
                "readiness": {"path": "/healthz"},
            }
            for version in ("v1", "v2")
        }
        document["services"][name] = {
            "port": 8080,
            "versions": versions,
            "policy": {
                "loadBalancer": "least-request",
                "connectionPool": {"maxConnections": 100, "maxPendingRequests": 10},
            },
            "routes": [
                {
                    "name": "testers",
                    "match": [
                        {"headers": {"end-user": {"exact": "tester"}}},
                        {"path": {"prefix": "/beta/"}, "method": {"exact": "GET"}},
                    ],
                    "to": "v2",
                    "retries": {"attempts": 2, "perTryTimeout": "500ms", "on": ["5xx"]},
                },
                {
                    "name": "chaos",
                    "match": {"headers": {"x-chaos": {"exact": "on"}}},
                    "to": "v1",
                    "fault": {
                        "delay": {"fixed": "100ms", "percent": 10},
                        "abort": {"status": 503, "percent": 5},
                    },
                },
                {
                    "name": "canary",
                    "split": {"v1": 90, "v2": 10},
                    "timeout": "2s",
                    "retries": {"attempts": 3, "perTryTimeout": "300ms"},
                },
            ],
        }
        if calls is not None:
            document["services"][name]["calls"] = called_services(index, services, calls)
    return document


def generated_mesh_yaml(
    services: int, data_plane: str = "builtin", calls: int | None = None
) -> str:
    return yaml.safe_dump(generated_mesh_document(services, data_plane, calls), sort_keys=True)
