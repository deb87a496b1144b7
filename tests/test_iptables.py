"""The init container's iptables rules, applied for real in a network namespace this test creates."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import REPO

import sailplan

SCRIPT = REPO / "sailplan" / "proxy_image" / "init-iptables.sh"
pytestmark = pytest.mark.timeout(60)


def _run(*command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=20, check=False, **kwargs
    )  # type: ignore[call-overload, no-any-return]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    if not shutil.which("ip") or not shutil.which("iptables"):
        pytest.skip("iproute2 and iptables are needed (make os-deps installs them)")
    name = f"sailplan-test-{uuid.uuid4().hex[:8]}"
    created = _run("ip", "netns", "add", name)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {created.stderr.strip()}")
    try:
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        _run("ip", "netns", "delete", name)


def _apply(netns: str) -> subprocess.CompletedProcess[str]:
    return _run("ip", "netns", "exec", netns, "sh", str(SCRIPT))


def _nat(netns: str) -> list[str]:
    return _run("ip", "netns", "exec", netns, "iptables-save", "-t", "nat").stdout.splitlines()


def test_rules_redirect_outbound_and_inbound_and_spare_the_proxy(netns: str) -> None:
    applied = _apply(netns)
    assert applied.returncode == 0, applied.stderr
    rules = [line for line in _nat(netns) if line.startswith("-A")]
    assert "-A PREROUTING -p tcp -j SAILPLAN_INBOUND" in rules
    assert "-A OUTPUT -p tcp -j SAILPLAN_OUTPUT" in rules
    assert "-A SAILPLAN_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert "-A SAILPLAN_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in rules
    # The admin, health and mTLS ports are reached as they are (other sidecars dial 15007).
    for port in ("15020", "15021", "15007"):
        assert f"-A SAILPLAN_INBOUND -p tcp -m tcp --dport {port} -j RETURN" in rules
    assert "-A SAILPLAN_OUTPUT -m owner --uid-owner 1337 -j RETURN" in rules
    assert "-A SAILPLAN_OUTPUT -m owner --gid-owner 1337 -j RETURN" in rules
    assert rules[-1] == "-A SAILPLAN_REDIRECT -p tcp -j REDIRECT --to-ports 15001"


def test_running_twice_changes_nothing(netns: str) -> None:
    assert _apply(netns).returncode == 0
    first = [line for line in _nat(netns) if line.startswith("-A")]
    assert _apply(netns).returncode == 0
    assert [line for line in _nat(netns) if line.startswith("-A")] == first


_PROBE = """
import encodings.idna, os, socket, sys  # imported before dropping root: the stdlib may be unreadable after
address, port, uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.setgid(uid); os.setuid(uid)
with socket.create_connection((address, port), timeout=3) as conn:
    print(conn.recv(64).decode())
"""

_LISTENER = """
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", port)); server.listen()
print("ready", flush=True)
while True:
    conn, _ = server.accept(); conn.sendall(name.encode()); conn.close()
"""


def test_outbound_connections_reach_the_proxy_except_the_proxys_own(netns: str) -> None:
    # A second namespace, joined by a veth pair, is the remote service at 10.255.0.2:8080;
    # the pod's namespace listens on 15001 as its proxy would.
    remote = f"{netns}-remote"
    assert _run("ip", "netns", "add", remote).returncode == 0
    listeners: list[subprocess.Popen[str]] = []
    try:
        _veth(netns, remote)
        assert _apply(netns).returncode == 0
        for namespace, name, port in ((netns, "proxy", 15001), (remote, "original", 8080)):
            listener = subprocess.Popen(
                ["ip", "netns", "exec", namespace, "python3", "-c", _LISTENER, name, str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            listeners.append(listener)
            assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        app = _run(
            "ip", "netns", "exec", netns, "python3", "-c", _PROBE, "10.255.0.2", "8080", "1000"
        )
        proxy = _run(
            "ip", "netns", "exec", netns, "python3", "-c", _PROBE, "10.255.0.2", "8080", "1337"
        )
        local = _run(
            "ip", "netns", "exec", netns, "python3", "-c", _PROBE, "127.0.0.1", "15001", "1000"
        )
        assert app.stdout.strip() == "proxy", app.stderr
        assert proxy.stdout.strip() == "original", proxy.stderr
        assert local.stdout.strip() == "proxy", local.stderr
    finally:
        for listener in listeners:
            listener.kill()
            listener.wait(timeout=5)
        _run("ip", "netns", "delete", remote)


def test_the_script_is_valid_posix_sh() -> None:
    assert _run("sh", "-n", str(SCRIPT)).returncode == 0


_HTTP_PROBE = """
import encodings.idna, os, socket, sys  # imported before dropping root: the stdlib may be unreadable after
address, port, uid, host, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if uid:
    os.setgid(uid); os.setuid(uid)
try:
    conn = socket.create_connection((address, port), timeout=3)
except ConnectionRefusedError:
    print("refused"); sys.exit(0)
