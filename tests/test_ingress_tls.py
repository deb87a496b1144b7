"""HTTPS at the ingress (`ingress.tls`): the spec's rules, Istio's Gateway, the cert-manager
Certificate, and the builtin gateway terminating real TLS in a real HAProxy."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import GOLDEN
from golden_support import check_golden
from proxy_support import (
    backends,
    free_port,
    loopback_ports,
    running_entrypoint,
    running_haproxy,
    wait_for_port,
    wait_until_served,
)
from schema_support import validate_manifest

import sailplan
from sailplan.model import SpecError
from sailplan.render.haproxy import StaticEndpoints, compile_gateway
from sailplan.render.haproxy.ingress import ingress_cert_dir
from sailplan.render.manifests import render_manifests
from sailplan.sandbox.certs import new_authority, serial_of, write_identity

HOST = "shop.example.com"


def _spec(tls: dict[str, Any] | None, mtls: str = "permissive", **ingress: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        "name": "shop",
        "mtls": mtls,
        "services": {
            "web": {"port": 8080, "versions": {"v1": {"image": "web:1"}}},
        },
        "ingress": {"port": 443, "hosts": [HOST], "routes": [{"service": "web"}], **ingress},
    }
    if tls is not None:
        spec["ingress"]["tls"] = tls
    return spec


def _mesh(tls: dict[str, Any] | None, mtls: str = "permissive", **ingress: Any) -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump(_spec(tls, mtls, **ingress)))


def _problems(spec: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(spec))
    return [(p.path, p.message) for p in error.value.problems]


# --- the spec ---------------------------------------------------------------------------------


def test_tls_defaults_to_tls_1_2_without_a_redirect() -> None:
    tls = _mesh({"secretName": "shop-tls"}).ingress.tls  # type: ignore[union-attr]
    assert tls is not None
    assert (tls.secret_name, tls.issuer, tls.min_version, tls.https_redirect) == (
        "shop-tls",
        None,
        "TLSv1.2",
        False,
    )


@pytest.mark.parametrize(
    ("tls", "ingress", "expected"),
    [
        (
            {},
            {},
            (
                "ingress.tls",
                "give the certificate as secretName (an existing TLS Secret) or issuer "
                "(cert-manager issues one), exactly one of them",
            ),
        ),
        (
            {"secretName": "a", "issuer": {"name": "b"}},
            {},
            (
                "ingress.tls",
                "give the certificate as secretName (an existing TLS Secret) or issuer "
                "(cert-manager issues one), exactly one of them",
            ),
        ),
        (
            {"secretName": "a", "httpsRedirect": True},
            {"port": 80},
            (
                "ingress",
                "tls.httpsRedirect listens on port 80, which the HTTPS listener already "
                "takes; set port: 443",
            ),
        ),
        (
            {"issuer": {"name": "letsencrypt"}},
            {"hosts": ["*"]},
            (
                "ingress",
                "tls.issuer needs the host names to put in the certificate, and hosts is `*` "
                "(every host); list the hosts, or give tls.secretName",
            ),
        ),
    ],
)
def test_bad_tls_is_refused_with_a_sentence(
    tls: dict[str, Any], ingress: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert _problems(_spec(tls, **ingress)) == [expected]


def test_an_unknown_tls_version_is_refused() -> None:
    [(path, message)] = _problems(_spec({"secretName": "a", "minVersion": "TLSv1.1"}))
    assert path == "ingress.tls.minVersion"
    assert "TLSv1.2" in message and "TLSv1.3" in message


def test_the_gateway_api_plane_refuses_a_minimum_tls_version_only() -> None:
    # Its rendering: tests/test_render_gateway_api.py.
    assert sailplan.load_mesh_text(
        yaml.safe_dump({**_spec({"secretName": "a"}), "dataPlane": "gateway-api"})
    ).ingress
    spec = {**_spec({"secretName": "a", "minVersion": "TLSv1.3"}), "dataPlane": "gateway-api"}
    assert _problems(spec) == [
        (
            "ingress.tls.minVersion",
            "TLSv1.3: the Gateway API's standard channel has no setting for the oldest TLS "
            "version a client may use (a listener's tls.options are each implementation's own, "
            "and TLSv1.2 is the usual default); drop minVersion, or use the istio or builtin "
            "data plane",
        )
    ]


# --- istio ------------------------------------------------------------------------------------


def _find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_istio_serves_https_with_the_secret_and_redirects_plain_http() -> None:
    mesh = _mesh({"secretName": "shop-tls", "minVersion": "TLSv1.3", "httpsRedirect": True})
    objects = render_manifests(mesh, "istio")
    [gateway] = _find(objects, "Gateway")
    assert gateway["spec"]["servers"] == [
        {
            "port": {"number": 443, "name": "https-443", "protocol": "HTTPS"},
            "hosts": [HOST],
            "tls": {
                "mode": "SIMPLE",
                "credentialName": "shop-tls",
                "minProtocolVersion": "TLSV1_3",
            },
        },
        {
            "port": {"number": 80, "name": "http-80", "protocol": "HTTP"},
            "hosts": [HOST],
            "tls": {"httpsRedirect": True},
        },
    ]
    assert _find(objects, "Certificate") == []
    for manifest in objects:
        validate_manifest(manifest)


def test_an_issuer_gets_a_certificate_for_the_hosts_in_the_gateways_namespace() -> None:
    mesh = _mesh({"issuer": {"name": "letsencrypt"}})
    objects = render_manifests(mesh, "istio")
    [certificate] = _find(objects, "Certificate")
    assert certificate["metadata"]["namespace"] == "istio-ingress"
    assert certificate["spec"] == {
        "secretName": "shop-ingress-tls",
        "dnsNames": [HOST],
        "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }
    [gateway] = _find(objects, "Gateway")
    assert gateway["spec"]["servers"][0]["tls"]["credentialName"] == "shop-ingress-tls"
    for manifest in objects:
        validate_manifest(manifest)


@pytest.mark.parametrize("plane", ["istio", "builtin"])
def test_golden(plane: str, update_golden: bool) -> None:
    mesh = _mesh({"issuer": {"name": "shop-ca", "kind": "Issuer"}, "httpsRedirect": True})
    manifests = render_manifests(mesh, plane)  # type: ignore[arg-type]
    for manifest in manifests:
        validate_manifest(manifest)
    check_golden(GOLDEN / plane / "https-ingress.yaml", manifests, update_golden)


# --- builtin: manifests -----------------------------------------------------------------------


def test_the_builtin_gateway_alone_mounts_the_ingress_secret_and_exposes_both_ports() -> None:
    mesh = _mesh({"secretName": "shop-tls", "httpsRedirect": True})
    objects = render_manifests(mesh, "builtin")
    mounting = [
        d["metadata"]["name"]
        for d in _find(objects, "Deployment")
        if any(
            v.get("secret", {}).get("secretName") == "shop-tls"
            for v in d["spec"]["template"]["spec"]["volumes"]
        )
    ]
    assert mounting == ["shop-gateway"]
    [service] = [s for s in _find(objects, "Service") if s["metadata"]["name"] == "shop-gateway"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("https-443", 443, "http"),
        ("http-80", 80, "http-redirect"),
    ]


# --- builtin: real TLS in HAProxy -------------------------------------------------------------


def _context(ca_file: Path, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.set_alpn_protocols(["h2", "http/1.1"])
    if maximum is not None:
        context.maximum_version = maximum
    return context


@pytest.fixture
def gateway(tmp_path: Path) -> Any:
    def start(tls: dict[str, Any]) -> Any:
        # mTLS off: this gateway holds the ingress certificate alone, no mesh identity.
        return _Gateway(tmp_path, _mesh(tls, mtls="disable"))

    return start


class _Gateway:
    def __init__(self, directory: Path, mesh: sailplan.Mesh) -> None:
        self.directory = directory
        self.mesh = mesh
        authority = new_authority("test ingress CA")
        certs = write_identity(Path(ingress_cert_dir(str(directory))), authority, "", [HOST])
        self.ca_file = certs / "ca.crt"
        self.listen, self.plain = free_port(), free_port()

    def run(self, backend_port: int) -> Any:
        ports = loopback_ports()
        config = compile_gateway(
            self.mesh,
            endpoints=StaticEndpoints({"web": {"v1": [("127.0.0.1", backend_port)]}}),
            listen_port=self.listen,
            ports=ports,
            config_dir=str(self.directory),
            runtime_dir=str(self.directory),
            redirect_port=self.plain,
            public_port=self.listen,
        )
        wait = [self.listen] + ([self.plain] if "redirect" in config.files["haproxy.cfg"] else [])
        return running_haproxy(config.files, self.directory, wait)


def _handshake(port: int, context: ssl.SSLContext) -> tuple[str | None, str | None]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        return tls.version(), tls.selected_alpn_protocol()


def _tls_get(port: int, ca_file: Path, path: str) -> str:
    """The whole answer to one HTTP/1.1 request over TLS (the connection closed after it)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    request = (
        f"GET {path} HTTP/1.1\r\nhost: {HOST}\r\nx-forwarded-proto: gopher\r\n"
        "connection: close\r\n\r\n"
    )
    answer = b""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(request.encode())
        while chunk := tls.recv(65536):
            answer += chunk
    return answer.decode()


