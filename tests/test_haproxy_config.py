"""The compiled HAProxy config's shape, for both endpoint kinds, and `haproxy -c` on all of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import DEMO_MESH, EXAMPLE_MESHES
from proxy_support import check_config

import sailplan
from sailplan.model.ingress import IngressTls
from sailplan.render.haproxy import (
    FLAT_SERVICE_LIMIT,
    DnsEndpoints,
    ProxyPorts,
    StaticEndpoints,
    compile_gateway,
    compile_sidecar,
)
from sailplan.render.haproxy.context import service_keys

STATIC = StaticEndpoints(
    {
        "service1": {"v1": [("127.0.0.1", 9001)], "v2": [("127.0.0.1", 9002), ("127.0.0.1", 9003)]},
        "service2": {"v1": [("127.0.0.1", 9004)]},
    }
)


@pytest.mark.haproxy
def test_a_port_given_to_two_listeners_is_refused() -> None:
    # HAProxy would start both frontends on it (SO_REUSEPORT) and split connections between them.
    with pytest.raises(ValueError) as raised:
        ProxyPorts(20001, 20002, 20003, 20001, "127.0.0.1", mtls=20005)
    assert str(raised.value) == (
        "the proxy's outbound and health ports are both 20001: each listener needs its own port"
    )
    with pytest.raises(ValueError) as raised:
        ProxyPorts(0, 0, 20003, 0, "127.0.0.1", mtls=20005)
    assert str(raised.value) == (
        "the proxy's outbound, inbound and health ports are all 0: each listener needs its own port"
    )
    mesh = sailplan.load_mesh(DEMO_MESH)
    with pytest.raises(ValueError) as raised:
        compile_gateway(mesh, endpoints=STATIC, listen_port=15021)
    assert str(raised.value) == (
        "the gateway's listen and health ports are both 15021: each listener needs its own port"
    )
    # HTTPS without `tls.httpsRedirect` binds no redirect port: nothing to refuse.
    assert mesh.ingress is not None
    https = mesh.ingress.model_copy(update={"tls": IngressTls(secretName="shop-tls")})
    compile_gateway(
        mesh.model_copy(update={"ingress": https}), endpoints=STATIC, redirect_port=15021
    )


@pytest.mark.parametrize("scenario", [DEMO_MESH, *EXAMPLE_MESHES], ids=lambda p: p.stem)
def test_sandbox_mode_configs_pass_haproxycheck_config(scenario: Path) -> None:
    mesh = sailplan.load_mesh(scenario)
    ports = ProxyPorts(20001, 20002, 20003, 20004, "127.0.0.1")
    check_config(
        dict(
            compile_sidecar(
                mesh,
                "service2",
                "v1",
                endpoints=STATIC,
                ports=ports,
                app_port=20005,
                passthrough="host-header",
            ).files
        )
    )
    check_config(
        dict(compile_gateway(mesh, endpoints=STATIC, listen_port=20006, ports=ports).files)
    )


def test_static_endpoints_become_servers_per_version() -> None:
    cfg = compile_sidecar(
        sailplan.load_mesh(DEMO_MESH), "service2", "v1", endpoints=STATIC
    ).haproxy_cfg
    # mtls permissive (the default): callers' sidecars originate mTLS.
    tls = (
        " ssl crt /etc/sailplan-certs/tls.crt ca-file /etc/sailplan-certs/ca.crt verify required "
        "ssl-min-ver TLSv1.3 verifyhost service1.demo.sa.cluster.local"
    )
    assert (
        "backend service1__canary__v2\n"
        f"    retries 2\n    retry-on conn-failure\n    server v2-0 127.0.0.1:9002{tls}\n"
        f"    server v2-1 127.0.0.1:9003{tls}\n" in cfg
    )
    assert (
        "use_backend service1__canary__v1 if { var(txn.route) -m str service1.0 } { var(txn.draw) -m int lt 80 }"
        in cfg
    )
    assert "use_backend service1__canary__v2 if { var(txn.route) -m str service1.0 }" in cfg


def test_dns_endpoints_use_full_names_and_the_cluster_resolver() -> None:
    config = compile_sidecar(
        sailplan.load_mesh(DEMO_MESH).model_copy(update={"mtls": "disable"}),
        "service2",
        "v1",
        endpoints=DnsEndpoints("demo", "corp.local", 4),
    )
    cfg = config.haproxy_cfg
    assert "resolvers kubedns\n    parse-resolv-conf" in cfg
    assert (
        "server-template v1- 4 service1-v1.demo.svc.corp.local:8088 resolvers kubedns init-addr none resolve-prefer ipv4"
        in cfg
    )
    assert "server original-destination 0.0.0.0:0" in cfg
    assert config.files["hosts.map"].splitlines()[:4] == [
        "service1 service1",
        "service1.demo service1",
        "service1.demo.svc service1",
        "service1.demo.svc.corp.local service1",
    ]


def test_small_meshes_route_in_one_flat_frontend() -> None:
    cfg = compile_sidecar(
        sailplan.load_mesh(DEMO_MESH), "service2", "v1", endpoints=STATIC
    ).haproxy_cfg
    assert "http-request set-var(txn.svc) var(txn.host),map_str(/etc/sailplan/hosts.map)" in cfg
    assert (
        "http-request set-var(txn.route) str(service1.0) if { var(txn.svc) -m str service1 } !{ var(txn.route) -m found }"
        in cfg
    )
    assert "use_backend service1__all if { var(txn.svc) -m str service1 }" in cfg
    assert "__hop" not in cfg and "unix@" not in cfg


def test_large_meshes_hop_to_a_routing_frontend_per_service() -> None:
    data = yaml.safe_load(DEMO_MESH.read_text())
    for index in range(FLAT_SERVICE_LIMIT):
        data["services"][f"extra{index}"] = {
            "port": 9000 + index,
            "versions": {"v1": {"image": "x"}},
        }
    cfg = compile_sidecar(
        sailplan.load_mesh_text(yaml.safe_dump(data)), "service2", "v1", endpoints=STATIC
    ).haproxy_cfg
    assert "use_backend %[var(txn.svc),concat(,,__hop)] if { var(txn.svc) -m found }" in cfg
    # Named by the service's name alone: another service added changes nothing here.
    key = service_keys(sorted(data["services"]))["service1"]
    assert key == service_keys(["service1"])["service1"]
    assert f"backend service1__hop\n    server routes unix@/var/run/sailplan/o{key}.sock\n" in cfg
    assert (
        f"frontend service1__routes\n    bind unix@/var/run/sailplan/o{key}.sock mode 600\n" in cfg
    )
    assert "http-request set-var(txn.route) str(service1.0) if !{ var(txn.route) -m found }" in cfg


def test_comments_name_the_spec_path_each_block_comes_from() -> None:
    cfg = compile_sidecar(
        sailplan.load_mesh(DEMO_MESH), "service2", "v1", endpoints=STATIC
    ).haproxy_cfg
    assert "# services.service1.routes[0] canary" in cfg
    assert "# services.service1.routes[0] -> v2" in cfg


def test_lua_is_loaded_only_when_a_route_needs_it() -> None:
    # Without mTLS (whose inbound reads the caller's SPIFFE ID in Lua) and without delays,
    # mirrors or outlier detection, no Lua runs.
    text = DEMO_MESH.read_text().replace("name: demo\n", "name: demo\nmtls: disable\n", 1)
    plain = compile_sidecar(sailplan.load_mesh_text(text), "service2", "v1", endpoints=STATIC)
    assert "mesh.lua" not in plain.files and "lua-load" not in plain.haproxy_cfg
    meshed = compile_sidecar(sailplan.load_mesh(DEMO_MESH), "service2", "v1", endpoints=STATIC)
    assert "sailplan_peer" in meshed.files["mesh.lua"]
    faulty = compile_sidecar(
        sailplan.load_mesh(EXAMPLE_MESHES[1]), "service2", "v1", endpoints=STATIC
    )
    assert "sailplan_delay" in faulty.files["mesh.lua"]
    assert "lua-load /etc/sailplan/mesh.lua" in faulty.haproxy_cfg


def test_percentages_with_decimals_draw_from_a_million() -> None:
    text = DEMO_MESH.read_text().replace(
        "split: {v1: 80, v2: 20}",
        "split: {v1: 80, v2: 20}\n        fault: {abort: {status: 503, percent: 0.5}}",
    )
    cfg = compile_sidecar(
        sailplan.load_mesh_text(text), "service2", "v1", endpoints=STATIC
    ).haproxy_cfg
    assert "{ rand(1000000) -m int lt 5000 }" in cfg


def test_values_are_quoted_literally() -> None:
    text = DEMO_MESH.read_text().replace(
        "      - name: canary\n",
        '      - name: canary\n        match: [{headers: {x-env: "it\'s $HOME"}}]\n',
    )
    text += ""
    cfg = compile_sidecar(
        sailplan.load_mesh_text(text.replace("split: {v1: 80, v2: 20}", "to: v2")),
        "service2",
        "v1",
        endpoints=STATIC,
    ).haproxy_cfg
    assert "req.fhdr(x-env) -m str -- 'it'\\''s $HOME'" in cfg


def test_compilation_is_deterministic() -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    assert compile_sidecar(mesh, "service1", "v2", endpoints=STATIC) == compile_sidecar(
        sailplan.load_mesh(DEMO_MESH), "service1", "v2", endpoints=STATIC
    )


def test_unknown_workload_is_an_error() -> None:
    with pytest.raises(KeyError, match="the mesh has no workload service1-v9"):
        compile_sidecar(sailplan.load_mesh(DEMO_MESH), "service1", "v9", endpoints=STATIC)