with conn:
    conn.sendall(f"GET / HTTP/1.1\\r\\nhost: {host}\\r\\n{extra}connection: close\\r\\n\\r\\n".encode())
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
head, _, body = data.partition(b"\\r\\n\\r\\n")
print(head.split(b" ")[1].decode(), body.decode())
"""

_HTTP_SERVER = """
import http.server, sys
name, port = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = f"{name} from {self.client_address[0]}".encode()
        self.send_response(200); self.send_header("content-length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def _as_proxy(netns: str) -> list[str]:
    return [
        "ip",
        "netns",
        "exec",
        netns,
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
    ]


def _veth(netns: str, remote: str) -> None:
    """The pod at 10.255.0.1, a peer at 10.255.0.2, joined by a veth pair."""
    pod_if, remote_if = f"p{netns[-8:]}", f"r{netns[-8:]}"
    steps = [
        (
            "ip",
            "link",
            "add",
            pod_if,
            "netns",
            netns,
            "type",
            "veth",
            "peer",
            "name",
            remote_if,
            "netns",
            remote,
        ),
        ("ip", "netns", "exec", netns, "ip", "addr", "add", "10.255.0.1/24", "dev", pod_if),
        ("ip", "netns", "exec", remote, "ip", "addr", "add", "10.255.0.2/24", "dev", remote_if),
        ("ip", "netns", "exec", netns, "ip", "link", "set", pod_if, "up"),
        ("ip", "netns", "exec", remote, "ip", "link", "set", remote_if, "up"),
        ("ip", "netns", "exec", remote, "ip", "link", "set", "lo", "up"),
    ]
    for step in steps:
        done = _run(*step)
        if done.returncode != 0:
            pytest.skip(f"cannot build the test network: {' '.join(step)}: {done.stderr.strip()}")


@pytest.mark.haproxy
def test_the_sidecar_is_no_open_relay(netns: str) -> None:
    """The compiled sidecar on real HAProxy (uid 1337) behind the init rules: the app's outbound
    goes through the proxy, inbound reaches the app through it, and a peer dialling the pod's
    15001 is refused (it was a relay with the peer's traffic leaving as the pod)."""
    from proxy_support import HAPROXY

    from sailplan.render.haproxy import StaticEndpoints, compile_sidecar

    remote = f"{netns}-remote"
    assert _run("ip", "netns", "add", remote).returncode == 0
    started: list[subprocess.Popen[str]] = []
    # Not pytest's config_dir: its parents are private to root, and the proxy runs as uid 1337.
    config_dir = Path(tempfile.mkdtemp(prefix="sp-relay-"))
    config_dir.chmod(0o755)
    try:
        _veth(netns, remote)
        assert _apply(netns).returncode == 0
        mesh = sailplan.load_mesh_text(
            yaml.safe_dump(
                {
                    "apiVersion": "sailplan/v1",
                    "kind": "Mesh",
                    # The endpoints here are the apps themselves, not sidecars: plaintext.
                    "mtls": "disable",
                    "name": "relay",
                    "services": {
                        "service1": {
                            "port": 8080,
                            "versions": {"v1": {"image": "a"}},
                            "routes": [
                                {
                                    "match": {"headers": {"x-via-mesh": "yes"}},
                                    "to": "v1",
                                    "fault": {"abort": {"status": 418}},
                                },
                                {"to": "v1"},
                            ],
                        },
                        "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
                    },
                }
            )
        )
        config = compile_sidecar(
            mesh,
            "caller",
            "v1",
            endpoints=StaticEndpoints({"service1": {"v1": [("10.255.0.2", 8080)]}}),
            config_dir=str(config_dir),
            runtime_dir=str(config_dir),
        )
        for name, text in config.files.items():
            (config_dir / name).write_text(text)
        os.chown(config_dir, 1337, 1337)  # the proxy writes its admin socket here
        for namespace, name, port in ((remote, "service1", 8080), (netns, "app", 9000)):
            server = subprocess.Popen(
                ["ip", "netns", "exec", namespace, "python3", "-c", _HTTP_SERVER, name, str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            started.append(server)
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        proxy = subprocess.Popen(
            [*_as_proxy(netns), HAPROXY, "-db", "-f", str(config_dir / "haproxy.cfg")],
            # HAProxy returns to its working directory after reading the config: uid 1337 must
            # be able to enter it, and a checkout may be private to root.
            cwd=config_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proxy)

        def probe(namespace: str, address: str, port: int, uid: int, extra: str = "") -> str:
            args = [address, str(port), str(uid), "service1", extra]
            done = _run("ip", "netns", "exec", namespace, "python3", "-c", _HTTP_PROBE, *args)
            return done.stdout.strip() or done.stderr.strip()

        deadline = time.monotonic() + 10
        while probe(netns, "127.0.0.1", 15001, 0) == "refused" and time.monotonic() < deadline:
            time.sleep(0.1)
        # The app's outbound is captured and routed: the mesh's header rule answers 418.
        assert (
            probe(netns, "10.255.0.2", 8080, 1000, "x-via-mesh: yes\r\n")
            == "418 fault filter abort"
        )
        assert probe(netns, "10.255.0.2", 8080, 1000) == "200 service1 from 10.255.0.1"
        # Inbound: the peer's call to the app is redirected to 15006 and forwarded over lo.
        assert probe(remote, "10.255.0.1", 9000, 0) == "200 app from 127.0.0.1"
        # No relay: nothing answers on the pod's address at 15001.
        assert probe(remote, "10.255.0.1", 15001, 0) == "refused"
    finally:
        for process in reversed(started):
            process.kill()
            process.wait(timeout=5)
        _run("ip", "netns", "delete", remote)
        shutil.rmtree(config_dir, ignore_errors=True)
