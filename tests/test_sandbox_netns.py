"""`sailplan sandbox --isolation netns`, for real: namespaces, a bridge, init-iptables.sh and hosts
files, a Node.js app that ignores HTTP_PROXY calling through the mesh, and nothing left behind,
not even by a sandbox killed outright."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from sandbox_support import SandboxProcess, alive

import sailplan
from sailplan.render.haproxy import ProxyPorts
from sailplan.sandbox import netns
from sailplan.sandbox.plan import compile_configs, make_plan

pytestmark = [pytest.mark.haproxy, pytest.mark.slow, pytest.mark.timeout(180)]

NODE_MESH = REPO / "examples" / "apps" / "node-client" / "mesh.yaml"


@pytest.fixture(scope="module")
def namespaces_possible() -> None:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces cannot be created here: {reason}")


needs_netns = pytest.mark.usefixtures("namespaces_possible")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def test_a_transparent_plan_uses_the_clusters_ports_and_pod_addresses(tmp_path: Path) -> None:
    """Pure: each replica, alone in its namespace, has the service's port and Istio's sidecar
    ports; endpoints are pod addresses; unknown destinations pass through to where they were
    dialled (iptables), not to the Host header (explicit proxy)."""
    mesh = sailplan.load_mesh(NODE_MESH)
    plan = make_plan(mesh, itertools.count(20000).__next__, ingress_port=8080, transparent=True)
    assert [(i.name, i.app_port, i.sidecar) for i in plan.instances] == [
        ("client-v1-0", 8090, ProxyPorts(15001, 15006, 15020, 15021, "0.0.0.0")),
        ("service1-v1-0", 8088, ProxyPorts(15001, 15006, 15020, 15021, "0.0.0.0")),
        ("service1-v2-0", 8088, ProxyPorts(15001, 15006, 15020, 15021, "0.0.0.0")),
    ]
    pods = {"client-v1-0": "10.1.0.2", "service1-v1-0": "10.1.0.3", "service1-v2-0": "10.1.0.4"}
    assert plan.endpoints(pods).addresses["service1"] == {
        "v1": [("10.1.0.3", 8088)],
        "v2": [("10.1.0.4", 8088)],
    }
    # With mTLS (the mesh's permissive default) sidecars dial each other's mTLS port.
    assert plan.endpoints(pods, mtls=True).mtls == {
        "client": {"v1": [("10.1.0.2", 15007)]},
        "service1": {"v1": [("10.1.0.3", 15007)], "v2": [("10.1.0.4", 15007)]},
    }
    sidecar = next(compile_configs(mesh, plan, tmp_path, pods)).config.haproxy_cfg
    assert "server original-destination 0.0.0.0:0" in sidecar
    assert "server v2-0 10.1.0.4:15007 " in sidecar
    explicit = make_plan(mesh, itertools.count(20000).__next__, ingress_port=8080)
    sidecar = next(compile_configs(mesh, explicit, tmp_path)).config.haproxy_cfg
    assert "server host-header 0.0.0.0:0" in sidecar


def _namespaces() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def _links() -> set[str]:
    done = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10)
    return {line.split(": ", 2)[1].split("@")[0] for line in done.stdout.splitlines()}


def _tags(names: set[str]) -> set[str]:
    return {m.group(1) for name in names if (m := netns.NAMESPACE.fullmatch(name))}


def _left(tag: str) -> list[str]:
    """Everything named after `tag` that still exists."""
    return sorted(
        [n for n in _namespaces() if n.startswith(f"sailplan-{tag}-")]
        + [link for link in _links() if tag in link and link.startswith("sp")]
        + [str(p) for p in netns.NETNS_ETC.glob(f"sailplan-{tag}-*")]
        + [str(p) for p in netns.LOCK_DIR.glob(f"{tag}.lock")]
        + [rule for rule in _forward() if f"sailplan-{tag}" in rule]
    )


def _forward() -> list[str]:
    done = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True)
    return done.stdout.splitlines()


def _get(url: str, headers: dict[str, str] | None = None) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers or {})
    with opener.open(request, timeout=10) as response:
        return str(response.read().decode())


_V2_HEALTHY = '{"status": "ok", "version": "v2"}'
_FETCH = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(sys.argv[1], timeout=10).read().decode(), end="")
"""


@pytest.fixture
def running(namespaces_possible: None) -> Iterator[tuple[SandboxProcess, str]]:
    """The Node client's mesh in namespaces, and its tag."""
    before = _namespaces()
    sandbox = SandboxProcess(NODE_MESH, "--isolation", "netns")
    try:
        sandbox.wait_for("ready: ")
        tags = _tags(_namespaces() - before)
        assert len(tags) == 1, tags
        yield sandbox, tags.pop()
    finally:
        sandbox.stop()


