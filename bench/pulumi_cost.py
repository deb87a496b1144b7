"""What registering the `Mesh` component costs under Pulumi's mocks, per mesh size.

    python -m bench.pulumi_cost 200 1000                  # istio plane, one fresh interpreter each
    python -m bench.pulumi_cost --plane builtin 200
    python -m bench.pulumi_cost --registration grouped 1000  # one ConfigGroup per service
    python -m bench.pulumi_cost --profile out.prof 1000  # cProfile of the registration

Each size runs in its own interpreter (peak RSS, ru_maxrss, is then about that size alone) and
prints one line: wall time of the whole registration (render included, as `Mesh` renders), the
CPU time of the process over it (less inflated than wall time on a shared machine), the part of
it spent rendering, peak RSS and the number of resources the mock engine saw.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    services: int, plane: str, registration: str = "per-object", profile: str | None = None
) -> dict[str, Any]:
    """One registration in this interpreter (call it in a fresh one)."""
    import pulumi

    import sailplan.components.mesh as mesh_module
    from bench.meshgen import generated_mesh_yaml
    from bench.scale_probe import counting_mocks
    from sailplan.components.mesh import Mesh, MeshArgs
    from sailplan.loader import load_mesh_text
    from sailplan.render import builtin

    # Past ~250 services of this shape a builtin ConfigMap used to outgrow 1 MiB; this measures
    # registration, not what a cluster accepts.
    builtin.CONFIG_MAP_LIMIT_BYTES = sys.maxsize

    engine = counting_mocks()
    spec = load_mesh_text(generated_mesh_yaml(services, plane))
    arguments = (
        MeshArgs(spec=spec, install_control_plane=False, registration=registration)  # type: ignore[arg-type]
        if plane == "istio"
        else MeshArgs(
            spec=spec,
            proxy_image="registry.example/proxy:1",
            registration=registration,  # type: ignore[arg-type]
        )
    )
    # Time the render inside `Mesh` apart, so what is left is the SDK's registration path.
    render = mesh_module.render_manifests
    rendering = [0.0]

    def timed_render(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return render(*args, **kwargs)
        finally:
            rendering[0] += time.perf_counter() - started

    mesh_module.render_manifests = timed_render  # type: ignore[assignment]

    @pulumi.runtime.test
    def run() -> Any:
        return Mesh("bench", arguments).namespace

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return {
        "services": services,
        "plane": plane,
        "registration": registration,
        "register_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "render_s": round(rendering[0], 3),
        "resources": engine.count,
        "peak_rss_mib": round(_rss_mib(), 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pulumi_cost")
    parser.add_argument("services", type=int, nargs="+")
    parser.add_argument("--plane", choices=("istio", "builtin"), default="istio")
    parser.add_argument("--registration", choices=("per-object", "grouped"), default="per-object")
    parser.add_argument("--profile", help="write a cProfile of the registration here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.one:
        result = measure(options.services[0], options.plane, options.registration, options.profile)
        print("PROBEJSON " + json.dumps(result, sort_keys=True), flush=True)
        return 0
    print(
        f"{'services':>8} {'resources':>9} {'wall s':>7} {'cpu s':>7} {'render s':>8} "
        f"{'peak RSS MiB':>12}"
    )
    for services in options.services:
        command = [sys.executable, "-m", "bench.pulumi_cost", "--one", "--plane", options.plane]
        command += ["--registration", options.registration]
        if options.profile:
            command += ["--profile", options.profile]
        done = subprocess.run(
            [*command, str(services)], capture_output=True, text=True, check=False
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("PROBEJSON ")), None)
        if done.returncode != 0 or line is None:
            print(f"the probe of {services} services failed:\n{done.stderr}", file=sys.stderr)
            return 1
        r = json.loads(line.removeprefix("PROBEJSON "))
        print(
            f"{r['services']:>8} {r['resources']:>9} {r['register_s']:>7.2f} {r['cpu_s']:>7.2f} "
            f"{r['render_s']:>8.2f} {r['peak_rss_mib']:>12.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
