"""Real HAProxy processes and small HTTP backends on 127.0.0.1, for behaviour tests.

Everything started here is bounded in time and stopped by its PID in a finalizer.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sailplan
from sailplan.render.haproxy import ProxyPorts, StaticEndpoints, compile_sidecar
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.sandbox.certs import new_authority, write_identity
from sailplan.sandbox.plan import loopback_ports as sandbox_loopback_ports
from sailplan.sandbox.runner import distinct_free_ports

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
_CHECK_CA = new_authority()


# Never the same port twice in one test run: the kernel may offer a port it just called free to
# the next probe. Before the configs said `noreuseport`, two of a proxy's frontends given one
# port both started and the kernel split connections between them (a CI run saw its outbound
# request answered 404 by the health frontend); now such a proxy would not start.
free_port = distinct_free_ports()


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients (and proxies) closing early are part of the tests, not failures


@dataclass
class Backend:
    """An HTTP server answering `<name>` (200). `/status/<code>` answers that status,
    `/sleep/<ms>` answers after that long, `/flaky/<n>` fails n times with 503 then succeeds."""

    name: str
    port: int = 0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # of `requests`, in the same order
    # Of `requests`, in the same order: every header line as sent, repeated names included.
    header_lines: list[list[tuple[str, str]]] = field(default_factory=list)
    status_override: int | None = None
    _flaky: Counter[str] = field(default_factory=Counter)
    _server: ThreadingHTTPServer | None = None
    # Another loopback address (127.0.0.2, ...) stands for another pod or Service IP.
    address: str = "127.0.0.1"

    def start(self) -> Backend:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                backend.bodies.append(body)
                backend.header_lines.append(list(self.headers.items()))
                backend.requests.append((self.command, self.path, dict(self.headers.items())))
                status, name = 200, backend.name
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[0] == "status" and len(parts) > 1:
                    status = int(parts[1])
                elif parts[0] == "sleep" and len(parts) > 1:
                    time.sleep(int(parts[1]) / 1000)
                elif parts[0] == "flaky" and len(parts) > 1:
                    backend._flaky[self.path] += 1
                    if backend._flaky[self.path] <= int(parts[1]):
                        status = 503
                if backend.status_override is not None:
                    status = backend.status_override
                data = name.encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

        # Port 0 would let the kernel pick a port handed out for a proxy and not bound yet.
        server = _QuietServer((self.address, self.port or free_port()), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def backends(*names: str) -> Iterator[dict[str, Backend]]:
    started = {name: Backend(name).start() for name in names}
    try:
        yield started
    finally:
        for backend in started.values():
            backend.stop()


@contextmanager
def running_haproxy(
    files: Mapping[str, str], directory: Path, ports: list[int]
) -> Iterator[subprocess.Popen[bytes]]:
    """Write the config files into `directory`, start haproxy on them and wait for `ports`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    check = subprocess.run(
        [HAPROXY, "-c", "-q", "-f", str(directory)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr + check.stdout
    log = (directory / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(directory)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for port in ports:
            wait_for_port(port)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


ENTRYPOINT = Path(__file__).resolve().parent.parent / "sailplan" / "proxy_image" / "entrypoint.sh"


@contextmanager
def running_entrypoint(
    role: str, config_dir: Path, runtime_dir: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The proxy image's entrypoint run for real (`proxy` or `gateway`), polling its mounted files
    every 0.2 s as the kubelet's projected volume would change them; its whole process group
    (the entrypoint and its haproxy) is ended on the way out."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT), role],
            env={
                **os.environ,
                "SAILPLAN_CONFIG_DIR": str(config_dir),
                "SAILPLAN_RUNTIME_DIR": str(runtime_dir),
                "SAILPLAN_POLL_SECONDS": "0.2",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def wait_until_served(serial: Callable[[], int], expected: int, timeout: float = 15) -> None:
    """Wait until the listener hands out the certificate with serial `expected` (the entrypoint
    reloads HAProxy when a mounted certificate changes)."""
    deadline = time.monotonic() + timeout
    while serial() != expected:
        assert time.monotonic() < deadline, "the renewed certificate is not served"
        time.sleep(0.2)


def access_lines(directory: Path, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The JSON lines HAProxy wrote (running_haproxy keeps its output in haproxy.log), once
    `count` are there; every line that starts as JSON must parse."""
    deadline = time.monotonic() + timeout
    while True:
        text = (directory / "haproxy.log").read_text(errors="replace")
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def loopback_ports() -> ProxyPorts:
    return sandbox_loopback_ports(free_port)


@contextmanager
def running_caller(
    mesh: sailplan.Mesh,
    addresses: Mapping[str, list[tuple[str, int]]],
    directory: Path,
) -> Iterator[ProxyPorts]:
    """The sidecar of the workload `caller` (v1) on real haproxy, routing to service1's versions
    at `addresses`; a Host outside the mesh passes through to the address it names. Yields the
    ports once it listens (haproxy binds every listener before it accepts on any)."""
    ports = loopback_ports()
    config = compile_sidecar(
        mesh,
        "caller",
        "v1",
        endpoints=StaticEndpoints({"service1": dict(addresses)}),
        ports=ports,
        app_port=free_port(),
        config_dir=str(directory),
        runtime_dir=str(directory),
        passthrough="host-header",
    )
    with running_haproxy(config.files, directory, [ports.outbound]):
        yield ports


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    seconds: float
    headers: tuple[tuple[str, str], ...] = ()  # every header line of the answer, in order


def request(
    port: int,
    path: str = "/",
    *,
    host: str = "service1",
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    body: bytes | None = None,
) -> Reply:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"host": host, **(headers or {})})
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        lines = tuple((name.lower(), value) for name, value in response.getheaders())
        return Reply(response.status, text, time.monotonic() - started, lines)
    finally:
        connection.close()


def many(count: int, send: Callable[[], Reply], concurrency: int = 16) -> list[Reply]:
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: send(), range(count)))


def check_config(files: Mapping[str, str], what: str = "config") -> None:
    """`haproxy -c` on compiled files, moved from their in-pod paths into a short temporary
    directory (unix socket paths must stay under ~100 bytes). Warnings count as failures."""
    directory = Path(tempfile.mkdtemp(prefix="sp-"))
    certs = Path(cert_dir_of(str(directory)))
    try:
        for name, text in files.items():
            local = text.replace("/etc/sailplan", str(directory)).replace(
                "/var/run/sailplan", str(directory)
            )
            (directory / name).write_text(local)
        if any("-certs/" in text for name, text in files.items() if name.endswith(".cfg")):
            # The mounted certificate Secret of an mTLS proxy: HAProxy reads it at startup.
            write_identity(certs, _CHECK_CA, "spiffe://cluster.local/ns/a/sa/b")
        done = subprocess.run(
            # The directory, as the proxy image reads it: every *.cfg in name order.
            [HAPROXY, "-c", "-f", str(directory)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{what}: {output}"
        assert "[WARNING]" not in output, f"{what}: {output}"
    finally:
        shutil.rmtree(directory)
        shutil.rmtree(certs, ignore_errors=True)
