"""Where the two sidecars' CPU goes beyond two bare HAProxy hops (not part of `make bench`).

    python -m bench.breakdown [rounds]

The two-sidecar path of bench/bench.mesh.yaml as compiled (no access log: the mesh's default),
with one piece changed at a time: the per-request JSON access-log line added (`accessLog: true`),
the canary route's `timeout` taken out (the sidecar implements it as a hop through a unix socket,
so the timeout bounds every attempt); next to two bare hops; and the pair with `mtls: strict` (TLS 1.3 between the sidecars, a CA
and a certificate per sidecar from the sandbox's PKI), so mTLS's own cost per request shows, and the same pair with `mtls: permissive`, the spec's
default, whose callee relays each connection from its one port to the TLS listener.
Each variant is its own caller and callee, measured at ~1,000 req/s in turn, `rounds` times;
prints the median vCPU of both proxies and CPU microseconds per request.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

from bench import dataplane
from bench.stats import median
from sailplan.loader import load_mesh_text

MTLS_VARIANT = "two sidecars with mTLS (as compiled)"
PERMISSIVE_VARIANT = "  with mTLS permissive (the spec's default)"


def variants() -> dict[str, str]:
    """name -> mesh YAML; the mTLS variant's mesh is made strict when it starts."""
    text = dataplane.MESH_FILE.read_text()
    document = yaml.safe_load(text)
    logged = copy.deepcopy(document)
    logged["accessLog"] = True
    untimed = copy.deepcopy(document)
    for route in untimed["services"]["service1"]["routes"]:
        route.pop("timeout", None)
    return {
        "two sidecars (as compiled)": text,
        "  with the access log (accessLog: true)": yaml.safe_dump(logged),
        "  without the route timeout's hop": yaml.safe_dump(untimed),
        MTLS_VARIANT: text,
        PERMISSIVE_VARIANT: text,
    }


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 3
    settings = dataplane.LoadSettings()
    delay = dataplane.fixed_rate_delay_ms(settings)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sailplan-bench-")))
        app = dataplane.free_port()
        stack.enter_context(dataplane.run_app("app", root / "app", app))
        paths: dict[str, tuple[dataplane.Target, list[dataplane.Proxy]]] = {}
        for index, (name, text) in enumerate(variants().items()):
            runtime = root / f"v{index}"
            mesh = load_mesh_text(text)
            suffix = ""
            if name == MTLS_VARIANT:
                mesh, suffix = dataplane.strict_mesh(mesh), "-mtls"
                dataplane.write_certificates(mesh, runtime, suffix)
            elif name == PERMISSIVE_VARIANT:
                # The callee's one port takes mTLS and plaintext: a TCP listener looks at the
                # first byte and relays the connection to the TLS or the plain HTTP listener.
                mesh, suffix = mesh.model_copy(update={"mtls": "permissive"}), "-permissive"
                dataplane.write_certificates(mesh, runtime, suffix)
            ports, configs = dataplane.sidecar_configs(mesh, app, runtime, suffix)
            pair = dataplane.start_pair(stack, runtime, ports, configs, suffix)
            paths[name] = (
                dataplane.Target(ports["caller"].outbound, dataplane.SERVICE1_HOST),
                list(pair),
            )
        # Two bare hops, as the bench builds them.
        _, configs = dataplane.sidecar_configs(
            load_mesh_text(dataplane.MESH_FILE.read_text()), app, root / "t"
        )
        bare_ports, bare = dataplane.start_bare_hops(
            stack, root, configs["callee"], root / "t" / "callee", app, logged=False
        )
        paths["two bare hops"] = (
            dataplane.Target(bare_ports["bare-2"], dataplane.SERVICE1_HOST),
            bare,
        )
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}", flush=True)
            for name, (target, proxies) in paths.items():
                dataplane.run_wrk(
                    target, seconds=1, connections=settings.fixed_connections, delay_ms=delay
                )
                before = sum(dataplane.cpu_seconds(p.pid) for p in proxies)
                started_at = time.monotonic()
                fixed = dataplane.run_wrk(
                    target,
                    seconds=settings.fixed_seconds,
                    connections=settings.fixed_connections,
                    delay_ms=delay,
                )
                elapsed = time.monotonic() - started_at
                vcpu = (sum(dataplane.cpu_seconds(p.pid) for p in proxies) - before) / elapsed
                measured[name].append((vcpu, vcpu / fixed["rps"] * 1e6))
    print("| path | vCPU of both proxies @~1,000 req/s | CPU per request (us) |")
    print("|---|---:|---:|")
    for name, values in measured.items():
        print(
            f"| {name.strip()} | {median([v for v, _ in values]):.3f} | "
            f"{median([u for _, u in values]):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