def test_the_builtin_gateway_terminates_tls_and_offers_h2(gateway: Any) -> None:
    running = gateway({"secretName": "shop-tls"})
    with backends("web") as started, running.run(started["web"].port):
        assert _handshake(running.listen, _context(running.ca_file)) == ("TLSv1.3", "h2")
        # TLS 1.2 is accepted by default, and a client without h2 gets HTTP/1.1.
        old = _context(running.ca_file, maximum=ssl.TLSVersion.TLSv1_2)
        old.set_alpn_protocols(["http/1.1"])
        assert _handshake(running.listen, old) == ("TLSv1.2", "http/1.1")
        answer = _tls_get(running.listen, running.ca_file, "/hello")
        assert answer.startswith("HTTP/1.1 200")
        assert answer.endswith("web")
        _, path, headers = started["web"].requests[-1]
        assert (path, headers.get("x-forwarded-proto")) == ("/hello", "https")


def test_min_version_1_3_refuses_a_tls_1_2_client(gateway: Any) -> None:
    running = gateway({"secretName": "shop-tls", "minVersion": "TLSv1.3"})
    with backends("web") as started, running.run(started["web"].port):
        assert _handshake(running.listen, _context(running.ca_file))[0] == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            _handshake(running.listen, _context(running.ca_file, maximum=ssl.TLSVersion.TLSv1_2))
        assert started["web"].requests == []


