"""`calls`: a service's sidecars scoped to the services it calls, on both planes."""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from dns_support import Dns, use_dns
from proxy_support import (
    Backend,
    access_lines,
    backends,
    check_config,
    loopback_ports,
    request,
    running_haproxy,
)
from sandbox_support import MESHES, SandboxProcess, runnable_copy
from schema_support import validate_manifest

import sailplan
from sailplan.cli import main
from sailplan.render.haproxy import DnsEndpoints, SidecarCompiler, StaticEndpoints
from sailplan.render.manifests import render_manifests
from sailplan.sandbox import netns


def _spec(count: int, calls: dict[str, list[str]] | None = None) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for index in range(count):
        name = f"svc{index:03d}"
        services[name] = {
            "port": 8000 + index,
            "versions": {"v1": {"image": "a"}, "v2": {"image": "b"}},
            "routes": [
                {"name": "testers", "match": [{"headers": {"x-v": {"exact": "two"}}}], "to": "v2"},
                {"to": "v1"},
            ],
        }
        if calls and name in calls:
            services[name]["calls"] = calls[name]
    return {"apiVersion": "sailplan/v1", "kind": "Mesh", "name": "calls", "services": services}


def _mesh(spec: dict[str, Any], data_plane: str = "builtin") -> sailplan.Mesh:
    return sailplan.load_mesh_text(yaml.safe_dump({**spec, "dataPlane": data_plane}))


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_check_refuses_a_call_to_an_unknown_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(_spec(2, {"svc000": ["svc001", "billing"]})))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "services.svc000.calls[1]: unknown service 'billing'; services are: svc000, svc001" in err
    )
    assert "Traceback" not in err


def test_check_suggests_calls_for_a_large_mesh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(_spec(51, {"svc001": ["svc002"]})))
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().err == (
        "hint: 50 of the mesh's 51 services have no `calls` list, so each of their sidecars "
        "carries the routes of all 51 services; listing the services each one calls "
        "(services.svc000.calls) keeps its sidecar small\n"
    )
    path.write_text(yaml.safe_dump(_spec(50)))
    assert main(["check", str(path)]) == 0
    assert "hint:" not in capsys.readouterr().err


def test_builtin_sidecar_with_calls_carries_only_those_services() -> None:
    objects = render_manifests(_mesh(_spec(20, {"svc000": ["svc003", "svc007"]})))
    own = _find(objects, "ConfigMap", "svc000-v1-proxy")["data"]
    assert sorted(own) == [
        "00-global.cfg",
        "10-inbound.cfg",
        "20-outbound.cfg",
        "503.http",
        "504.http",
        "hosts.map",
        "mesh.lua",  # mTLS: the inbound reads the caller's identity in Lua
    ]
    assert sorted({line.split()[1] for line in own["hosts.map"].splitlines()}) == [
        "svc003",
        "svc007",
    ]
    assert "svc003__testers__v2" in own["20-outbound.cfg"]
    assert "svc005" not in own["20-outbound.cfg"]
    pod = _find(objects, "Deployment", "svc000-v1")["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["sailplan-config"]
    assert volume["projected"]["sources"] == [{"configMap": {"name": "svc000-v1-proxy"}}]
    # The others still share the mesh's outbound config, every service in it.
    other = _find(objects, "Deployment", "svc001-v1")["spec"]["template"]["spec"]
    other_volume = {v["name"]: v for v in other["volumes"]}["sailplan-config"]
    assert {"configMap": {"name": "calls-outbound"}} in other_volume["projected"]["sources"]
    check_config(own, "svc000-v1")


def test_no_shared_outbound_when_every_service_lists_its_calls() -> None:
    spec = _spec(3, {"svc000": ["svc001"], "svc001": [], "svc002": ["svc000"]})
    objects = render_manifests(_mesh(spec))
    assert not [o for o in objects if o["metadata"]["name"].startswith("calls-outbound")]


def test_istio_renders_a_schema_valid_sidecar_per_service_with_calls() -> None:
    objects = render_manifests(_mesh(_spec(3, {"svc000": ["svc002", "svc001"]}), "istio"))
    sidecars = [o for o in objects if o["kind"] == "Sidecar"]
    assert sidecars == [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {
                "name": "svc000",
                "namespace": "calls",
                "labels": {
                    "app.kubernetes.io/managed-by": "sailplan",
                    "app.kubernetes.io/name": "svc000",
                    "app.kubernetes.io/part-of": "calls",
                },
            },
            "spec": {
                "workloadSelector": {"labels": {"app": "svc000"}},
                "egress": [
                    {
                        "hosts": [
                            "./svc001.calls.svc.cluster.local",
                            "./svc002.calls.svc.cluster.local",
                            "istio-system/*",
                        ]
                    }
                ],
            },
        }
    ]
    validate_manifest(sidecars[0])


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_a_scoped_sidecar_routes_what_it_calls_and_passes_the_rest_through(
    tmp_path: Path,
) -> None:
    """svc000 calls svc001 only: svc001's rules apply; svc002, known to the mesh but not
    listed, is an unknown host to this sidecar, so its rules and backends are not used: the
    request passes through (here, an explicit proxy's with static addresses, as in the sandbox:
    to any pod of svc002, as its ClusterIP would send it), and a name the mesh does not know
    that is not an address gets the proxy's own 503."""
    # Plaintext: this is about routing, and the test's backends hold no mesh certificates.
    mesh = _mesh({**_spec(20, {"svc000": ["svc001"]}), "mtls": "disable"})
    with backends("svc001-v1", "svc001-v2", "svc002-v1", "svc002-v2") as started:
        endpoints = StaticEndpoints(
            {
                s: {v: [("127.0.0.1", started[f"{s}-{v}"].port)] for v in ("v1", "v2")}
                for s in ("svc001", "svc002")
            }
        )
        ports = loopback_ports()
        config = SidecarCompiler(
            mesh,
            endpoints=endpoints,
            ports=ports,
            config_dir=str(tmp_path),
            runtime_dir=str(tmp_path),
            passthrough="host-header",
        ).files("svc000", "v1")
        assert not [name for name in config.files if name.startswith("20-outbound-")]
        with running_haproxy(config.files, tmp_path, [ports.outbound]):
            listed = request(ports.outbound, host="svc001", headers={"x-v": "two"})
            unlisted = [
                request(ports.outbound, host="svc002:8002", headers={"x-v": "two"})
                for _ in range(20)
            ]
            unknown = request(ports.outbound, host="svc999", headers={"x-v": "two"})
            direct = request(
                ports.outbound,
                host=f"127.0.0.1:{started['svc002-v1'].port}",
                headers={"x-v": "two"},
            )
            stats = request(ports.admin, "/stats;csv", host="localhost")
    # What the running proxy loaded: the backends of svc001's routes, none of the 19 others'.
    assert stats.status == 200
    loaded = {line.split(",")[0] for line in stats.body.splitlines() if ",BACKEND," in line}
    assert {name.split("__")[0] for name in loaded if "__" in name} == {"svc001"}
    assert {"svc001__testers__v2", "passthrough"} <= loaded
    assert (listed.status, listed.body) == (200, "svc001-v2")
    # svc002's `testers` rule would send all of them to v2: no rule of svc002's applies.
    assert {(reply.status, reply.body) for reply in unlisted} == {
        (200, "svc002-v1"),
        (200, "svc002-v2"),
    }
    assert (unknown.status, unknown.body) == (503, "DNS resolution failure: svc999")
    # Dialled directly, svc002 answers from where it was sent: v1, its `testers` rule unused.
    assert (direct.status, direct.body) == (200, "svc002-v1")


