"""The builtin render stays linear in services: counted, not timed, so it cannot flake.

Every Deployment projects each shared outbound ConfigMap, and their number grows with the mesh;
built per Deployment, those volume sources made the render quadratic (bench/FINDINGS.md point
10). Here shards are forced to one per service, so a quadratic part would dominate the count.
"""

from __future__ import annotations

from typing import Any

import pytest

import sailplan.render.haproxy as compiler_module
from bench.meshgen import generated_mesh_yaml
from sailplan.loader import load_mesh_text
from sailplan.render.manifests import render_manifests


def _containers(manifests: list[dict[str, Any]]) -> int:
    """Distinct dicts and lists in the manifests: what the render built and keeps alive."""
    seen: set[int] = set()
    stack: list[Any] = [manifests]
    while stack:
        value = stack.pop()
        if isinstance(value, dict | list) and id(value) not in seen:
            seen.add(id(value))
            stack.extend(value.values() if isinstance(value, dict) else value)
    return len(seen)


def _rendered(services: int) -> list[dict[str, Any]]:
    return render_manifests(load_mesh_text(generated_mesh_yaml(services)))


def test_objects_grow_linearly_with_services_and_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    # One shard per service: the fewest shards none of which passes one byte.
    monkeypatch.setattr(compiler_module, "SHARD_TARGET_BYTES", 1)
    small, large = _rendered(32), _rendered(64)
    shards = [m for m in large if m["metadata"]["name"].startswith("bench-64-outbound-")]
    assert len(shards) == 64
    # Linear: twice the services, twice the objects (give or take the mesh-wide ones).
    assert _containers(large) <= 2.05 * _containers(small)
    # Every Deployment's volume lists the same source objects for the shared ConfigMaps.
    deployments = [m for m in large if m["kind"] == "Deployment"]
    sources = {
        id(source)
        for deployment in deployments
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
        for source in volume.get("projected", {}).get("sources", [])[1:]
    }
    assert len(sources) == 65
