"""What one builtin sidecar holds in memory: the whole generated mesh loaded, against `calls`.

    python -m bench.sidecar_rss   # measure, store in bench/results.json, rewrite bench/RESULTS.md

One sidecar (the first service's v1) of the generated mesh (bench/meshgen.py, 1,000 services),
compiled twice: every service's outbound rules (no `calls`), and with `calls` of 5 services. Each
config runs as a real HAProxy process until it answers, then its VmRSS and VmHWM are read from
/proc. Two kinds of endpoints:

- `dns`, the config a pod runs in the cluster: each version behind a `server-template` of
  DnsEndpoints' slots resolved through `resolvers kubedns`. Nothing here resolves the cluster's
  names, so the proxy answers its health port (`/healthz/ready`), not a route.
- `static`, the sandbox's: one server per version on 127.0.0.1, a real app behind them, and the
  proxy answers a request through the mesh's routes (Host: a service it routes) with the app's 200.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from bench.dataplane import free_port, loopback_ports, process_tree, run_app, run_haproxy
from bench.meshgen import called_services, generated_mesh_yaml, service_name
from sailplan import constants as c
from sailplan.loader import load_mesh_text
from sailplan.render.haproxy import (
    DnsEndpoints,
    Endpoints,
    StaticEndpoints,
    compile_sidecar,
)

Kind = Literal["dns", "static"]
SERVICES = 1000
CALLS = 5
KINDS: tuple[Kind, ...] = ("dns", "static")
# A whole-mesh sidecar of 1,000 services took about 8 s to load on the 2-core machine, idle.
READY_TIMEOUT_S = 300.0
# After the first answer: the threads' pools and the Lua state have what a running proxy has.
SETTLE_S = 2.0
TARGET_CALLS_RSS_MIB = 25.0


def key(kind: Kind, calls: int | None) -> str:
    return f"{kind}/" + ("whole" if calls is None else f"calls{calls}")


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) summed over the process and its descendants."""
    rss = hwm = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss, hwm


def _get(port: int, path: str, host: str) -> int | str:
    """The status of one GET, or why there was none."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError as error:
        return str(error)
    finally:
        connection.close()


def _wait(process: subprocess.Popen[bytes], port: int, path: str, host: str) -> float:
    """Seconds until a GET answers 200."""
    started = time.monotonic()
    last: int | str = "no answer"
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the sidecar exited with {process.returncode} before answering")
        last = _get(port, path, host)
        if last == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"the sidecar did not answer 200 within {READY_TIMEOUT_S:g} s ({last})")


def measure_one(
    kind: Kind, runtime: Path, services: int = SERVICES, calls: int | None = None
) -> dict[str, Any]:
    """One sidecar's config, started, answering: its size, time to answer and memory."""
    mesh = load_mesh_text(generated_mesh_yaml(services, calls=calls))
    caller = service_name(0)
    # The service it calls whose rules come last: the whole route list is loaded before it.
    callee = (
        service_name(services - 1) if calls is None else called_services(0, services, calls)[-1]
    )
    directory = runtime / key(kind, calls).replace("/", "-")
    ports = loopback_ports()
    app_port = free_port()
    endpoints: Endpoints = (
        DnsEndpoints(mesh.target_namespace)
        if kind == "dns"
        else StaticEndpoints(
            {name: {v: [("127.0.0.1", app_port)] for v in ("v1", "v2")} for name in mesh.services}
        )
    )
    config = compile_sidecar(
        mesh,
        caller,
        "v1",
        endpoints=endpoints,
        ports=ports,
        app_port=free_port(),
        config_dir=str(directory),
        runtime_dir=str(directory),
        passthrough="original-destination" if kind == "dns" else "host-header",
    )
    files = dict(config.files)
    port, path, host = (
        (ports.health, c.PROXY_HEALTH_PATH, "localhost")
        if kind == "dns"
        else (ports.outbound, "/", f"{callee}:8080")
    )
    with (
        run_app("app", runtime / f"app-{directory.name}", app_port, body_bytes=64),
        run_haproxy("sidecar", directory, files, None) as sidecar,
    ):
        process = sidecar.process
        ready_s = _wait(process, port, path, host)
        time.sleep(SETTLE_S)
        rss, hwm = memory_kib(process.pid)
    return {
        "services": services,
        "calls": calls,
        "routed_services": services if calls is None else calls,
        "answered": "health" if kind == "dns" else "route",
        "config_bytes": sum(len(text.encode()) for text in files.values()),
        "ready_s": ready_s,
        "vmrss_kib": rss,
        "vmhwm_kib": hwm,
    }


def measure(services: int = SERVICES, calls: int = CALLS) -> dict[str, Any]:
    """`rows`: every kind of endpoints, whole mesh and `calls` (a failed one says why instead);
    `load_average`: the machine's, before and after (the times to answer depend on it)."""
    rows: dict[str, Any] = {}
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sailplan-rss-") as temporary:
        for kind in KINDS:
            for variant in (None, calls):
                label = key(kind, variant)
                print(f"  sidecar memory {label}, {services:,} services", flush=True)
                try:
                    rows[label] = measure_one(kind, Path(temporary), services, variant)
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    # One failed variant must not lose the hours of bench before it.
                    rows[label] = {"skipped": str(error)}
    return {"rows": rows, "load_average": {"before": before, "after": os.getloadavg()[0]}}


def main() -> int:
    from bench import report

    path = report.HERE / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        print(f"bench.sidecar_rss: needs the last run's {path}: {error}", file=sys.stderr)
        return 1
    machine = report.machine()
    # Measured apart from the run the rest of the report comes from: the report says when.
    data["sidecar_rss"] = {**measure(), "run": {k: machine[k] for k in ("date", "commit")}}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    report.write(data)
    for line in report.sidecar_rss_lines(data.get("sidecar_rss")):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