def _passthrough_queries(dns: Dns) -> list[str]:
    """The names asked for, but the versions' headless Services (the sidecar's own servers)."""
    return [name for name in dns.queries if not name.startswith("svc001-")]


@pytest.mark.haproxy
@pytest.mark.timeout(60)
def test_explicit_proxy_in_a_cluster_resolves_an_unlisted_service_by_name(
    tmp_path: Path,
) -> None:
    """interception: explicit-proxy: the app asks its sidecar for `http://svc002:8002/`, and
    svc002 is not in `calls`. The pod's resolver would complete the short name with its
    namespace's search domain; the passthrough does the same through the cluster's DNS and
    dials the address it gets (the Service's ClusterIP), with no mesh policy. A name with dots
    is asked as written, a literal IP is dialled without a query, and a name DNS does not know
    gets a 503 that says so."""
    mesh = _mesh({**_spec(3, {"svc000": ["svc001"]}), "mtls": "disable", "accessLog": True})
    # Not on 127.0.0.1: the explicit proxy's own address, which a Host that set no destination
    # would leave in place and so reach by accident.
    service_ip = Backend("svc002-v1", address="127.0.0.2").start()
    outside_ip = Backend("outside", address="127.0.0.3").start()
    started = {"svc002-v1": service_ip, "outside": outside_ip}
    svc002, outside = service_ip.port, outside_ip.port
    dns = Dns({"svc002.calls.svc.cluster.local": ["127.0.0.2"], "api.example.com": ["127.0.0.3"]})
    ports = loopback_ports()
    config = SidecarCompiler(
        mesh,
        endpoints=DnsEndpoints("calls", port=15006),
        ports=ports,
        config_dir=str(tmp_path),
        runtime_dir=str(tmp_path),
        passthrough="host-header",
    ).files("svc000", "v1")
    try:
        with running_haproxy(use_dns(dict(config.files), dns), tmp_path, [ports.outbound]):
            short = request(ports.outbound, host=f"svc002:{svc002}", headers={"x-v": "two"})
            dotted = request(ports.outbound, host=f"API.example.com:{outside}")
            asked = _passthrough_queries(dns)
            literal = request(ports.outbound, host=f"127.0.0.3:{outside}")
            after_literal = _passthrough_queries(dns)
            unknown = request(ports.outbound, host=f"svc009:{svc002}")
            unqualified = request(ports.outbound, host=f"svc002.calls:{svc002}")
    finally:
        dns.stop()
        service_ip.stop()
        outside_ip.stop()
    assert (short.status, short.body) == (200, "svc002-v1")
    assert (dotted.status, dotted.body) == (200, "outside")
    assert set(asked) == {"svc002.calls.svc.cluster.local", "api.example.com"}
    assert (literal.status, literal.body) == (200, "outside")
    assert after_literal == asked
    assert (unknown.status, unknown.body) == (
        503,
        "DNS resolution failure: svc009.calls.svc.cluster.local",
    )
    assert (unqualified.status, unqualified.body) == (
        503,
        "DNS resolution failure: svc002.calls",
    )
    assert len(started["svc002-v1"].requests) == 1
    # One line for each of the five requests.
    flags = {entry["authority"]: entry["response_flags"] for entry in access_lines(tmp_path, 5)}
    assert flags[f"svc009:{svc002}"] == "DF"
    assert flags[f"svc002:{svc002}"] == "-"


