"""mTLS on the builtin plane, on real HAProxy with real certificates: what each `mtls` mode
accepts on the inbound port, TLS 1.3, the caller's identity handed to the app, and outbound
connections that verify the server's identity."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_MESH
from cryptography import x509
from proxy_support import (
    access_lines,
    backends,
    loopback_ports,
    request,
    running_entrypoint,
    wait_for_port,
    wait_until_served,
)
from security_support import (
    client_context,
    mesh,
    plaintext_refused,
    sidecars,
    tls_request,
)

import sailplan
from sailplan.model.security import service_identity
from sailplan.render.haproxy import StaticEndpoints, compile_gateway, compile_sidecar
from sailplan.render.haproxy.globals import NO_UPSTREAM_BODY
from sailplan.render.haproxy.security import cert_dir_of
from sailplan.render.manifests import render_manifests
from sailplan.sandbox.certs import issue, new_authority, serial_of, write_identity
from sailplan.sandbox.runner import write_config

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(90)]


def test_strict_accepts_only_mesh_mtls_and_negotiates_tls_1_3() -> None:
    with backends("app") as apps, sidecars(mesh("strict")) as running:
        callee = running.sidecar("service1", apps["app"])
        ca = running.cert_dir("ca-only", running.identity("service2")) / "ca.crt"
        caller = running.cert_dir("service2", running.identity("service2"))
        reply = tls_request(callee.ports.inbound, client_context(caller, ca))
        assert (reply.status, reply.body, reply.version) == (200, "app", "TLSv1.3")
        # Plaintext gets no HTTP answer at all.
        assert plaintext_refused(callee.ports.inbound)
        # No client certificate, or one from another CA: the handshake fails.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            tls_request(callee.ports.inbound, client_context(None, ca))
        stranger = running.cert_dir("stranger", running.identity("service2"), new_authority())
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            tls_request(callee.ports.inbound, client_context(stranger, ca))
        # Only TLS 1.3 is offered.
        old = client_context(caller, ca)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            tls_request(callee.ports.inbound, old)
        assert len(apps["app"].requests) == 1


def test_permissive_accepts_plaintext_and_mtls_on_one_port() -> None:
    with backends("app") as apps, sidecars(mesh("permissive")) as running:
        callee = running.sidecar("service1", apps["app"])
        caller = running.cert_dir("service2", running.identity("service2"))
        plain = request(callee.ports.inbound, headers={"x-forwarded-client-cert": "URI=forged"})
        assert (plain.status, plain.body) == (200, "app")
        mutual = tls_request(callee.ports.inbound, client_context(caller, caller / "ca.crt"))
        assert (mutual.status, mutual.body, mutual.version) == (200, "app", "TLSv1.3")
        # A caller's own XFCC is dropped: plaintext callers have no identity to forward.
        first, second = (headers for _, _, headers in apps["app"].requests)
        assert "x-forwarded-client-cert" not in {name.lower() for name in first}
        der = ssl.PEM_cert_to_DER_cert((caller / "tls.crt").read_text())
        assert second["x-forwarded-client-cert"] == (
            f"By={running.identity('service1')};Hash={hashlib.sha256(der).hexdigest()};"
            f"URI={running.identity('service2')}"
        )
        # The caller's address survives the hop from the detecting listener (PROXY protocol).
        assert all(r.status == 200 for r in [plain, mutual])


@pytest.mark.parametrize("mode", ["permissive", "strict"])
def test_the_mtls_port_takes_mesh_mtls_only_and_sidecars_dial_it(mode: str) -> None:
    """Sidecars dial each other's mTLS port, TLS only whatever the mode: under `permissive` their
    connections skip the inbound port's detection and its relay, and answer the same."""
    with backends("callee", "caller-app") as apps, sidecars(mesh(mode)) as running:
        callee = running.sidecar("service1", apps["callee"])
        caller = running.cert_dir("service2", running.identity("service2"))
        mutual = tls_request(callee.ports.mtls, client_context(caller, caller / "ca.crt"))
        assert (mutual.status, mutual.body, mutual.version) == (200, "callee", "TLSv1.3")
        assert plaintext_refused(callee.ports.mtls)
        stranger = running.cert_dir("stranger", running.identity("service2"), new_authority())
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            tls_request(callee.ports.mtls, client_context(stranger, caller / "ca.crt"))
        sidecar = running.sidecar(
            "service2",
            apps["caller-app"],
            {"service1": {"v1": [("127.0.0.1", callee.ports.mtls)]}},
        )
        reply = request(sidecar.ports.outbound, "/hello", host="service1")
        assert (reply.status, reply.body) == (200, "callee")
        identities = [
            h["x-forwarded-client-cert"].rsplit(";URI=", 1)[1] for *_, h in apps["callee"].requests
        ]
        assert identities == [running.identity("service2")] * 2


