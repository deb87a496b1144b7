"""YAML -> model -> YAML-shaped dict -> model is stable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import DEMO_MESH, EXAMPLE_MESHES

import sailplan


@pytest.mark.parametrize("path", [DEMO_MESH, *EXAMPLE_MESHES], ids=lambda p: p.stem)
def test_round_trip_is_stable(path: Path) -> None:
    mesh = sailplan.load_mesh(path)
    first = mesh.to_dict()
    again = sailplan.load_mesh_text(yaml.safe_dump(first))
    assert again == mesh
    assert again.to_dict() == first


def test_round_trip_keeps_every_policy() -> None:
    text = """
name: rt
dataPlane: istio
mtls: strict
services:
  s:
    port: 80
    versions: {v1: {image: a, local: {command: [run]}}, v2: {image: b}}
    routes:
      - name: r
        match: [{path: {regex: "^/x"}, method: GET, headers: {h: v}, query: {q: {prefix: a}}}]
        to: v1
        fault: {delay: {fixed: 1500ms, percent: 2.5}, abort: {status: 503, percent: 1}}
        timeout: 1m
        retries: {attempts: 2, perTryTimeout: 1s, on: [gateway-error, "503"]}
        mirror: {to: v2, percent: 10}
      - split: {v1: 50, v2: 50}
    policy:
      loadBalancer: {hashHeader: x-user}
      connectionPool: {maxConnections: 5, maxPendingRequests: 1}
      outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 1m, maxEjectionPercent: 50}
ingress: {port: 8080, nodePort: 30080, hosts: ["*.example.com"], routes: [{match: {path: {prefix: /}}, service: s}]}
"""
    mesh = sailplan.load_mesh_text(text)
    data = mesh.to_dict()
    assert data["services"]["s"]["routes"][0]["match"][0]["method"] == {"exact": "GET"}
    assert data["services"]["s"]["routes"][0]["fault"]["delay"] == {
        "fixed": "1500ms",
        "percent": 2.5,
    }
    assert data["services"]["s"]["routes"][0]["timeout"] == "1m"
    assert data["services"]["s"]["policy"]["loadBalancer"] == {"hashHeader": "x-user"}
    assert sailplan.load_mesh_text(yaml.safe_dump(data)) == mesh
