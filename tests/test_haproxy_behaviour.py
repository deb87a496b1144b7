"""Each policy of the spec, proven on Debian's real HAProxy with the configs sailplan compiles."""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxy_support import (
    HAPROXY,
    Backend,
    Reply,
    backends,
    free_port,
    loopback_ports,
    many,
    request,
    running_caller,
    running_haproxy,
)

import sailplan
from sailplan.render.haproxy import (
    FLAT_SERVICE_LIMIT,
    ProxyPorts,
    StaticEndpoints,
    compile_gateway,
    compile_sidecar,
)

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]


def _mesh(
    routes: list[dict[str, Any]],
    policy: dict[str, Any] | None = None,
    ingress: dict[str, Any] | None = None,
) -> sailplan.Mesh:
    service1: dict[str, Any] = {
        "port": 8088,
        "versions": {"v1": {"image": "a"}, "v2": {"image": "b"}},
        "routes": routes,
    }
    if policy:
        service1["policy"] = policy
    spec: dict[str, Any] = {
        "apiVersion": "sailplan/v1",
        "kind": "Mesh",
        # The endpoints here are the apps themselves, not sidecars: plaintext.
        "mtls": "disable",
        "name": "test",
        "services": {
            "service1": service1,
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
    }
    if ingress:
        spec["ingress"] = ingress
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


@dataclass
class Sidecar:
    ports: ProxyPorts
    backends: dict[str, Backend]

    def get(self, path: str = "/", **kwargs: Any) -> Reply:
        return request(self.ports.outbound, path, **kwargs)


@pytest.fixture
def sidecar_for(tmp_path: Path) -> Iterator[Any]:
    """Start the caller's sidecar for a mesh, with service1's v1/v2 as real backends."""
    stack: list[Any] = []

    def start(
        mesh: sailplan.Mesh, *, endpoint_override: dict[str, list[tuple[str, int]]] | None = None
    ) -> Sidecar:
        context = backends("v1", "v2")
        started = context.__enter__()
        stack.append(context)
        addresses = {version: [("127.0.0.1", b.port)] for version, b in started.items()}
        addresses.update(endpoint_override or {})
        proxy = running_caller(mesh, addresses, tmp_path)
        ports = proxy.__enter__()
        stack.append(proxy)
        return Sidecar(ports, started)

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _share(replies: list[Reply], predicate: Any) -> float:
    return 100 * sum(1 for r in replies if predicate(r)) / len(replies)


def test_80_20_split_over_2000_requests(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"split": {"v1": 80, "v2": 20}}]))
    replies = many(2000, lambda: sidecar.get("/"), concurrency=16)
    assert all(r.status == 200 for r in replies)
    assert 75 <= _share(replies, lambda r: r.body == "v1") <= 85


def test_host_forms_all_reach_the_service(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v2"}]))
    for host in (
        "service1",
        "service1:8088",
        "service1.test",
        "SERVICE1.test.svc",
        "service1.test.svc.cluster.local:8088",
    ):
        assert sidecar.get("/", host=host).body == "v2", host


def test_header_path_and_method_routing(sidecar_for: Any) -> None:
    routes = [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "to": "v2"},
        {
            "match": [{"path": {"exact": "/exact"}}, {"path": {"regex": "^/v[0-9]+/items$"}}],
            "to": "v2",
        },
        {"match": [{"method": "POST", "path": {"prefix": "/api/"}}], "to": "v2"},
        {"to": "v1"},
    ]
    sidecar = sidecar_for(_mesh(routes))
    assert sidecar.get("/", headers={"end-user": "jason"}).body == "v2"
    assert sidecar.get("/", headers={"end-user": "jasonx"}).body == "v1"
    assert sidecar.get("/exact").body == "v2"
    assert sidecar.get("/exact/no").body == "v1"
    assert sidecar.get("/v2/items").body == "v2"
    assert sidecar.get("/vx/items").body == "v1"
    assert sidecar.get("/api/users", method="POST").body == "v2"
    assert sidecar.get("/api/users", method="GET").body == "v1"


def test_unmatched_requests_spread_over_every_version(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"match": [{"path": {"prefix": "/only"}}], "to": "v2"}]))
    bodies = Counter(sidecar.get("/other").body for _ in range(40))
    assert set(bodies) == {"v1", "v2"}


