"""Outlier detection on the builtin plane, proven on Debian's real HAProxy: passive as Envoy's
(only answers count, never a probe), ejection time base x ejections, maxEjectionPercent and the
sweep interval."""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from dns_support import Dns
from proxy_support import (
    Backend,
    Reply,
    check_config,
    free_port,
    loopback_ports,
    request,
    running_haproxy,
    wait_for_port,
)
from sandbox_support import MESHES, SandboxProcess, runnable_copy

import sailplan
from sailplan.render.haproxy import (
    DnsEndpoints,
    StaticEndpoints,
    compile_gateway,
    compile_sidecar,
)
from sailplan.render.haproxy.globals import NO_UPSTREAM_BODY
from sailplan.traffic import parse_target, send_all

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]

_MAINTENANCE = re.compile(r"Server (\S+) is going DOWN for maintenance")


def _mesh(
    outlier: dict[str, Any],
    routes: list[dict[str, Any]] | None = None,
    ingress: dict[str, Any] | None = None,
    versions: tuple[str, ...] = ("v1",),
) -> sailplan.Mesh:
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        # Plaintext: the pods here are bare HTTP servers, not sidecars holding mesh certificates.
        "mtls": "disable",
        "kind": "Mesh",
        "name": "test",
        "services": {
            "service1": {
                "port": 8088,
                "versions": {version: {"image": "a"} for version in versions},
                "routes": routes or [{"to": "v1"}],
                "policy": {"outlierDetection": outlier},
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }
    if ingress is not None:
        spec["ingress"] = ingress
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


@dataclass
class Proxy:
    port: int
    log: Path

    def get(self, path: str = "/") -> Reply:
        return request(self.port, path)

    def ejected_servers(self) -> set[str]:
        """The servers the Lua has put in maintenance at least once, from HAProxy's notices."""
        return set(_MAINTENANCE.findall(self.log.read_text()))


@pytest.fixture
def proxy_for(tmp_path: Path) -> Iterator[Any]:
    """The caller's sidecar for a mesh, with service1's v1 at the given ports."""
    stack: list[Any] = []

    def start(
        mesh: sailplan.Mesh, ports: list[int], *, gateway: bool = False, v2: tuple[int, ...] = ()
    ) -> Proxy:
        proxy_ports = loopback_ports()
        addresses = {"v1": [("127.0.0.1", p) for p in ports], "v2": [("127.0.0.1", p) for p in v2]}
        endpoints = StaticEndpoints({"service1": addresses})
        if gateway:
            port = free_port()
            config = compile_gateway(
                mesh,
                endpoints=endpoints,
                listen_port=port,
                ports=proxy_ports,
                config_dir=str(tmp_path),
                runtime_dir=str(tmp_path),
            )
        else:
            port = proxy_ports.outbound
            config = compile_sidecar(
                mesh,
                "caller",
                "v1",
                endpoints=endpoints,
                ports=proxy_ports,
                app_port=free_port(),
                config_dir=str(tmp_path),
                runtime_dir=str(tmp_path),
                passthrough="host-header",
            )
        running = running_haproxy(config.files, tmp_path, [port])
        running.__enter__()
        stack.append(running)
        return Proxy(port, tmp_path / "haproxy.log")

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def started() -> Iterator[Any]:
    """Backends started by the test, each stopped at the end."""
    running: list[Backend] = []

    def start(name: str, port: int = 0) -> Backend:
        backend = Backend(name, port=port).start()
        running.append(backend)
        return backend

    yield start
    for backend in running:
        backend.stop()


def _ejected(reply: Reply) -> bool:
    return (reply.status, reply.body) == (503, NO_UPSTREAM_BODY)


def _until(predicate: Any, send: Any, timeout: float = 10.0) -> float:
    """Send until a reply matches; the monotonic time of that reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = send()
        if predicate(reply):
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"no matching reply within {timeout}s")


def test_an_app_that_starts_after_the_sidecar_is_never_ejected(
    proxy_for: Any, started: Any
) -> None:
    # The old active check marked the endpoint down before the app listened and kept it out
    # for the whole base ejection time: here every request after start-up must pass.
    port = free_port()
    proxy = proxy_for(_mesh({"consecutive5xxErrors": 1, "baseEjectionTime": "30s"}), [port])
    time.sleep(1)
    started("v1", port)
    wait_for_port(port)
    replies = [proxy.get("/") for _ in range(30)]
    assert [(r.status, r.body) for r in replies] == [(200, "v1")] * 30
    assert proxy.ejected_servers() == set()


def test_ejects_after_exactly_n_consecutive_5xx_and_a_success_resets_the_count(
    proxy_for: Any, started: Any
) -> None:
    backend = started("v1")
    proxy = proxy_for(
        _mesh({"consecutive5xxErrors": 3, "maxEjectionPercent": 100, "baseEjectionTime": "30s"}),
        [backend.port],
    )
    statuses = [proxy.get(path).status for path in ("/status/500", "/status/502", "/", "/")]
    # Two errors, then a 200: the count starts again.
    statuses += [proxy.get("/status/503").status for _ in range(2)]
    assert statuses == [500, 502, 200, 200, 503, 503]
    assert proxy.ejected_servers() == set()
    third = proxy.get("/status/500")
    assert third.status == 500  # the third error in a row is still the app's answer...
    after = proxy.get("/")
    assert _ejected(after)  # ...and ejects it: the next request finds no endpoint
    assert len(backend.requests) == 7
    assert len(proxy.ejected_servers()) == 1


def test_ejection_time_grows_with_each_ejection_and_shrinks_while_healthy(
    proxy_for: Any, started: Any
) -> None:
    backend = started("v1")
    proxy = proxy_for(
        _mesh(
            {
                "consecutive5xxErrors": 2,
                "maxEjectionPercent": 100,
                "baseEjectionTime": "1s",
                "interval": "100ms",
            }
        ),
        [backend.port],
    )

    def time_out() -> float:
        proxy.get("/status/500")
        proxy.get("/status/500")
        ejected_at = time.monotonic()
        assert _ejected(proxy.get("/"))
        return _until(lambda r: r.status == 200, proxy.get) - ejected_at

    first = time_out()
    second = time_out()  # ejected again at once: twice the base time
    time.sleep(0.5)  # five sweeps in: the multiplier goes back down to 0
    third = time_out()
    # Out until the first sweep (every 100ms) past base x ejections; loose for a loaded machine.
    times = (first, second, third)
    assert 0.9 <= first <= 1.8 and 1.9 <= second <= 3.0 and 0.9 <= third <= 1.8, times


@pytest.mark.parametrize(
    ("percent", "ejections"),
    [(50, 1), (100, 2)],
)
def test_max_ejection_percent_caps_the_hosts_out(
    proxy_for: Any, started: Any, percent: int, ejections: int
) -> None:
    bad = [started("bad-a"), started("bad-b")]
    for backend in bad:
        backend.status_override = 500
    proxy = proxy_for(
        _mesh(
            {"consecutive5xxErrors": 2, "maxEjectionPercent": percent, "baseEjectionTime": "30s"}
        ),
        [b.port for b in bad],
    )
    replies = [proxy.get("/") for _ in range(12)]
    tail = replies[6:]
    if ejections == 1:
        # One of two is 50%: the second failing host stays in and keeps answering.
        assert len({r.body for r in tail}) == 1
        assert all(r.status == 500 for r in tail)
    else:
        assert all(_ejected(r) for r in tail)
    assert len(proxy.ejected_servers()) == ejections


@pytest.mark.parametrize(("interval", "low", "high"), [("1s", 0.8, 1.8), ("50ms", 0.15, 0.7)])
def test_hosts_come_back_at_the_sweep_interval(
    proxy_for: Any, started: Any, interval: str, low: float, high: float
) -> None:
    backend = started("v1")
    proxy = proxy_for(
        _mesh(
            {
                "consecutive5xxErrors": 1,
                "maxEjectionPercent": 100,
                "baseEjectionTime": "200ms",
                "interval": interval,
            }
        ),
        [backend.port],
    )
    # The first answer starts the sweep; it ejects at once, so the host is back at the first
    # sweep past 200ms: a whole interval later when that is longer.
    proxy.get("/status/500")
    ejected_at = time.monotonic()
    back = _until(lambda r: r.status == 200, proxy.get) - ejected_at
    assert low <= back <= high, back


def test_retried_answers_count(proxy_for: Any, started: Any) -> None:
    # Envoy counts each attempt's answer: the caller sees only successes, yet the endpoint
    # that failed every first attempt is ejected.
    bad, good = started("bad"), started("good")
    bad.status_override = 503
    routes = [{"to": "v1", "retries": {"attempts": 2, "on": ["gateway-error"]}}]
    proxy = proxy_for(
        _mesh(
            {"consecutive5xxErrors": 3, "maxEjectionPercent": 50, "baseEjectionTime": "30s"},
            routes,
        ),
        [bad.port, good.port],
    )
    replies = [proxy.get("/") for _ in range(12)]
    assert [(r.status, r.body) for r in replies] == [(200, "good")] * 12
    assert len(bad.requests) == 3
    assert len(proxy.ejected_servers()) == 1


def test_gateway_errors_eject_before_other_5xx_would(proxy_for: Any, started: Any) -> None:
    backend = started("v1")
    proxy = proxy_for(
        _mesh(
            {
                "consecutive5xxErrors": 5,
                "consecutiveGatewayErrors": 2,
                "maxEjectionPercent": 100,
                "baseEjectionTime": "30s",
            }
        ),
        [backend.port],
    )
    # A 500 is no gateway error: it breaks the gateway run but counts among the 5xx.
    assert [proxy.get(p).status for p in ("/status/502", "/status/500", "/status/503")] == [
        502,
        500,
        503,
    ]
    assert proxy.ejected_servers() == set()
    assert proxy.get("/status/504").status == 504
    assert _ejected(proxy.get("/"))


def test_the_compiled_sections_count_answers_and_run_no_health_check() -> None:
    mesh = _mesh(
        {"consecutive5xxErrors": 3, "consecutiveGatewayErrors": 2, "interval": "5s"},
        routes=[
            {"match": [{"headers": {"lane": "a"}}], "to": "v1", "timeout": "2s"},
            {"to": "v1"},
        ],
    )
    static = StaticEndpoints({"service1": {"v1": [("127.0.0.1", 9001)]}})
    for endpoints in (static, DnsEndpoints("test", "cluster.local", 4)):
        files = compile_sidecar(mesh, "caller", "v1", endpoints=endpoints).files
        cfg = files["haproxy.cfg"]
        assert " check" not in cfg
        assert "lua-load /etc/sailplan/mesh.lua" in cfg
        assert "sailplan_outlier" in files["mesh.lua"]
        assert files["outlier.map"] == ""
        # The route with a timeout makes its attempts in a listener: that one holds the servers.
        attempts = "service1__route-0__v1__attempts"
        members = f"'{attempts},service1__route-1__v1'"
        assert (
            "    tcp-response inspect-delay 2000ms\n"
            "    tcp-response content lua.sailplan_outlier '/etc/sailplan/outlier.map' "
            f"'service1|v1' {members} 3 2 30000 10 5000 if {{ status ge 500 }} || "
            f"{{ status ge 0 }} {{ srv_name,concat(@{attempts}),map(/etc/sailplan/outlier.map) -m found }}\n"
        ) in cfg
        assert (
            "lua.sailplan_outlier '/etc/sailplan/outlier.map' 'service1|' 'service1__all' "
            "3 2 30000 10 5000 if { status ge 500 } || { status ge 0 } "
            "{ srv_name,concat(@service1__all),map(/etc/sailplan/outlier.map) -m found }"
        ) in cfg
        check_config(files, "outlier detection")


def test_an_endpoint_behind_a_route_timeout_is_ejected(proxy_for: Any, started: Any) -> None:
    backend = started("v1")
    proxy = proxy_for(
        _mesh(
            {"consecutive5xxErrors": 2, "maxEjectionPercent": 100, "baseEjectionTime": "30s"},
            routes=[{"to": "v1", "timeout": "2s"}],
        ),
        [backend.port],
    )
    assert [proxy.get("/status/500").status for _ in range(2)] == [500, 500]
    assert _ejected(proxy.get("/"))
    assert proxy.ejected_servers() == {"service1__route-0__v1__attempts/v1-0"}


def test_the_ingress_gateway_ejects_too(proxy_for: Any, started: Any) -> None:
    backend = started("v1")
    ingress = {"routes": [{"match": {"path": {"prefix": "/"}}, "service": "service1"}]}
    proxy = proxy_for(
        _mesh(
            {"consecutive5xxErrors": 2, "maxEjectionPercent": 100, "baseEjectionTime": "30s"},
            ingress=ingress,
        ),
        [backend.port],
        gateway=True,
    )
    assert [proxy.get("/status/503").status for _ in range(2)] == [503, 503]
    assert _ejected(proxy.get("/"))


def test_routes_to_one_version_share_its_hosts(proxy_for: Any, started: Any) -> None:
    # Istio makes one cluster of a version's subset, whichever route sends there: errors
    # through either route count together, and the ejection takes the host out of both.
    backend = started("v1")
    routes = [{"match": [{"headers": {"lane": "a"}}], "to": "v1"}, {"to": "v1"}]
    proxy = proxy_for(
        _mesh(
            {"consecutive5xxErrors": 2, "maxEjectionPercent": 100, "baseEjectionTime": "30s"},
            routes,
        ),
        [backend.port],
    )
    assert request(proxy.port, "/status/500", headers={"lane": "a"}).status == 500
    assert proxy.get("/status/500").status == 500
    assert _ejected(proxy.get("/"))
    assert _ejected(request(proxy.port, "/", headers={"lane": "a"}))
    assert proxy.ejected_servers() == {"service1__route-0__v1/v1-0", "service1__route-1__v1/v1-0"}


def test_a_slot_given_another_address_comes_back_as_a_new_host(
    proxy_for: Any, started: Any, tmp_path: Path
) -> None:
    # In a cluster DNS hands a server-template slot to another pod: the sweep readmits it at
    # once, without the ejection time of the pod that was there before.
    bad, good = started("bad"), started("good")
    bad.status_override = 500
    proxy = proxy_for(
        _mesh(
            {
                "consecutive5xxErrors": 1,
                "maxEjectionPercent": 100,
                "baseEjectionTime": "30s",
                "interval": "100ms",
            }
        ),
        [bad.port],
    )
    assert proxy.get("/").status == 500
    assert _ejected(proxy.get("/"))
    for backend in ("service1__route-0__v1", "service1__all"):
        _admin(
            tmp_path / "admin.sock", f"set server {backend}/v1-0 addr 127.0.0.1 port {good.port}"
        )
    _until(lambda r: r.body == "good", proxy.get, timeout=3)


def _admin(socket_path: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as admin:
        admin.settimeout(5)
        admin.connect(str(socket_path))
        admin.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := admin.recv(4096):
            answer += chunk
    return answer.decode()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_sandbox_serves_from_its_first_request_on(tmp_path: Path) -> None:
    # The start-up race, end to end: every proxy starts before the apps, with Istio's
    # Circuit Breaking values (one 5xx ejects, for 3 minutes). A probe that ran before an app
    # listened ejected it in 5 of 12 starts; answers alone cannot, so every start serves.
    data = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    outlier = {
        "consecutive5xxErrors": 1,
        "interval": "1s",
        "baseEjectionTime": "3m",
        "maxEjectionPercent": 100,
    }
    for service in data["services"].values():
        service["policy"] = {"outlierDetection": outlier}
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(data))
    for _ in range(3):
        sandbox = SandboxProcess(path)
        try:
            sandbox.wait_for("ready: ")
            created = send_all(
                parse_target(f"{sandbox.url()}/api/users"),
                20,
                1,
                "POST",
                {},
                b'{"username": "a"}',
                10.0,
            )
            assert [o.label[:4] for o in created] == ["201 "] * 20, created
        finally:
            assert sandbox.stop(signal.SIGTERM) == 0


def test_mirrored_copies_count_and_skip_ejected_pods(proxy_for: Any, started: Any) -> None:
    # Envoy sends shadow copies through the version's cluster: their answers count, and an
    # ejected pod gets none.
    mirror = started("v1")
    mirror.status_override = 500
    routes = [
        {"match": [{"headers": {"lane": "shadowed"}}], "to": "v2", "mirror": {"to": "v1"}},
        {"to": "v1"},
    ]
    mesh = _mesh(
        {"consecutive5xxErrors": 2, "maxEjectionPercent": 100, "baseEjectionTime": "30s"},
        routes,
        versions=("v1", "v2"),
    )
    proxy = proxy_for(mesh, [mirror.port], v2=(started("v2").port,))

    def copies() -> int:
        return sum(1 for _, _, headers in mirror.requests if headers["host"] == "service1-shadow")

    for _ in range(2):
        assert request(proxy.port, "/", headers={"lane": "shadowed"}).body == "v2"
    deadline = time.monotonic() + 5  # copies, and their answers, travel detached
    while not proxy.ejected_servers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert copies() == 2
    assert _ejected(proxy.get("/"))  # the two copies' 500s ejected v1's pod...
    assert request(proxy.port, "/", headers={"lane": "shadowed"}).body == "v2"
    time.sleep(0.3)
    assert copies() == 2  # ...and it gets no more copies


def test_slots_dns_has_not_filled_are_no_hosts(tmp_path: Path) -> None:
    # In a cluster a version's servers are a server-template with spare slots: 2 pods in 4
    # slots. maxEjectionPercent counts the pods, so at 50% one of two failing pods is out and
    # the other still answers; counting the empty slots would let both out.
    port = free_port()
    failing = []
    for address in ("127.0.0.1", "127.0.0.2"):
        server = ThreadingHTTPServer((address, port), _Failing)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        failing.append(server)
    dns = Dns({"service1-v1.test.svc.cluster.local": ["127.0.0.1", "127.0.0.2"]})
    mesh = _mesh({"consecutive5xxErrors": 1, "maxEjectionPercent": 50, "baseEjectionTime": "30s"})
    proxy_ports = loopback_ports()
    config = compile_sidecar(
        mesh,
        "caller",
        "v1",
        endpoints=DnsEndpoints("test", "cluster.local", 4, port=port),
        ports=proxy_ports,
        app_port=free_port(),
        config_dir=str(tmp_path),
        runtime_dir=str(tmp_path),
        passthrough="host-header",
    )
    files = dict(config.files)
    files["haproxy.cfg"] = files["haproxy.cfg"].replace(
        "parse-resolv-conf", f"nameserver test 127.0.0.1:{dns.port}"
    )
    try:
        with running_haproxy(files, tmp_path, [proxy_ports.outbound]):
            proxy = Proxy(proxy_ports.outbound, tmp_path / "haproxy.log")
            # Until DNS has answered every slot is empty: no healthy upstream.
            _until(lambda r: r.status == 500, proxy.get)
            replies = [proxy.get("/") for _ in range(10)]
            assert [r.status for r in replies] == [500] * 10
            assert len({r.body for r in replies}) == 1  # one pod answers them all
            assert len(proxy.ejected_servers()) == 1
    finally:
        dns.stop()
        for server in failing:
            server.shutdown()
            server.server_close()


class _Failing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = self.server.server_address[0].encode()
        self.send_response(500)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