@needs_netns
def test_network_has_a_namespace_per_pod_and_names_resolve_to_service_addresses() -> None:
    network = netns.Network()
    try:
        network.create(["a-v1-0", "b-v1-0"], {"a": ["a", "a.x"], "b": ["b"]})
        a, b = network.pods["a-v1-0"], network.pods["b-v1-0"]
        prefix = network.bridge_address.rsplit(".", 1)[0]
        assert network.bridge_address == f"{prefix}.1"
        assert (a.address, b.address) == (f"{prefix}.2", f"{prefix}.3")
        assert network.services == {"a": f"{prefix}.253", "b": f"{prefix}.252"}
        hosts = subprocess.run(
            ["ip", "netns", "exec", a.namespace, "cat", "/etc/hosts"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        assert hosts.splitlines()[2:] == [f"{prefix}.253 a a.x", f"{prefix}.252 b"]
        rules = subprocess.run(
            ["ip", "netns", "exec", b.namespace, "iptables-save", "-t", "nat"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        assert "-A SAILPLAN_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
        assert {a.namespace, b.namespace} <= _namespaces()
        assert {network.bridge, a.host_link, b.host_link} <= _links()
    finally:
        network.remove()
    assert _left(network.tag) == []


_ACCEPT_ONE = """
import socket
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 15006)); server.listen(); server.settimeout(10)
print("ready", flush=True)
conn, peer = server.accept(); conn.sendall(peer[0].encode()); conn.close()
"""

_CONNECT = """
import encodings.idna, os, socket, sys  # imported as root: the interpreter may be private to it
# As the proxy's uid: the init rules leave its connections uncaptured.
os.setgid(1337); os.setuid(1337)
with socket.create_connection((sys.argv[1], 15006), timeout=5) as conn:
    print(conn.recv(64).decode())
"""


@needs_netns
@pytest.mark.skipif(
    not netns._bridges_filtered(), reason="bridged packets do not meet iptables on this host"
)
def test_pods_talk_through_a_host_firewall_that_drops_bridged_traffic() -> None:
    """Docker sets the host's FORWARD policy to DROP, and br_netfilter hands bridged packets to
    it. The same drop, limited to this sandbox's bridge so the host stays as it was, comes after
    the sandbox's own rule: pod to pod still works, and the rule goes with the sandbox."""
    network = netns.Network()
    drop = ["FORWARD", "-i", network.bridge, "-o", network.bridge, "-j", "DROP"]
    listener: subprocess.Popen[str] | None = None
    try:
        network.create(["a-v1-0", "b-v1-0"], {"a": ["a"]})
        assert subprocess.run(["iptables", "-w", "-A", *drop], timeout=10).returncode == 0
        a, b = network.pods["a-v1-0"], network.pods["b-v1-0"]
        listener = subprocess.Popen(
            ["ip", "netns", "exec", b.namespace, "python3", "-c", _ACCEPT_ONE],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
        done = subprocess.run(
            ["ip", "netns", "exec", a.namespace, "python3", "-c", _CONNECT, b.address],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert (done.stdout, done.stderr) == (f"{a.address}\n", "")
        assert [rule for rule in _forward() if f"sailplan-{network.tag}" in rule] == [
            f"-A FORWARD -i {network.bridge} -o {network.bridge} "
            f"-m comment --comment sailplan-{network.tag} -j ACCEPT"
        ]
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=5)
        subprocess.run(["iptables", "-w", "-D", *drop], capture_output=True, timeout=10)
        network.remove()
    assert _left(network.tag) == []


@needs_netns
@needs_node
def test_a_node_app_that_ignores_http_proxy_calls_service1_through_the_mesh(
    running: tuple[SandboxProcess, str],
) -> None:
    sandbox, tag = running
    # The route sends every call to v2: v1 never answers, so the sidecar routed each one.
    answers = {_get(f"{sandbox.url()}/api/users") for _ in range(10)}
    assert all(answer.startswith("service1 200 users/v2 ") for answer in answers), answers
    assert _get(f"{sandbox.url()}/api/users/7").startswith("service1 404 users/v2 ")
    # Inside the client's pod: every name form of the cluster, and a call to its own service,
    # which its sidecar sends to its own pod address and iptables back in through its inbound.
    (client,) = [n for n in _namespaces() if n.startswith(f"sailplan-{tag}-0")]
    for url, expected in (
        ("http://service1.node-client.svc.cluster.local:8088/healthz", _V2_HEALTHY),
        ("http://client:8090/healthz", "ok"),
    ):
        done = subprocess.run(
            ["ip", "netns", "exec", client, sys.executable, "-c", _FETCH, url],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert done.stdout == expected, (url, done.stderr)
    assert sandbox.stop() == 0
    assert _left(tag) == []


@needs_node
def test_without_namespaces_the_same_node_app_cannot_resolve_service1() -> None:
    """The contrast that makes the test above mean something: the Node app ignores HTTP_PROXY."""
    sandbox = SandboxProcess(NODE_MESH, "--isolation", "explicit-proxy")
    try:
        sandbox.wait_for("ready: ")
        request = urllib.request.Request(f"{sandbox.url()}/api/users")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as failed:
            opener.open(request, timeout=10)
        assert failed.value.code == 502
        assert failed.value.read().decode() == "service1 unreachable: ENOTFOUND\n"
    finally:
        assert sandbox.stop() == 0


@needs_netns
@needs_node
def test_a_killed_sandbox_network_is_removed_by_its_watchdog() -> None:
    before = _namespaces()
    crashed = SandboxProcess(NODE_MESH, "--isolation", "netns")
    try:
        crashed.wait_for("ready: ")
        (tag,) = _tags(_namespaces() - before)
        (watchdog,) = _watchdogs(crashed.children)
        os.kill(crashed.process.pid, signal.SIGKILL)
        crashed.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while (_left(tag) or alive(watchdog)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _left(tag) == []
        assert [pid for pid in crashed.children if alive(pid)] == []
        assert any(
            line.startswith("sailplan sandbox died; removed what it left: ")
            and f"sailplan-{tag}-0" in line
            for line in crashed.lines
        ), crashed.lines
    finally:
        crashed.stop(signal.SIGKILL)
        netns.clean_stale()


def _watchdogs(pids: set[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sailplan.sandbox.netns" in command:
            found.append(pid)
    return found


@needs_netns
@needs_node
def test_what_a_killed_sandbox_left_is_removed_at_the_next_start() -> None:
    """Its watchdog killed too (kill -9 of everything): the next start cleans up."""
    before = _namespaces()
    crashed = SandboxProcess(NODE_MESH, "--isolation", "netns")
    second: SandboxProcess | None = None
    lingering: subprocess.Popen[bytes] | None = None
    try:
        crashed.wait_for("ready: ")
        (tag,) = _tags(_namespaces() - before)
        # The runner dies without its clean-up. Its processes may end (setpriv --pdeathsig), but
        # the network stays; a process in a namespace stays too (one that ignores SIGTERM would).
        for watchdog in _watchdogs(crashed.children):
            os.kill(watchdog, signal.SIGKILL)
        os.kill(crashed.process.pid, signal.SIGKILL)
        crashed.process.wait(timeout=10)
        lingering = subprocess.Popen(
            ["ip", "netns", "exec", f"sailplan-{tag}-1", "sleep", "60"], start_new_session=True
        )
        assert len([n for n in _left(tag) if n.startswith("sailplan-")]) == 3

        second = SandboxProcess(NODE_MESH, "--isolation", "netns")
        line = second.wait_for("netns: ")
        assert line.startswith("netns: removed what a sandbox that did not stop left: ")
        assert f"sailplan-{tag}-0" in line and f"spb{tag}" in line
        # The runtime directory, which the crash left, went too.
        runtime = next(word for word in line.split() if "/sailplan-" in word).rstrip(",")
        assert not Path(runtime).exists()
        second.wait_for("ready: ")
        assert _left(tag) == []
        assert lingering.wait(timeout=5) == -signal.SIGKILL
        assert [pid for pid in crashed.children if alive(pid)] == []
        assert _get(f"{second.url()}/api/users").startswith("service1 200 users/v2 ")
        (second_tag,) = _tags(_namespaces() - before)
        assert second.stop() == 0
        assert _left(second_tag) == []
    finally:
        crashed.stop(signal.SIGKILL)
        if lingering is not None and lingering.poll() is None:
            lingering.kill()
            lingering.wait(timeout=5)
        if second is not None:
            second.stop()
        # Bounded even if the assertions above failed: nothing of this test outlives it.
        netns.clean_stale()


@needs_netns
def test_netns_refused_in_one_sentence_where_namespaces_cannot_be_made(tmp_path: Path) -> None:
    # As an unprivileged user (nobody, uid 65534), who may not create network namespaces. Where
    # nobody cannot reach the interpreter or the checkout (a venv's python links into /root, a
    # clone under `mktemp -d` is private to root), the same uid inside a user namespace of its
    # own: the process sees euid 65534 while the files stay those of the root who owns them.
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for needed in (sys.executable, str(REPO / "sailplan" / "__init__.py")):
        if subprocess.run([*as_nobody, "test", "-r", needed], timeout=10).returncode != 0:
            as_nobody = ["unshare", "--user", "--map-user=65534", "--map-group=65534"]
            break
    sandbox = ["sandbox", str(NODE_MESH), "--isolation", "netns"]
    done = subprocess.run(
        [*as_nobody, sys.executable, "-m", "sailplan", *sandbox],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: --isolation netns is not possible here: creating network namespaces needs root\n"
    )