def _sandbox_outbound(sandbox: SandboxProcess, proxy: str) -> int:
    line = next(line for line in sandbox.lines if line.startswith(f"{proxy} "))
    match = re.search(r"outbound :(\d+)", line)
    assert match, line
    return int(match.group(1))


def _uncalled_sandbox(tmp_path: Path, mtls: str) -> SandboxProcess:
    """The walkthrough's mesh, service2 with `calls: []` and service1 routed to v2 only."""
    data = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    data["mtls"] = mtls
    data["services"]["service1"]["routes"] = [{"to": "v2"}]
    data["services"]["service2"]["calls"] = []
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(data))
    return SandboxProcess(path, "--isolation", "explicit-proxy")


@pytest.mark.haproxy
@pytest.mark.timeout(120)
def test_the_sandbox_passes_a_call_outside_calls_to_a_pod_of_that_service(tmp_path: Path) -> None:
    """Loopback sandbox (explicit proxy, every pod on 127.0.0.1): service2 lists no callee, so
    its sidecar has no route of service1's. A call to service1 still reaches service1's pods, as
    a call to its ClusterIP would in the cluster: any of them, both versions, with none of the
    mesh's policy (service1's only route sends everything to v2)."""
    sandbox = _uncalled_sandbox(tmp_path, "permissive")
    try:
        sandbox.wait_for("ready: ")
        outbound = _sandbox_outbound(sandbox, "service2-v1-0-proxy")
        versions = Counter(
            json.loads(request(outbound, "/healthz", host=host).body)["version"]
            for host in ("service1:8088", "service1.even-split.svc.cluster.local:8088") * 20
        )
        unknown = request(outbound, "/healthz", host="nosuch:8088")
    finally:
        assert sandbox.stop() == 0
    assert set(versions) == {"v1", "v2"}, versions
    assert (unknown.status, unknown.body) == (503, "DNS resolution failure: nosuch")


@pytest.mark.haproxy
@pytest.mark.timeout(120)
def test_under_strict_mtls_the_callee_refuses_a_call_outside_calls(tmp_path: Path) -> None:
    """The passthrough carries no mesh certificate (it dials as a destination outside the mesh
    is dialled), so with `mtls: strict` the callee's sidecar refuses it, as in a cluster."""
    sandbox = _uncalled_sandbox(tmp_path, "strict")
    try:
        sandbox.wait_for("ready: ")
        refused = request(_sandbox_outbound(sandbox, "service2-v1-0-proxy"), host="service1:8088")
    finally:
        assert sandbox.stop() == 0
    assert refused.status == 502


@pytest.mark.haproxy
@pytest.mark.timeout(180)
def test_the_netns_sandbox_passes_a_call_outside_calls_to_a_pod_of_that_service(
    tmp_path: Path,
) -> None:
    """Transparent sandbox (a namespace per pod): the greeter (service2, no callee listed)
    dials service1's virtual address, which no kube-proxy turns into a pod there. Its sidecar
    does, for a Host naming a mesh service it does not route: any pod, no policy (both
    versions answer though service1's only route says v2)."""
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces cannot be created here: {reason}")
    data = yaml.safe_load(runnable_copy(MESHES / "even-split.yaml"))
    data["services"]["service1"]["routes"] = [{"to": "v2"}]
    data["services"]["service2"]["calls"] = []
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(data))
    sandbox = SandboxProcess(path, "--isolation", "netns")
    try:
        sandbox.wait_for("ready: ", timeout=90)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        versions: Counter[str] = Counter()
        for index in range(20):
            created = urllib.request.Request(
                f"{sandbox.url()}/api/users",
                data=json.dumps({"username": f"u{index}"}).encode(),
                method="POST",
            )
            with opener.open(created, timeout=20) as answer:
                versions[json.loads(answer.read())["version"]] += 1
    finally:
        assert sandbox.stop() == 0
    assert set(versions) == {"v1", "v2"}, versions
