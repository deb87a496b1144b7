"""One scale measurement in a fresh interpreter, printed as one JSON line.

    python -m bench.scale_probe render <services> <istio|builtin>
    python -m bench.scale_probe sidecar <services>      # one compile_sidecar of a builtin mesh
    python -m bench.scale_probe pulumi <services> <istio|builtin>

A fresh process per measurement keeps peak RSS (ru_maxrss) about that measurement alone.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

from bench.meshgen import generated_mesh_yaml


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render(services: int, data_plane: str) -> dict[str, Any]:
    from sailplan.loader import load_mesh_text
    from sailplan.render import builtin
    from sailplan.render.manifests import render_manifests

    # Past ~250 services a builtin ConfigMap outgrows Kubernetes' 1 MiB limit and render_manifests
    # refuses the mesh; lift the guard here, as this measures what rendering costs, not what applies.
    builtin.CONFIG_MAP_LIMIT_BYTES = sys.maxsize
    text = generated_mesh_yaml(services, data_plane)
    baseline = _rss_mib()
    started = time.perf_counter()
    mesh = load_mesh_text(text)
    loaded = time.perf_counter()
    objects = render_manifests(mesh)
    rendered = time.perf_counter()
    return {
        "load_s": loaded - started,
        "render_s": rendered - loaded,
        "objects": len(objects),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": _rss_mib(),
    }


def sidecar(services: int) -> dict[str, Any]:
    from sailplan.loader import load_mesh_text
    from sailplan.render.haproxy import DnsEndpoints, compile_sidecar

    mesh = load_mesh_text(generated_mesh_yaml(services))
    endpoints = DnsEndpoints(mesh.namespace)
    started = time.perf_counter()
    config = compile_sidecar(mesh, next(iter(mesh.services)), "v1", endpoints=endpoints)
    return {
        "compile_s": time.perf_counter() - started,
        "config_bytes": sum(len(v) for v in config.files.values()),
        "workloads": 2 * services,
    }


def pulumi_registration(services: int, data_plane: str) -> dict[str, Any]:
    import pulumi
    from pulumi.runtime.mocks import MockMonitor

    from sailplan.components.mesh import Mesh, MeshArgs
    from sailplan.loader import load_mesh_text

    class Engine(pulumi.runtime.Mocks):
        count = 0

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            Engine.count += 1
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
            return {}

    engine = Engine()
    pulumi.runtime.set_mocks(
        engine, project="bench", stack="bench", preview=False, monitor=MockMonitor(engine)
    )
    mesh = load_mesh_text(generated_mesh_yaml(services, data_plane))
    arguments = (
        MeshArgs(spec=mesh, install_control_plane=False)
        if data_plane == "istio"
        else MeshArgs(spec=mesh, proxy_image="registry.example/proxy:1")
    )
    started = time.perf_counter()

    @pulumi.runtime.test
    def run() -> Any:
        return Mesh("bench", arguments).namespace

    run()
    return {
        "register_s": time.perf_counter() - started,
        "resources": Engine.count,
        "peak_rss_mib": _rss_mib(),
    }


def main(argv: list[str]) -> int:
    kind, services = argv[0], int(argv[1])
    if kind == "render":
        result = render(services, argv[2])
    elif kind == "sidecar":
        result = sidecar(services)
    elif kind == "pulumi":
        result = pulumi_registration(services, argv[2])
    else:
        print(f"unknown probe {kind!r}: use render, sidecar or pulumi", file=sys.stderr)
        return 2
    print("PROBEJSON " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
