"""Istio's retryOn conditions and connectionPool fields, proven on Debian's real HAProxy with the
configs sailplan compiles for the builtin plane."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from proxy_support import backends, check_config, free_port, many
from test_haproxy_behaviour import _mesh, sidecar_for

from sailplan.render.haproxy import StaticEndpoints, compile_sidecar

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]

__all__ = ["sidecar_for"]  # the fixture, shared with the other behaviour tests


@contextmanager
def _closing_server() -> Iterator[tuple[int, list[int]]]:
    """A server that reads a request and closes without answering (Envoy: a reset before any
    answer); yields its port and a one-item list counting the connections it took."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            with connection:
                connection.settimeout(2)
                with suppress(OSError):
                    connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _retried(on: list[str]) -> dict[str, Any]:
    return {"to": "v1", "retries": {"attempts": 2, "on": on}}


def _backend_lines(routes: list[dict[str, Any]], policy: dict[str, Any] | None = None) -> list[str]:
    """The lines of service1's route backend for v1, from a config `haproxy -c` accepts."""
    endpoints = StaticEndpoints({"service1": {"v1": [("127.0.0.1", 9001)]}})
    config = compile_sidecar(_mesh(routes, policy), "caller", "v1", endpoints=endpoints)
    check_config(dict(config.files))
    section = config.haproxy_cfg.split("backend service1__route-0__v1\n")[1].split("\n\n")[0]
    # The access log's route and version variables open every route backend; not policy lines.
    return [
        line.strip()
        for line in section.splitlines()
        if not line.strip().startswith("http-request set-var(txn.log_")
    ]


@pytest.mark.parametrize(
    ("on", "keywords"),
    [
        (
            ["5xx"],
            "500 501 502 503 504 conn-failure empty-response junk-response response-timeout",
        ),
        (["gateway-error"], "502 503 504"),
        (["reset"], "conn-failure empty-response junk-response response-timeout"),
        (["reset-before-request"], "conn-failure"),
        (["connect-failure"], "conn-failure"),
        (["gateway-error", "connect-failure", "refused-stream"], "502 503 504 conn-failure"),
        (["retriable-status-codes", "404", "425"], "404 425"),
        (["refused-stream"], "none"),
        (["http3-post-connect-failure"], "none"),
        (
            ["5xx", "503", "reset"],
            "500 501 502 503 504 conn-failure empty-response junk-response response-timeout",
        ),
    ],
)
def test_retry_conditions_compile_to_haproxy_retry_on_keywords(
    on: list[str], keywords: str
) -> None:
    assert _backend_lines([_retried(on)])[:2] == ["retries 2", f"retry-on {keywords}"]


@pytest.mark.parametrize(
    ("on", "status", "attempts"),
    [
        (["gateway-error"], 502, 3),
        (["gateway-error"], 504, 3),
        (["gateway-error"], 500, 1),
        (["5xx"], 500, 3),
        (["404"], 404, 3),
        (["retriable-status-codes", "404"], 404, 3),
        (["404"], 503, 1),
        (["connect-failure"], 503, 1),
        (["reset-before-request"], 503, 1),
        # Only a refused HTTP/2 stream: an HTTP/1.1 app never refuses one, nothing is retried.
        (["refused-stream"], 503, 1),
    ],
)
def test_retry_conditions_retry_the_answers_envoy_retries(
    sidecar_for: Any, on: list[str], status: int, attempts: int
) -> None:
    sidecar = sidecar_for(_mesh([_retried(on)]))
    sidecar.backends["v1"].status_override = status
    assert sidecar.get("/").status == status
    assert len(sidecar.backends["v1"].requests) == attempts


@pytest.mark.parametrize(
    ("on", "attempts", "status"),
    [(["reset"], 3, 502), (["5xx"], 3, 502), (["gateway-error"], 1, 502)],
)
def test_a_reset_before_any_answer_is_retried_on_reset_and_5xx_only(
    sidecar_for: Any, on: list[str], attempts: int, status: int
) -> None:
    with _closing_server() as (port, accepted):
        sidecar = sidecar_for(
            _mesh([_retried(on)]), endpoint_override={"v1": [("127.0.0.1", port)]}
        )
        assert sidecar.get("/").status == status
        assert accepted[0] == attempts


@pytest.mark.parametrize("on", [["connect-failure"], ["reset-before-request"], ["reset"]])
def test_a_failed_connection_is_retried_on_another_endpoint(
    sidecar_for: Any, on: list[str]
) -> None:
    with backends("live") as extra:
        dead = free_port()  # nothing listens there: the connection is refused
        pool = [("127.0.0.1", dead), ("127.0.0.1", extra["live"].port)]
        sidecar = sidecar_for(_mesh([_retried(on)]), endpoint_override={"v1": pool})
        replies = [sidecar.get("/") for _ in range(6)]
    assert [(r.status, r.body) for r in replies] == [(200, "live")] * 6


