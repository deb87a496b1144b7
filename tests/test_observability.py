"""Observability of the builtin plane on real HAProxy: JSON access-log lines, x-request-id, trace
headers passed through, metrics named after routes."""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxy_support import (
    Backend,
    access_lines,
    backends,
    free_port,
    loopback_ports,
    many,
    request,
    running_caller,
    running_haproxy,
)
from sandbox_support import MESHES, SandboxProcess, runnable_copy
from schema_support import validate_manifest

import sailplan
from sailplan.render.haproxy import (
    FLAT_SERVICE_LIMIT,
    ProxyPorts,
    StaticEndpoints,
    compile_gateway,
)
from sailplan.render.haproxy.observability import ACCESS_LOG_FIELDS, route_label
from sailplan.render.manifests import render_manifests
from sailplan.sandbox.processes import Supervisor
from sailplan.traffic import parse_target, send_all

pytestmark = [pytest.mark.haproxy, pytest.mark.timeout(60)]

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TRACE_HEADERS = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "1",
}


def _mesh(
    routes: list[dict[str, Any]], policy: dict[str, Any] | None = None, **extra: Any
) -> sailplan.Mesh:
    spec: dict[str, Any] = {
        "name": "obs",
        # The endpoints here are the apps themselves, not sidecars: plaintext.
        "mtls": "disable",
        "accessLog": True,
        "services": {
            "service1": {
                "port": 8088,
                "versions": {v: {"image": v} for v in ("v1", "v2", "v3")},
                "routes": routes,
                **({"policy": policy} if policy else {}),
            },
            "caller": {"port": 9000, "versions": {"v1": {"image": "c"}}},
        },
        **extra,
    }
    return sailplan.load_mesh_text(yaml.safe_dump(spec))


@contextmanager
def sidecar(
    tmp_path: Path, mesh: sailplan.Mesh, addresses: dict[str, list[tuple[str, int]]]
) -> Iterator[ProxyPorts]:
    with running_caller(mesh, addresses, tmp_path) as ports:
        yield ports


def _live(started: dict[str, Backend]) -> dict[str, list[tuple[str, int]]]:
    return {version: [("127.0.0.1", b.port)] for version, b in started.items()}


