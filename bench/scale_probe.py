"""One scale measurement in a fresh interpreter, printed as one JSON line.

    python -m bench.scale_probe render <services> <istio|builtin> [<calls>]
    python -m bench.scale_probe sidecar <services> [<calls>]  # one compile_sidecar, builtin
    python -m bench.scale_probe pulumi <services> <istio|builtin> [per-object|grouped]
    python -m bench.scale_probe cli <services> <istio|builtin> [DIR]  # `render -o`, wall

A fresh process per measurement keeps peak RSS (ru_maxrss) about that measurement alone.
<calls>: each service of the generated mesh lists that many services in `calls`. When the model
does not know `calls` yet, the probe prints {"skipped": why} instead of failing.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.meshgen import generated_mesh_yaml


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CallsRefused(Exception):
    """The model refused the generated mesh's `calls` (the field is not in the model yet)."""


def _load(text: str) -> Any:
    from sailplan.loader import load_mesh_text
    from sailplan.model import SpecError

    try:
        return load_mesh_text(text)
    except SpecError as error:
        refused = [p for p in error.problems if p.path.endswith(".calls")]
        if refused:
            raise CallsRefused(
                f"the model refuses `calls` ({refused[0].path}: {refused[0].message})"
            ) from None
        raise


def render(services: int, data_plane: str, calls: int | None = None) -> dict[str, Any]:
    from sailplan.render import builtin
    from sailplan.render.manifests import render_manifests

    # Past ~250 services a builtin ConfigMap outgrows Kubernetes' 1 MiB limit and render_manifests
    # refuses the mesh; lift the guard here, as this measures what rendering costs, not what applies.
    builtin.CONFIG_MAP_LIMIT_BYTES = sys.maxsize
    text = generated_mesh_yaml(services, data_plane, calls)
    baseline = _rss_mib()
    started = time.perf_counter()
    mesh = _load(text)
    loaded = time.perf_counter()
    objects = render_manifests(mesh)
    rendered = time.perf_counter()
    config_maps = [o for o in objects if o.get("kind") == "ConfigMap"]
    return {
        "manifest_bytes": sum(len(json.dumps(o, separators=(",", ":"))) for o in objects),
        "largest_config_map_bytes": max(
            (sum(len(v) for v in (o.get("data") or {}).values()) for o in config_maps), default=0
        ),
        "load_s": loaded - started,
        "render_s": rendered - loaded,
        "objects": len(objects),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": _rss_mib(),
    }


def sidecar(services: int, calls: int | None = None) -> dict[str, Any]:
    from sailplan.render.haproxy import DnsEndpoints, compile_sidecar

    mesh = _load(generated_mesh_yaml(services, calls=calls))
    endpoints = DnsEndpoints(mesh.namespace)
    started = time.perf_counter()
    config = compile_sidecar(mesh, next(iter(mesh.services)), "v1", endpoints=endpoints)
    return {
        "compile_s": time.perf_counter() - started,
        "config_bytes": sum(len(v) for v in config.files.values()),
        "workloads": 2 * services,
    }


def counting_mocks() -> Any:
    """Pulumi's mock engine, set for this interpreter, counting the resources registered
    (`.count`)."""
    import pulumi
    from pulumi.runtime.mocks import MockMonitor

    class Engine(pulumi.runtime.Mocks):
        count = 0

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            self.count += 1
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
            return {}

    engine = Engine()
    pulumi.runtime.set_mocks(
        engine, project="bench", stack="bench", preview=False, monitor=MockMonitor(engine)
    )
    return engine


def pulumi_registration(
    services: int, data_plane: str, registration: str = "per-object"
) -> dict[str, Any]:
    import pulumi

    from sailplan.components.mesh import Mesh, MeshArgs
    from sailplan.loader import load_mesh_text

    engine = counting_mocks()
    mesh = load_mesh_text(generated_mesh_yaml(services, data_plane))
    arguments = (
        MeshArgs(spec=mesh, install_control_plane=False, registration=registration)
        if data_plane == "istio"
        else MeshArgs(spec=mesh, proxy_image="registry.example/proxy:1", registration=registration)
    )
    started = time.perf_counter()

    @pulumi.runtime.test
    def run() -> Any:
        return Mesh("bench", arguments).namespace

    run()
    return {
        "register_s": time.perf_counter() - started,
        "resources": engine.count,
        "peak_rss_mib": _rss_mib(),
    }


def cli(services: int, data_plane: str, where: str | None = None) -> dict[str, Any]:
    """What a user waits for: `sailplan render MESH -o DIR --data-plane P` in a fresh process, from
    its start (interpreter and imports) until every file is written, as wall time: into a new
    directory (`cli_s`), then again into the same one (`rewrite_s`, every file already there).
    `where`: a directory to make and leave for the caller to remove (bench.scale.cli_runs), else
    a temporary one removed at the end."""
    with contextlib.ExitStack() as stack:
        if where is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sailplan-bench-"))
        else:
            Path(where).mkdir(parents=True)
            tmp = where
        mesh = Path(tmp) / "mesh.yaml"
        mesh.write_text(generated_mesh_yaml(services, data_plane), encoding="utf-8")
        # A user's interpreter reads compiled bytecode: pip compiles a package when it installs it,
        # and Python caches what it compiles. Where PYTHONDONTWRITEBYTECODE is set (this VM, CI)
        # each run would compile sailplan from source again (~0.15 s): the runs here get a bytecode
        # cache of their own, filled by one untimed render of a small mesh.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        small = Path(tmp) / "small.yaml"
        small.write_text(generated_mesh_yaml(2, data_plane), encoding="utf-8")
        _render_o(small, Path(tmp) / "warm-up", data_plane, env)
        out = Path(tmp) / "out"
        seconds, cpu = _render_o(mesh, out, data_plane, env)
        rewrite, _ = _render_o(mesh, out, data_plane, env)
        files = sorted(out.iterdir())
        return {
            "cli_s": seconds,
            "cli_cpu_s": cpu,
            "rewrite_s": rewrite,
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }


def _render_o(mesh: Path, out: Path, data_plane: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one `sailplan render MESH -o OUT` process."""
    command = [sys.executable, "-m", "sailplan", "render", str(mesh), "-o", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--data-plane", data_plane],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"sailplan render exited {done.returncode}: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main(argv: list[str]) -> int:
    kind, services = argv[0], int(argv[1])
    try:
        if kind == "render":
            result = render(services, argv[2], int(argv[3]) if len(argv) > 3 else None)
        elif kind == "sidecar":
            result = sidecar(services, int(argv[2]) if len(argv) > 2 else None)
        elif kind == "pulumi":
            result = pulumi_registration(services, *argv[2:4])
        elif kind == "cli":
            result = cli(services, *argv[2:4])
        else:
            print(f"unknown probe {kind!r}: use render, sidecar, pulumi or cli", file=sys.stderr)
            return 2
    except CallsRefused as refused:
        result = {"skipped": str(refused)}
    print("PROBEJSON " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