def test_plain_http_is_redirected_to_https_with_host_path_and_query(gateway: Any) -> None:
    running = gateway({"secretName": "shop-tls", "httpsRedirect": True})
    with backends("web") as started, running.run(started["web"].port):
        connection = http.client.HTTPConnection("127.0.0.1", running.plain, timeout=10)
        try:
            connection.request("GET", "/a/b?x=1", headers={"host": f"{HOST}:{running.plain}"})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        assert response.status == 301
        assert response.getheader("location") == f"https://{HOST}:{running.listen}/a/b?x=1"
        assert started["web"].requests == []
        # Over TLS the same listener's rules do not redirect.
        assert _tls_get(running.listen, running.ca_file, "/a").startswith("HTTP/1.1 200")


# --- the sandbox ------------------------------------------------------------------------------


@pytest.mark.haproxy
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_sandbox_serves_https_with_a_certificate_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sandbox_support import MESHES, SandboxProcess, alive, runnable_copy

    from sailplan.cli import main

    data = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    data["ingress"].update(port=443, tls={"secretName": "unused-here", "httpsRedirect": True})
    mesh_file = tmp_path / "mesh.yaml"
    mesh_file.write_text(yaml.safe_dump(data))
    sandbox = SandboxProcess(mesh_file)
    try:
        sandbox.wait_for("ready: ")
        url = sandbox.url()
        assert url.startswith("https://127.0.0.1:")
        [note] = [line for line in sandbox.lines if line.startswith("ingress certificate: ")]
        ca = note.split("--cacert ", 1)[1].split(",", 1)[0]
        post = [f"{url}/api/users", "-n", "3", "-X", "POST", "-d", '{"username": "a"}']
        assert main(["traffic", *post, "--cacert", ca, "--expect-status", "201"]) == 0
        assert main(["traffic", *post, "--insecure", "--expect-status", "201"]) == 0
        # Without the run's CA the certificate is not trusted: no request gets an answer.
        capsys.readouterr()
        assert main(["traffic", *post]) == 1
        assert (
            "failed: certificate verify failed: unable to get local issuer certificate"
            in capsys.readouterr().out
        )
        [row] = [line for line in sandbox.lines if "redirect :" in line]
        plain = int(row.split("redirect :", 1)[1].split()[0])
        connection = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
        try:
            connection.request("GET", "/api/users?x=1", headers={"host": f"127.0.0.1:{plain}"})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        assert (response.status, response.getheader("location")) == (
            301,
            f"{url}/api/users?x=1",
        )
    finally:
        sandbox.stop()
        leaked = [pid for pid in sandbox.children if alive(pid)]
        assert not leaked, f"processes left running: {leaked}"


# --- the image's entrypoint -------------------------------------------------------------------


def _served_serial(port: int, ca_file: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(ssl.DER_cert_to_PEM_cert(der).encode())


@pytest.mark.timeout(60)
def test_the_gateway_image_serves_a_renewed_ingress_certificate() -> None:
    """The entrypoint watches the mounted ingress Secret as cert-manager renews it."""
    from sailplan.sandbox.runner import write_config

    root = Path(tempfile.mkdtemp(prefix="sp-"))
    config_dir, runtime_dir = root / "config", root / "run"
    certs = Path(ingress_cert_dir(str(config_dir)))
    authority = new_authority("test ingress CA")
    listen = free_port()
    ports = loopback_ports()
    config = compile_gateway(
        _mesh({"secretName": "shop-tls"}, mtls="disable"),
        endpoints=StaticEndpoints({"web": {"v1": [("127.0.0.1", free_port())]}}),
        listen_port=listen,
        ports=ports,
        config_dir=str(config_dir),
        runtime_dir=str(runtime_dir),
    )
    write_config(config_dir, config)
    write_identity(certs, authority, "", [HOST])
    first = serial_of((certs / "tls.crt").read_bytes())
    try:
        with running_entrypoint("gateway", config_dir, runtime_dir, root / "entrypoint.log"):
            wait_for_port(listen)
            assert _served_serial(listen, certs / "ca.crt") == first
            write_identity(certs, authority, "", [HOST])
            renewed = serial_of((certs / "tls.crt").read_bytes())
            wait_until_served(lambda: _served_serial(listen, certs / "ca.crt"), renewed)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert renewed != first