def test_three_requests_write_three_json_lines(tmp_path: Path) -> None:
    mesh = _mesh(
        [{"name": "jason", "match": {"headers": {"end-user": "jason"}}, "to": "v2"}, {"to": "v1"}]
    )
    with backends("v1", "v2", "v3") as started, sidecar(tmp_path, mesh, _live(started)) as ports:
        assert request(ports.outbound, "/a?x=1").body == "v1"
        assert request(ports.outbound, "/b", headers={"end-user": "jason"}).body == "v2"
        assert (
            request(ports.outbound, '/c/"q"\\', method="POST", host="service1:8088").status == 200
        )
        lines = access_lines(tmp_path, 3)
    assert len(lines) == 3
    assert all(tuple(line) == ACCESS_LOG_FIELDS for line in lines)
    first, second, third = lines
    assert first["downstream_remote_address"].startswith("127.0.0.1:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["start_time"])
    assert {k: first[k] for k in ("method", "authority", "path", "response_code")} == {
        "method": "GET",
        "authority": "service1",
        "path": "/a?x=1",
        "response_code": 200,
    }
    assert {k: first[k] for k in ("route_name", "version", "upstream_cluster", "proxy")} == {
        "route_name": "route-1",
        "version": "v1",
        "upstream_cluster": "service1__route-1__v1",
        "proxy": "outbound",
    }
    assert first["upstream_host"] == f"127.0.0.1:{started['v1'].port}"
    assert (first["response_flags"], first["retries"]) == ("-", "0")
    assert isinstance(first["duration"], int)
    assert (second["route_name"], second["version"]) == ("jason", "v2")
    assert second["upstream_cluster"] == "service1__jason__v2"
    assert (third["method"], third["path"], third["authority"]) == (
        "POST",
        '/c/"q"\\',
        "service1:8088",
    )
    assert UUID4.fullmatch(first["request_id"])
    assert len({line["request_id"] for line in lines}) == 3


def test_response_flags_of_the_proxys_own_answers(tmp_path: Path) -> None:
    mesh = _mesh(
        [
            {"name": "abort", "match": {"path": {"prefix": "/abort"}}, "to": "v1"}
            | {"fault": {"abort": {"status": 418, "percent": 100}}},
            {
                "name": "late",
                "match": {"headers": {"x-late": "1"}},
                "to": "v1",
                "timeout": "300ms",
                "fault": {"delay": {"fixed": "50ms", "percent": 100}},
            },
            {
                "name": "slow",
                "match": {"path": {"prefix": "/sleep"}},
                "to": "v1",
                "timeout": "300ms",
            },
            {"name": "refused", "match": {"path": {"prefix": "/refused"}}, "to": "v2"},
            {"name": "empty", "match": {"path": {"prefix": "/empty"}}, "to": "v3"},
            {"match": {"path": {"prefix": "/delayed"}}, "to": "v1"}
            | {"fault": {"delay": {"fixed": "50ms", "percent": 100}}},
            {"to": "v1"},
        ],
        # Overflow is counted per version, over every route to it (issue 12, D11).
        policy={"connectionPool": {"maxConnections": 1, "maxPendingRequests": 0}},
    )
    with backends("v1") as started:
        addresses = {**_live(started), "v2": [("127.0.0.1", free_port())], "v3": []}
        with sidecar(tmp_path, mesh, addresses) as ports:
            answers = [
                request(ports.outbound, path).status
                for path in ("/abort", "/sleep/1000", "/refused", "/empty", "/ok")
            ]
            assert answers == [418, 504, 503, 503, 200]
            late = request(ports.outbound, "/sleep/1000", headers={"x-late": "1"})
            delayed = request(ports.outbound, "/delayed")
            assert (late.status, delayed.status) == (504, 200)
            burst = many(6, lambda: request(ports.outbound, "/sleep/250"), concurrency=6)
            overflowed = sum(1 for r in burst if r.status == 503)
            assert overflowed >= 1
            lines = access_lines(tmp_path, 13)
    flags = [(line["route_name"], line["response_code"], line["response_flags"]) for line in lines]
    assert flags[:7] == [
        ("abort", 418, "FI"),
        ("slow", 504, "UT"),
        ("refused", 503, "UF"),
        ("empty", 503, "UH"),
        ("route-6", 200, "-"),
        ("late", 504, "DI,UT"),
        ("route-5", 200, "DI"),
    ]
    assert sorted(flags[7:]) == sorted(
        [("slow", 503, "UO")] * overflowed + [("slow", 200, "-")] * (6 - overflowed)
    )


class _FlagSettingApp(BaseHTTPRequestHandler):
    """An app answering with the header the proxy uses for its own answers' flags."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("x-sailplan-flag", "FI")
        self.send_header("content-length", "0")
        self.end_headers()


def test_an_app_cannot_set_a_response_flag(tmp_path: Path) -> None:
    app = ThreadingHTTPServer(("127.0.0.1", 0), _FlagSettingApp)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        address = {"v1": [("127.0.0.1", int(app.server_address[1]))]}
        with sidecar(tmp_path, _mesh([{"to": "v1"}]), address) as ports:
            connection = http.client.HTTPConnection("127.0.0.1", ports.outbound, timeout=10)
            connection.request("GET", "/", headers={"host": "service1"})
            response = connection.getresponse()
            response.read()
            connection.close()
            lines = access_lines(tmp_path, 1)
    finally:
        app.shutdown()
        app.server_close()
    assert response.status == 200
    assert response.getheader("x-sailplan-flag") is None
    assert lines[0]["response_flags"] == "-"


def test_request_id_is_generated_or_kept_and_trace_headers_pass(tmp_path: Path) -> None:
    mesh = _mesh([{"to": "v1"}])
    with backends("v1") as started, sidecar(tmp_path, mesh, _live(started)) as ports:
        request(ports.outbound, "/new", headers=TRACE_HEADERS)
        request(ports.outbound, "/kept", headers={"x-request-id": "abc-123", **TRACE_HEADERS})
        lines = access_lines(tmp_path, 2)
        seen = [headers for _, _, headers in started["v1"].requests]
    generated = seen[0]["x-request-id"]
    assert UUID4.fullmatch(generated)
    assert seen[1]["x-request-id"] == "abc-123"
    assert [line["request_id"] for line in lines] == [generated, "abc-123"]
    for headers in seen:
        assert {name: headers.get(name) for name in TRACE_HEADERS} == TRACE_HEADERS


def test_gateway_logs_no_route_and_passes_trace_headers(tmp_path: Path) -> None:
    ingress = {
        "hosts": ["shop.example.com"],
        "routes": [{"match": {"path": {"prefix": "/api"}}, "service": "service1"}],
    }
    mesh = _mesh([{"name": "main", "to": "v2"}], ingress=ingress)
    with backends("v2") as started:
        listen = free_port()
        config = compile_gateway(
            mesh,
            endpoints=StaticEndpoints({"service1": _live(started)}),
            listen_port=listen,
            ports=loopback_ports(),
            config_dir=str(tmp_path),
            runtime_dir=str(tmp_path),
        )
        with running_haproxy(config.files, tmp_path, [listen]):
            host = "shop.example.com"
            assert request(listen, "/api/x", host=host, headers=TRACE_HEADERS).body == "v2"
            assert request(listen, "/elsewhere", host=host).status == 404
            assert request(listen, "/api/x", host="other.example.com").status == 404
            lines = access_lines(tmp_path, 3)
        received = started["v2"].requests[0][2]
    assert {name: received.get(name) for name in TRACE_HEADERS} == TRACE_HEADERS
    assert UUID4.fullmatch(received["x-request-id"])
    # Each line is written when its stream ends, on either of HAProxy's two threads: the order of
    # lines need not be the order of requests.
    summary = sorted(
        (ln["proxy"], ln["route_name"], ln["version"], ln["response_flags"]) for ln in lines
    )
    assert summary == [
        ("ingress", "-", "-", "NR"),
        ("ingress", "-", "-", "NR"),
        ("ingress", "main", "v2", "-"),
    ]
    [routed] = [ln for ln in lines if ln["route_name"] == "main"]
    assert routed["request_id"] == received["x-request-id"]


def test_a_large_mesh_logs_once_per_request_with_the_callers_address(tmp_path: Path) -> None:
    """Past FLAT_SERVICE_LIMIT services the routing frontend behind the hop writes the line."""
    extra = {
        f"extra{i}": {"port": 9100 + i, "versions": {"v1": {"image": "x"}}}
        for i in range(FLAT_SERVICE_LIMIT)
    }
    spec = yaml.safe_load(yaml.safe_dump(_mesh([{"name": "main", "to": "v1"}]).to_dict()))
    spec["services"].update(extra)
    mesh = sailplan.load_mesh_text(yaml.safe_dump(spec))
    with backends("v1") as started, sidecar(tmp_path, mesh, _live(started)) as ports:
        assert "__hop" in (tmp_path / "haproxy.cfg").read_text()
        request(ports.outbound, "/one", headers={"x-request-id": "r1"})
        request(ports.outbound, "/two")
        lines = access_lines(tmp_path, 2)
        time.sleep(0.3)  # a second line per request would have arrived by now
        lines = access_lines(tmp_path, 2)
        seen = [headers for _, _, headers in started["v1"].requests]
    assert len(lines) == 2
    assert [(ln["proxy"], ln["route_name"], ln["path"]) for ln in lines] == [
        ("outbound", "main", "/one"),
        ("outbound", "main", "/two"),
    ]
    assert all(ln["downstream_remote_address"].startswith("127.0.0.1:") for ln in lines)
    assert lines[0]["request_id"] == "r1"
    assert "x-sailplan-caller" not in seen[0]


def test_metrics_name_backends_after_routes_and_versions(tmp_path: Path) -> None:
    mesh = _mesh(
        [
            {"name": "canary", "match": {"headers": {"end-user": "jason"}}, "to": "v2"},
            {"split": {"v1": 90, "v3": 10}},
        ]
    )
    with backends("v1", "v2", "v3") as started, sidecar(tmp_path, mesh, _live(started)) as ports:
        request(ports.outbound, "/", headers={"end-user": "jason"})
        metrics = request(ports.admin, "/metrics").body
    backends_seen = set(
        re.findall(r'haproxy_backend_http_requests_total\{proxy="([^"]+)"', metrics)
    )
    assert {
        "service1__canary__v2",
        "service1__route-1__v1",
        "service1__route-1__v3",
        "service1__all",
    } <= backends_seen
    served = re.search(
        r'haproxy_backend_http_requests_total\{proxy="service1__canary__v2"\} (\d+)', metrics
    )
    assert served is not None and served.group(1) == "1"


def test_an_unnamed_route_never_takes_a_named_routes_label() -> None:
    mesh = _mesh([{"name": "route-1", "match": {"method": "GET"}, "to": "v2"}, {"to": "v1"}])
    service = mesh.services["service1"]
    assert [route_label(service, i) for i in range(2)] == ["route-1", "route.1"]


def _supervised_output(*, quiet: bool, access_log: bool) -> list[str]:
    out = io.StringIO()
    supervisor = Supervisor(quiet=quiet, access_log=access_log, out=out)
    script = "echo '{\"response_code\":200}'; echo 'Loading success.'"
    try:
        for name, proxy in (("proxy", True), ("app", False)):
            process = supervisor.start(name, ["sh", "-c", script], proxy=proxy)
            process.popen.wait(timeout=10)
        deadline = time.monotonic() + 5
        while out.getvalue().count("\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # nothing more may arrive
    finally:
        supervisor.stop_all(grace=1)
    return sorted(out.getvalue().splitlines())


def test_the_sandbox_shows_access_lines_only_when_asked() -> None:
    access = 'proxy        | {"response_code":200}'
    event = "proxy        | Loading success."
    app_lines = ['app          | {"response_code":200}', "app          | Loading success."]
    assert _supervised_output(quiet=False, access_log=False) == sorted([event, *app_lines])
    assert _supervised_output(quiet=False, access_log=True) == sorted([access, event, *app_lines])
    assert _supervised_output(quiet=True, access_log=True) == [access]
    assert _supervised_output(quiet=True, access_log=False) == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sandbox_access_log_prints_a_line_per_request_of_each_proxy(tmp_path: Path) -> None:
    mesh_file = tmp_path / "mesh.yaml"
    mesh_file.write_text(runnable_copy(MESHES / "header-match.yaml"))
    sandbox = SandboxProcess(mesh_file, "--access-log")
    try:
        sandbox.wait_for("ready: ")
        for outcome in send_all(
            parse_target(f"{sandbox.url()}/api/users/1"), 3, 1, "GET", {}, None, 10.0
        ):
            assert outcome.label.startswith("200 "), outcome
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            access = [line for line in list(sandbox.lines) if " | {" in line]
            if len([line for line in access if line.startswith("gateway ")]) >= 3:
                break
            time.sleep(0.1)
    finally:
        sandbox.stop()
    by_proxy: dict[str, list[dict[str, Any]]] = {}
    for line in access:
        name, text = line.split(" | ", 1)
        by_proxy.setdefault(name.strip(), []).append(json.loads(text))
    gateway = by_proxy.pop("gateway")
    assert [(ln["proxy"], ln["path"], ln["response_code"]) for ln in gateway] == [
        ("ingress", "/api/users/1", 200)
    ] * 3
    # Behind the gateway every request crossed at least one sidecar, which logged it too.
    sidecar_ids = {ln["request_id"] for lines in by_proxy.values() for ln in lines}
    assert {ln["request_id"] for ln in gateway} <= sidecar_ids


def test_builtin_pods_and_the_gateway_carry_prometheus_scrape_annotations() -> None:
    mesh = sailplan.load_mesh(MESHES / "header-match.yaml")
    deployments = [m for m in render_manifests(mesh, "builtin") if m["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} >= {"header-match-gateway"}
    for deployment in deployments:
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/path": "/metrics",
            "prometheus.io/port": "15020",
            "prometheus.io/scrape": "true",
        }, deployment["metadata"]["name"]


def test_istio_access_log_is_a_telemetry_resource_when_asked() -> None:
    spec = yaml.safe_load((MESHES / "header-match.yaml").read_text())
    asked = sailplan.load_mesh_text(yaml.safe_dump({**spec, "accessLog": True}))
    telemetry = [m for m in render_manifests(asked, "istio") if m["kind"] == "Telemetry"]
    assert len(telemetry) == 1
    assert telemetry[0]["apiVersion"] == "telemetry.istio.io/v1"
    assert telemetry[0]["metadata"]["name"] == "header-match-access-log"
    assert telemetry[0]["metadata"]["namespace"] == "header-match"
    assert telemetry[0]["spec"] == {"accessLogging": [{"providers": [{"name": "envoy"}]}]}
    validate_manifest(telemetry[0])
    istio_kinds = [m for m in render_manifests(asked, "istio") if m["kind"] != "NetworkPolicy"]
    assert istio_kinds[-1] == telemetry[0]
    default = sailplan.load_mesh_text(yaml.safe_dump(spec))
    assert not [m for m in render_manifests(default, "istio") if m["kind"] == "Telemetry"]


def test_builtin_proxies_log_only_when_the_mesh_asks() -> None:
    spec = yaml.safe_load((MESHES / "header-match.yaml").read_text())
    asked = sailplan.load_mesh_text(yaml.safe_dump({**spec, "accessLog": True}))
    default = sailplan.load_mesh_text(yaml.safe_dump(spec))

    def configs(mesh: sailplan.Mesh) -> list[str]:
        return [
            text
            for m in render_manifests(mesh, "builtin")
            if m["kind"] == "ConfigMap"
            for name, text in m.get("data", {}).items()
            if name.endswith(".cfg")
        ]

    logged, quiet = "".join(configs(asked)), "".join(configs(default))
    unlogged_front = "    no log\n    http-request set-header x-request-id %[uuid]"
    assert "log-format '{" in logged and unlogged_front not in logged
    assert "log-format" not in quiet and "txn.log_" not in quiet
    # Each sidecar's inbound and outbound, and the gateway.
    assert quiet.count(unlogged_front) == logged.count("log-format '{") >= 3


def test_without_the_access_log_requests_still_get_ids_and_no_flag_leaks(tmp_path: Path) -> None:
    routes = [
        {"match": [{"path": {"prefix": "/abort"}}], "to": "v1"}
        | {"fault": {"abort": {"status": 418, "percent": 100}}},
        {"to": "v1"},
    ]
    mesh = _mesh(routes, accessLog=False)
    with backends("v1") as started, sidecar(tmp_path, mesh, _live(started)) as ports:
        request(ports.outbound, "/new")
        request(ports.outbound, "/kept", headers={"x-request-id": "abc-123"})
        # The proxy's own answer carries its flag inside the proxy only.
        aborted = request(ports.outbound, "/abort")
        time.sleep(0.3)
        written = (tmp_path / "haproxy.log").read_text()
        seen = [headers for _, _, headers in started["v1"].requests]
    assert aborted.status == 418
    assert "x-sailplan-flag" not in {name for name, _ in aborted.headers}
    assert [line for line in written.splitlines() if line.startswith("{")] == []
    assert UUID4.fullmatch(seen[0]["x-request-id"])
    assert seen[1]["x-request-id"] == "abc-123"