def test_abort_half_of_the_requests(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v1", "fault": {"abort": {"status": 400, "percent": 50}}}]))
    replies = many(2000, lambda: sidecar.get("/"), concurrency=16)
    aborted = [r for r in replies if r.status == 400]
    assert {r.body for r in aborted} == {"fault filter abort"}
    assert 45 <= _share(replies, lambda r: r.status == 400) <= 55
    assert {r.status for r in replies} == {200, 400}


def test_delay_applies_to_its_share_and_blocks_nothing_else(sidecar_for: Any) -> None:
    routes = [
        {
            "match": [{"path": {"prefix": "/slow"}}],
            "to": "v1",
            "fault": {"delay": {"fixed": "300ms", "percent": 50}},
        },
        {"to": "v1"},
    ]
    sidecar = sidecar_for(_mesh(routes))
    started = time.monotonic()
    slow = many(40, lambda: sidecar.get("/slow"), concurrency=40)
    elapsed = time.monotonic() - started
    delayed = _share(slow, lambda r: r.seconds >= 0.29)
    assert 20 <= delayed <= 80
    assert elapsed < 2.0, "40 parallel delayed requests must not queue behind each other"
    fast = [sidecar.get("/fast") for _ in range(10)]
    assert all(r.seconds < 0.25 for r in fast)


def test_route_timeout_answers_504_upstream_request_timeout(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v1", "timeout": "300ms"}]))
    reply = sidecar.get("/sleep/1000")
    assert (reply.status, reply.body) == (504, "upstream request timeout")
    assert 0.25 <= reply.seconds < 0.9
    assert sidecar.get("/sleep/50").status == 200


def test_retries_turn_a_flaky_upstream_into_successes(sidecar_for: Any) -> None:
    retried = sidecar_for(_mesh([{"to": "v1", "retries": {"attempts": 3, "on": ["5xx"]}}]))
    assert retried.get("/flaky/2").status == 200
    assert retried.get("/flaky/5").status == 503


def test_without_retries_a_flaky_upstream_fails(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v1"}]))
    assert sidecar.get("/flaky/1").status == 503


def test_per_try_timeout_bounds_each_attempt(sidecar_for: Any) -> None:
    sidecar = sidecar_for(
        _mesh([{"to": "v1", "retries": {"attempts": 2, "perTryTimeout": "200ms", "on": ["5xx"]}}])
    )
    reply = sidecar.get("/sleep/1000")
    assert reply.status == 504
    assert 0.55 <= reply.seconds < 1.5  # three attempts of 200ms


def test_connection_pool_overflow_answers_503_at_once(sidecar_for: Any) -> None:
    policy = {"connectionPool": {"maxConnections": 2, "maxPendingRequests": 0}}
    sidecar = sidecar_for(_mesh([{"to": "v1"}], policy=policy))
    replies = many(10, lambda: sidecar.get("/sleep/800"), concurrency=10)
    overflow = [r for r in replies if r.status == 503]
    assert len([r for r in replies if r.status == 200]) >= 2
    assert len(overflow) >= 6
    assert all(r.seconds < 0.5 for r in overflow)
    assert {r.body for r in overflow} == {
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    }


def test_outlier_is_ejected_and_returns(sidecar_for: Any) -> None:
    policy = {
        "outlierDetection": {
            "consecutive5xxErrors": 3,
            "interval": "200ms",
            "baseEjectionTime": "1s",
            # Envoy's default 10% ejects neither of two endpoints.
            "maxEjectionPercent": 50,
        }
    }
    with backends("good", "bad") as extra:
        extra["bad"].status_override = 500
        pool = [("127.0.0.1", extra["good"].port), ("127.0.0.1", extra["bad"].port)]
        sidecar = sidecar_for(_mesh([{"to": "v1"}], policy=policy), endpoint_override={"v1": pool})
        warmup = [sidecar.get("/") for _ in range(8)]
        assert any(r.status == 500 for r in warmup)
        ejected = [sidecar.get("/") for _ in range(20)]
        assert [(r.status, r.body) for r in ejected] == [(200, "good")] * 20
        time.sleep(2.5)  # past the ejection time and a sweep: the server is back in
        returned = [sidecar.get("/") for _ in range(6)]
        assert any(r.body == "bad" for r in returned)


def test_mirror_receives_copies(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v1", "mirror": {"to": "v2", "percent": 100}}]))
    replies = [sidecar.get(f"/copy/{i}") for i in range(20)]
    assert all(r.body == "v1" for r in replies)
    deadline = time.monotonic() + 5
    while len(sidecar.backends["v2"].requests) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    mirrored = sidecar.backends["v2"].requests
    assert len(mirrored) == 20
    assert mirrored[0][2]["host"] == "service1-shadow"


def test_unknown_host_passes_through(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v1"}]))
    with backends("outside") as extra:
        reply = sidecar.get("/", host=f"127.0.0.1:{extra['outside'].port}")
    assert (reply.status, reply.body) == (200, "outside")


def test_health_endpoint(sidecar_for: Any) -> None:
    sidecar = sidecar_for(_mesh([{"to": "v1"}]))
    assert request(sidecar.ports.health, "/healthz/ready").status == 200
    assert request(sidecar.ports.admin, "/metrics").status == 200


def test_gateway_routes_to_the_service_and_applies_its_routes(tmp_path: Path) -> None:
    ingress = {"routes": [{"match": {"path": {"prefix": "/api"}}, "service": "service1"}]}
    mesh = _mesh(
        [{"match": [{"headers": {"end-user": "jason"}}], "to": "v2"}, {"to": "v1"}], ingress=ingress
    )
    with backends("v1", "v2") as started:
        endpoints = StaticEndpoints(
            {"service1": {v: [("127.0.0.1", b.port)] for v, b in started.items()}}
        )
        listen = free_port()
        ports = loopback_ports()
        config = compile_gateway(
            mesh,
            endpoints=endpoints,
            listen_port=listen,
            ports=ports,
            config_dir=str(tmp_path),
            runtime_dir=str(tmp_path),
        )
        with running_haproxy(config.files, tmp_path, [listen]):
            assert request(listen, "/api/users", host="anything").body == "v1"
            assert request(listen, "/api/users", headers={"end-user": "jason"}).body == "v2"
            missing = request(listen, "/elsewhere")
            assert (missing.status, missing.body) == (404, "no route")


def test_a_large_mesh_routes_through_per_service_frontends(tmp_path: Path) -> None:
    """Past FLAT_SERVICE_LIMIT services the compiler hops to a routing frontend per service."""
    extra = {
        f"extra{i}": {"port": 9100 + i, "versions": {"v1": {"image": "x"}}}
        for i in range(FLAT_SERVICE_LIMIT)
    }
    spec = yaml.safe_load(yaml.safe_dump(_mesh([]).to_dict()))
    spec["services"].update(extra)
    spec["services"]["service1"]["routes"] = [
        {"match": [{"headers": {"end-user": "jason"}}], "to": "v2"},
        {"split": {"v1": 80, "v2": 20}, "timeout": "300ms"},
    ]
    spec["ingress"] = {"routes": [{"match": {"path": {"prefix": "/api"}}, "service": "service1"}]}
    mesh = sailplan.load_mesh_text(yaml.safe_dump(spec))
    with backends("v1", "v2") as started:
        endpoints = StaticEndpoints(
            {"service1": {v: [("127.0.0.1", b.port)] for v, b in started.items()}}
        )
        ports = loopback_ports()
        sidecar = compile_sidecar(
            mesh,
            "caller",
            "v1",
            endpoints=endpoints,
            ports=ports,
            app_port=free_port(),
            config_dir=str(tmp_path),
            runtime_dir=str(tmp_path),
            passthrough="host-header",
        )
        assert "__hop" in sidecar.haproxy_cfg
        with running_haproxy(sidecar.files, tmp_path, [ports.outbound]):
            replies = many(1000, lambda: request(ports.outbound, "/"), concurrency=16)
            assert 75 <= _share(replies, lambda r: r.body == "v1") <= 85
            assert request(ports.outbound, "/", headers={"end-user": "jason"}).body == "v2"
            timed_out = request(ports.outbound, "/sleep/1000")
            assert (timed_out.status, timed_out.body) == (504, "upstream request timeout")
        gateway_dir = tmp_path / "gw"
        listen = free_port()
        gateway_ports = loopback_ports()
        gateway = compile_gateway(
            mesh,
            endpoints=endpoints,
            listen_port=listen,
            ports=gateway_ports,
            config_dir=str(gateway_dir),
            runtime_dir=str(gateway_dir),
        )
        with running_haproxy(gateway.files, gateway_dir, [listen]):
            assert request(listen, "/api/x", headers={"end-user": "jason"}).body == "v2"
            assert request(listen, "/other").status == 404


def test_a_port_another_process_holds_is_refused_not_shared(tmp_path: Path) -> None:
    # With SO_REUSEPORT on both sockets the kernel would split the port's connections between
    # the proxy and whoever else holds it; `noreuseport` makes the proxy refuse to start.
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = ProxyPorts(
            taken, free_port(), free_port(), free_port(), "127.0.0.1", mtls=free_port()
        )
        config = compile_sidecar(
            _mesh([{"to": "v1"}]),
            "caller",
            "v1",
            endpoints=StaticEndpoints(
                {"service1": {v: [("127.0.0.1", free_port())] for v in ("v1", "v2")}}
            ),
            ports=ports,
            app_port=free_port(),
            config_dir=str(tmp_path),
            runtime_dir=str(tmp_path),
            passthrough="host-header",
        )
        for name, text in config.files.items():
            (tmp_path / name).write_text(text)
        started = subprocess.run(
            [HAPROXY, "-db", "-f", str(tmp_path)], capture_output=True, text=True, timeout=20
        )
    assert started.returncode != 0
    assert f"cannot bind socket (Address already in use) for [127.0.0.1:{taken}]" in started.stderr