def test_xfcc_is_the_connections_own_on_every_request_of_it() -> None:
    """The header is worked out once per connection: every request on a keep-alive connection
    carries it (a forged one replaced), and another caller's connection gets its own."""
    with backends("app") as apps, sidecars(mesh("strict")) as running:
        callee = running.sidecar("service1", apps["app"])
        expected = {}
        for service in ("service2", "service3"):
            certs = running.cert_dir(service, running.identity(service))
            der = ssl.PEM_cert_to_DER_cert((certs / "tls.crt").read_text())
            expected[service] = (
                f"By={running.identity('service1')};Hash={hashlib.sha256(der).hexdigest()};"
                f"URI={running.identity(service)}"
            )
            connection = http.client.HTTPSConnection(
                "127.0.0.1",
                callee.ports.inbound,
                context=client_context(certs, certs / "ca.crt"),
                timeout=10,
            )
            try:
                for forged in (None, "URI=forged", None):
                    headers = {"host": "service1"}
                    if forged is not None:
                        headers["x-forwarded-client-cert"] = forged
                    connection.request("GET", "/", headers=headers)
                    response = connection.getresponse()
                    assert (response.status, response.read()) == (200, b"app")
                    assert not response.will_close
            finally:
                connection.close()
        seen = [headers["x-forwarded-client-cert"] for _, _, headers in apps["app"].requests]
        assert seen == [expected["service2"]] * 3 + [expected["service3"]] * 3


def test_sidecar_to_sidecar_is_mtls_and_the_app_learns_the_caller() -> None:
    with backends("callee", "caller-app") as apps, sidecars(mesh("strict")) as running:
        callee = running.sidecar("service1", apps["callee"])
        caller = running.sidecar(
            "service2",
            apps["caller-app"],
            {"service1": {"v1": [("127.0.0.1", callee.ports.inbound)]}},
        )
        reply = request(caller.ports.outbound, "/hello", host="service1")
        assert (reply.status, reply.body) == (200, "callee")
        (_, path, headers), *_ = apps["callee"].requests
        assert path == "/hello"
        assert headers["x-forwarded-client-cert"].endswith(f";URI={running.identity('service2')}")


def test_outbound_sends_nothing_to_a_server_with_another_identity() -> None:
    with (
        backends("impostor", "caller-app") as apps,
        sidecars(mesh("strict", accessLog=True)) as running,
    ):
        # A mesh workload (service3's certificate, from the mesh CA) where service1 should be:
        # the handshake fails on its name, so the request never reaches it.
        impostor = running.sidecar("service3", apps["impostor"])
        caller = running.sidecar(
            "service2",
            apps["caller-app"],
            {"service1": {"v1": [("127.0.0.1", impostor.ports.inbound)]}},
        )
        reply = request(caller.ports.outbound, "/to-impostor", host="service1")
        assert (reply.status, reply.body) == (503, NO_UPSTREAM_BODY)
        assert apps["impostor"].requests == []
        # A failed connection, as Envoy flags a handshake its SAN check failed. The right
        # server passes the same check: test_sidecar_to_sidecar_is_mtls_and_the_app_learns_...
        (line,) = access_lines(caller.directory, 1)
        assert (line["path"], line["response_code"], line["response_flags"]) == (
            "/to-impostor",
            503,
            "UF",
        )


def test_the_certificates_name_their_identity_as_the_dns_name_sidecars_check() -> None:
    spec = mesh("strict")
    config = compile_sidecar(
        spec,
        "service2",
        "v1",
        endpoints=StaticEndpoints({"service1": {"v1": [("127.0.0.1", 1)]}}),
    )
    # The gateway's server lines to the sidecars check the same name.
    gateway = compile_gateway(
        spec, endpoints=StaticEndpoints({"service1": {"v1": [("127.0.0.1", 1)]}})
    )
    name = "service1.sec.sa.cluster.local"
    for text in (config.haproxy_cfg, gateway.haproxy_cfg):
        servers = [line for line in text.splitlines() if " 127.0.0.1:1 " in line]
        assert servers and all(line.endswith(f" verifyhost {name}") for line in servers)
    certificate, _ = issue(new_authority(), service_identity(spec, "service1"))
    sans = x509.load_pem_x509_certificate(certificate).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == [name]
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/sec/sa/service1"
    ]


