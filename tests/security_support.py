"""Sidecars with real certificates for the mTLS and authorization tests: a mesh CA, a sidecar per
workload on 127.0.0.1 with its certificate directory, and TLS clients that present a workload's
certificate (or none, or one from another CA)."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from proxy_support import Backend, Reply, loopback_ports, running_haproxy

import sailplan
from sailplan.model.security import service_identity
from sailplan.render.haproxy import ProxyPorts, StaticEndpoints, compile_sidecar
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.sandbox.certs import Authority, new_authority, write_identity


def mesh(mtls: str, allow: list[dict[str, Any]] | None = None, **extra: Any) -> sailplan.Mesh:
    """service1 (called), service2 and service3 (callers), an ingress to service1."""
    service1: dict[str, Any] = {"port": 8088, "versions": {"v1": {"image": "a"}}}
    if allow is not None:
        service1["allow"] = allow
    spec = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "sec",
        "mtls": mtls,
        "services": {
            "service1": service1,
            "service2": {"port": 9000, "versions": {"v1": {"image": "b"}}},
            "service3": {"port": 9001, "versions": {"v1": {"image": "c"}}},
        },
        "ingress": {"routes": [{"service": "service1"}]},
        **extra,
    }
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


@dataclass
class Workload:
    """A sidecar running for `service`, its ports and its certificate directory."""

    service: str
    ports: ProxyPorts
    directory: Path

    @property
    def certs(self) -> Path:
        return Path(cert_dir_of(str(self.directory)))


class Mesh:
    """Sidecars of one mesh on 127.0.0.1, all with certificates from one CA."""

    def __init__(self, spec: sailplan.Mesh, stack: ExitStack) -> None:
        self.spec = spec
        self.ca = new_authority()
        self._stack = stack
        self.root = Path(tempfile.mkdtemp(prefix="sp-"))
        stack.callback(shutil.rmtree, self.root, True)

    def identity(self, service: str) -> str:
        return service_identity(self.spec, service)

    def cert_dir(self, name: str, identity: str, authority: Authority | None = None) -> Path:
        return write_identity(self.root / "clients" / name, authority or self.ca, identity)

    def sidecar(
        self,
        service: str,
        app: Backend,
        endpoints: Mapping[str, Mapping[str, list[tuple[str, int]]]] | None = None,
        identity: str | None = None,
    ) -> Workload:
        """Start `service`'s sidecar in front of `app`, with `identity`'s certificate (default:
        its own)."""
        directory = self.root / service
        ports = loopback_ports()
        config = compile_sidecar(
            self.spec,
            service,
            "v1",
            endpoints=StaticEndpoints(endpoints or {}),
            ports=ports,
            app_port=app.port,
            config_dir=str(directory),
            runtime_dir=str(directory),
            passthrough="host-header",
        )
        write_identity(
            Path(cert_dir_of(str(directory))), self.ca, identity or self.identity(service)
        )
        self._stack.enter_context(
            running_haproxy(config.files, directory, [ports.inbound, ports.outbound])
        )
        return Workload(service, ports, directory)


@contextmanager
def sidecars(spec: sailplan.Mesh) -> Iterator[Mesh]:
    with ExitStack() as stack:
        yield Mesh(spec, stack)


def client_context(cert_dir: Path | None, ca_file: Path) -> ssl.SSLContext:
    """A TLS client as a sidecar is one: the mesh CA, a workload certificate (or none). The
    server's name is not checked here (the sidecars check it); its chain is."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(ca_file)
    if cert_dir is not None:
        context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    return context


@dataclass(frozen=True)
class TlsReply(Reply):
    version: str | None = None
    headers: Mapping[str, str] | None = None  # type: ignore[assignment]


def tls_request(
    port: int,
    context: ssl.SSLContext,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
) -> TlsReply:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request(method, path, headers={"host": "service1", **(headers or {})})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        sock = connection.sock
        version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
        return TlsReply(
            response.status, body, 0.0, version=version, headers=dict(response.headers.items())
        )
    finally:
        connection.close()


def plaintext_refused(port: int) -> bool:
    """True when a plaintext HTTP request on `port` gets no HTTP answer (the connection is
    closed or reset by the TLS listener)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: service1\r\n\r\n")
        try:
            data = sock.recv(64)
        except ConnectionResetError:
            return True
    return not data.startswith(b"HTTP/")