def test_refused_stream_alone_retries_nothing_not_even_a_failed_connection(
    sidecar_for: Any,
) -> None:
    # Envoy retries only what retryOn names; HAProxy's `retry-on none` does the same.
    with backends("live") as extra:
        pool = [("127.0.0.1", free_port()), ("127.0.0.1", extra["live"].port)]
        sidecar = sidecar_for(_mesh([_retried(["refused-stream"])]), endpoint_override={"v1": pool})
        statuses = [sidecar.get("/").status for _ in range(6)]
    assert sorted(set(statuses)) == [200, 503]


@contextmanager
def _port_counting_server() -> Iterator[tuple[int, set[int]]]:
    """An HTTP/1.1 keep-alive server that records the client port of every request it answers:
    the number of ports is the number of connections the proxy opened to it."""
    ports: set[int] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            ports.add(int(self.client_address[1]))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), ports
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _unanswered_listener() -> Iterator[int]:
    """A port whose accept queue is full: Linux drops further SYNs, so a connection attempt
    hangs until the connecting side gives up, as towards an endpoint that vanished."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _requests_on_one_connection(port: int, count: int) -> list[bool]:
    """`count` requests on one client connection; for each, whether the proxy kept it alive."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    kept_alive = []
    try:
        for _ in range(count):
            connection.request("GET", "/", headers={"host": "service1"})
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"ok")
            kept_alive.append(not response.will_close)
    finally:
        connection.close()
    return kept_alive


@pytest.mark.parametrize(("per_connection", "connections"), [(1, 9), (0, 1), (None, 1)])
def test_max_requests_per_connection_1_turns_keep_alive_to_the_endpoint_off(
    sidecar_for: Any, per_connection: int | None, connections: int
) -> None:
    policy = None
    if per_connection is not None:
        policy = {"connectionPool": {"maxRequestsPerConnection": per_connection}}
    with _port_counting_server() as (port, ports):
        sidecar = sidecar_for(
            _mesh([{"to": "v1"}], policy=policy), endpoint_override={"v1": [("127.0.0.1", port)]}
        )
        # The caller's own connection stays alive either way: only the endpoint's is closed.
        assert _requests_on_one_connection(sidecar.ports.outbound, 9) == [True] * 9
    assert len(ports) == connections


def test_http2_max_requests_answers_503_past_the_requests_in_flight(sidecar_for: Any) -> None:
    policy = {"connectionPool": {"http2MaxRequests": 3}}
    sidecar = sidecar_for(_mesh([{"to": "v1"}], policy=policy))
    replies = many(8, lambda: sidecar.get("/sleep/800"), concurrency=8)
    overflow = [r for r in replies if r.status == 503]
    assert sorted(r.status for r in replies) == [200] * 3 + [503] * 5
    assert all(r.seconds < 0.5 for r in overflow)
    assert {r.body for r in overflow} == {
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    }
    assert sidecar.get("/").status == 200  # the limit counts requests in flight, not in total


@pytest.mark.parametrize(("connect_timeout", "low", "high"), [("200ms", 0.55, 1.5), (None, 15, 19)])
def test_connect_timeout_bounds_opening_a_connection_to_an_endpoint(
    sidecar_for: Any, connect_timeout: str | None, low: float, high: float
) -> None:
    policy = {"connectionPool": {"connectTimeout": connect_timeout}} if connect_timeout else None
    with _unanswered_listener() as port:
        sidecar = sidecar_for(
            _mesh([{"to": "v1"}], policy=policy), endpoint_override={"v1": [("127.0.0.1", port)]}
        )
        reply = sidecar.get("/", timeout=20)
    # Three attempts (Istio's default retries a failed connection twice), each cut at the
    # connect timeout;
    # without it HAProxy's default of 5s applies.
    assert reply.status == 503
    assert low <= reply.seconds < high


def test_connection_pool_fields_compile_to_backend_lines() -> None:
    pool = {
        "maxConnections": 1,
        "maxPendingRequests": 1,
        "maxRequestsPerConnection": 1,
        "http2MaxRequests": 5,
        "connectTimeout": "0.25s",
    }
    lines = _backend_lines([{"to": "v1"}], {"connectionPool": pool})
    overflow = (
        "http-request return status 503 content-type text/plain string "
        "'upstream connect error or disconnect/reset before headers. reset reason: overflow' hdr x-sailplan-flag UO if "
    )
    assert lines == [
        "http-request set-var(txn.pool) be_conn(service1__route-0__v1)",
        overflow + "{ var(txn.pool) -m int gt 2 }",
        overflow + "{ var(txn.pool) -m int gt 5 }",
        "option http-server-close",
        "timeout connect 250ms",
        "retries 2",
        "retry-on conn-failure",
        "server v1-0 127.0.0.1:9001 maxconn 1",
    ]