def test_disable_is_plaintext_and_needs_no_certificate() -> None:
    config = compile_sidecar(
        mesh("disable"),
        "service2",
        "v1",
        endpoints=StaticEndpoints({"service1": {"v1": [("127.0.0.1", 1)]}}),
    )
    assert " ssl " not in config.haproxy_cfg
    assert "-certs/" not in config.haproxy_cfg


def _served_serial(port: int, context: ssl.SSLContext) -> int:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(ssl.DER_cert_to_PEM_cert(der).encode())


def test_a_renewed_certificate_is_served_without_failing_a_request(tmp_path: Path) -> None:
    """The image's entrypoint, run for real on a strict sidecar: the certificate is renewed
    (as cert-manager rewrites the mounted Secret) while four clients keep calling over mTLS."""
    spec = mesh("strict")
    authority = new_authority()
    root = Path(tempfile.mkdtemp(prefix="sp-"))
    config_dir, runtime_dir = root / "config", root / "run"
    certs = Path(cert_dir_of(str(config_dir)))
    ports = loopback_ports()
    client_certs = write_identity(root / "client", authority, service_identity(spec, "service2"))
    context = client_context(client_certs, client_certs / "ca.crt")
    outcomes: Counter[str] = Counter()
    stop = threading.Event()
    with backends("app") as apps:
        config = compile_sidecar(
            spec,
            "service1",
            "v1",
            endpoints=StaticEndpoints({}),
            ports=ports,
            app_port=apps["app"].port,
            config_dir=str(config_dir),
            runtime_dir=str(runtime_dir),
        )
        write_config(config_dir, config)
        write_identity(certs, authority, service_identity(spec, "service1"))
        first = serial_of((certs / "tls.crt").read_bytes())

        def client() -> None:
            while not stop.is_set():
                try:
                    reply = tls_request(ports.inbound, context)
                    outcomes["ok" if reply.status == 200 else f"status {reply.status}"] += 1
                except (OSError, ssl.SSLError) as error:
                    outcomes[f"error {error}"] += 1

        workers = [threading.Thread(target=client) for _ in range(4)]
        try:
            with running_entrypoint("proxy", config_dir, runtime_dir, root / "entrypoint.log"):
                try:
                    wait_for_port(ports.inbound)
                    assert _served_serial(ports.inbound, context) == first
                    for worker in workers:
                        worker.start()
                    time.sleep(1)
                    write_identity(certs, authority, service_identity(spec, "service1"))
                    renewed = serial_of((certs / "tls.crt").read_bytes())
                    wait_until_served(lambda: _served_serial(ports.inbound, context), renewed)
                    time.sleep(1)
                finally:
                    stop.set()
                    for worker in workers:
                        if worker.is_alive():
                            worker.join(timeout=10)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    assert renewed != first
    assert outcomes["ok"] > 50, outcomes
    assert set(outcomes) == {"ok"}, f"requests failed during the rotation: {outcomes}"


def test_strict_sends_kubelet_probes_through_the_health_port() -> None:
    # iptables would send kubelet's plaintext probe into the TLS-only inbound port.
    with backends("app") as apps, sidecars(mesh("strict")) as running:
        callee = running.sidecar("service1", apps["app"])
        probe = request(callee.ports.health, "/app-health/healthz")
        assert (probe.status, probe.body) == (200, "app")
        assert [path for _, path, _ in apps["app"].requests] == ["/healthz"]
        assert request(callee.ports.health, "/other").status == 404
    data = yaml.safe_load(DEMO_MESH.read_text())
    data["mtls"] = "strict"
    rendered = render_manifests(sailplan.load_mesh_text(yaml.safe_dump(data)), "builtin")
    deployment = next(
        m for m in rendered if m["kind"] == "Deployment" and m["metadata"]["name"] == "service1-v1"
    )
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    assert app["readinessProbe"]["httpGet"] == {"path": "/app-health/healthz", "port": 15021}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "sailplan-certs",
        "secret": {"secretName": "sailplan-cert-service1", "defaultMode": 0o444},
    } in volumes
