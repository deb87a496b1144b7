"""NetworkPolicies on both planes, and the builtin plane's explicit-proxy interception."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from model_support import DELETE, edited
from proxy_support import check_config
from schema_support import validate_manifest

import sailplan
from sailplan.render.manifests import render_manifests


def _render(edits: dict[str, Any], plane: str = "builtin") -> list[dict[str, Any]]:
    mesh = sailplan.load_mesh_text(yaml.safe_dump(edited({"dataPlane": plane, **edits})))
    objects = render_manifests(mesh)
    for manifest in objects:
        validate_manifest(manifest)
    return objects


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


MESH_PEERS = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "demo"}}}


def test_builtin_iptables_admits_the_service_port_from_the_meshs_pods_only() -> None:
    objects = _render({})
    policies = _of_kind(objects, "NetworkPolicy")
    assert [p["metadata"]["name"] for p in policies] == ["service1", "service2"]
    policy = policies[0]
    assert policy["metadata"]["namespace"] == "demo"
    assert policy["metadata"]["labels"]["app.kubernetes.io/name"] == "service1"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app": "service1"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            # iptables in the pod redirect the service port to the sidecar after the policy; the
            # other sidecars and the gateway dial the sidecar's mTLS port (mtls: permissive).
            {
                "from": [MESH_PEERS],
                "ports": [{"protocol": "TCP", "port": 8088}, {"protocol": "TCP", "port": 15007}],
            },
            {"ports": [{"protocol": "TCP", "port": 15020}]},
        ],
    }
    # The builtin gateway's pods carry the mesh label, so the peers above include them...
    gateway = _find(objects, "Deployment", "demo-gateway")
    assert gateway["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "demo"
    # ...and no policy selects the gateway: it is the way in.
    assert all(p["spec"]["podSelector"]["matchLabels"]["app"] != "demo-gateway" for p in policies)


def test_istio_admits_its_gateway_from_the_gateway_namespace() -> None:
    policy = _find(_render({}, "istio"), "NetworkPolicy", "service2")
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                MESH_PEERS,
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "istio-ingress"}
                    },
                    "podSelector": {"matchLabels": {"istio": "ingressgateway"}},
                },
            ],
            "ports": [{"protocol": "TCP", "port": 8880}],
        },
        {"ports": [{"protocol": "TCP", "port": 15020}, {"protocol": "TCP", "port": 15090}]},
    ]


@pytest.mark.parametrize("plane", ["builtin", "istio"])
def test_network_policies_false_renders_none(plane: str) -> None:
    assert _of_kind(_render({"networkPolicies": False}, plane), "NetworkPolicy") == []


def test_explicit_proxy_pods_have_no_init_container_and_use_the_sidecar_as_proxy() -> None:
    objects = _render({"interception": "explicit-proxy"})
    pod = _find(objects, "Deployment", "service2-v1")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["sailplan-proxy"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://127.0.0.1:15001"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1"
    assert env["SERVICE1_URL"] == "http://service1:8088"
    assert [e["name"] for e in pod["containers"][0]["env"]] == sorted(env)


def test_explicit_proxy_services_and_callers_target_the_sidecar_inbound_port() -> None:
    objects = _render({"interception": "explicit-proxy", "mtls": "disable"})
    for name in ("service1", "service1-v1", "service1-v2"):
        [port] = _find(objects, "Service", name)["spec"]["ports"]
        assert port["port"] == 8088
        assert port["targetPort"] == 15006
    # The outbound rules every sidecar shares live in the mesh's outbound ConfigMap.
    config = _find(objects, "ConfigMap", "demo-outbound")["data"]["20-outbound.cfg"]
    assert "server-template v1- 10 service1-v1.demo.svc.cluster.local:15006 " in config
    assert ":8088 resolvers" not in config
    # A proxied request names its destination in the request line: no original destination.
    assert "server host-header 0.0.0.0:0" in config
    gateway = _find(objects, "ConfigMap", "demo-gateway-proxy")["data"]["haproxy.cfg"]
    assert "service2-v1.demo.svc.cluster.local:15006 " in gateway
    policy = _find(objects, "NetworkPolicy", "service1")
    # The app's own port is not admitted: only the sidecar's inbound port and its metrics.
    assert policy["spec"]["ingress"] == [
        {"from": [MESH_PEERS], "ports": [{"protocol": "TCP", "port": 15006}]},
        {"ports": [{"protocol": "TCP", "port": 15020}]},
    ]


@pytest.mark.parametrize("interception", ["iptables", "explicit-proxy"])
def test_with_mtls_sidecars_and_the_gateway_dial_the_mtls_port(interception: str) -> None:
    objects = _render({"interception": interception, "mtls": "strict"})
    config = _find(objects, "ConfigMap", "demo-outbound")["data"]["20-outbound.cfg"]
    assert "server-template v1- 10 service1-v1.demo.svc.cluster.local:15007 " in config
    gateway = _find(objects, "ConfigMap", "demo-gateway-proxy")["data"]["haproxy.cfg"]
    assert "service2-v1.demo.svc.cluster.local:15007 " in gateway
    ports = _find(objects, "NetworkPolicy", "service1")["spec"]["ingress"][0]["ports"]
    assert ports[1] == {"protocol": "TCP", "port": 15007}
    sidecar = _find(objects, "Deployment", "service1-v1")["spec"]["template"]["spec"]
    proxy = next(c for c in sidecar["initContainers"] if c["name"] == "sailplan-proxy")
    assert {"name": "proxy-mtls", "containerPort": 15007, "protocol": "TCP"} in proxy["ports"]


def test_iptables_mode_is_unchanged_by_the_explicit_proxy_code() -> None:
    objects = _render({})
    pod = _find(objects, "Deployment", "service2-v1")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["sailplan-init", "sailplan-proxy"]
    assert "HTTP_PROXY" not in {e["name"] for e in pod["containers"][0]["env"]}
    [port] = _find(objects, "Service", "service1")["spec"]["ports"]
    assert port["targetPort"] == "http-8088"


def test_a_no_proxy_from_the_spec_is_kept() -> None:
    objects = _render(
        {
            "interception": "explicit-proxy",
            "services.service2.versions.v1.env.NO_PROXY": "localhost,api.example.com",
        }
    )
    env = _find(objects, "Deployment", "service2-v1")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    no_proxy = [e for e in env if e["name"].upper() == "NO_PROXY"]
    assert no_proxy == [{"name": "NO_PROXY", "value": "localhost,api.example.com"}]


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (
            {"interception": "explicit-proxy", "dataPlane": "istio"},
            "interception: explicit-proxy needs the builtin data plane: on the istio data plane "
            "istiod injects Istio's sidecar and decides how traffic reaches it (install "
            "istio-cni to run without its privileged init container)",
        ),
        (
            {
                "interception": "explicit-proxy",
                "services.service2.versions.v1.env.http_proxy": "http://elsewhere:3128",
            },
            "services.service2.versions.v1.env.http_proxy: http_proxy is set by sailplan with "
            "interception: explicit-proxy (the app reaches the mesh through its sidecar); "
            "remove it from env",
        ),
        (
            {
                "interception": "explicit-proxy",
                "dataPlane": "gateway-api",
                "mtls": "permissive",
                "ingress.nodePort": DELETE,
            },
            "interception: explicit-proxy: on the gateway-api data plane the mesh implementation "
            "injects its own proxy and decides how traffic reaches it (Linkerd: its init "
            "container or CNI plugin); use iptables, or the builtin data plane",
        ),
    ],
    ids=["istio", "own-http-proxy", "gateway-api"],
)
def test_explicit_proxy_refusals(edits: dict[str, Any], message: str) -> None:
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(yaml.safe_dump(edited(edits)))
    assert str(error.value).splitlines() == [message]


def test_an_http_proxy_in_env_is_fine_with_iptables() -> None:
    text = yaml.safe_dump(edited({"services.service2.versions.v1.env.HTTP_PROXY": "http://p:1"}))
    assert sailplan.load_mesh_text(text).interception == "iptables"


def test_explicit_proxy_configs_pass_haproxy_check() -> None:
    # The real haproxy reads every compiled config of the mode: sidecars and the gateway.
    objects = _render({"interception": "explicit-proxy"})
    for workload in ("service1-v1", "service1-v2", "service2-v1"):
        pod = _find(objects, "Deployment", workload)["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["sailplan-config"]
        files: dict[str, str] = {}
        for source in volume["projected"]["sources"]:
            files.update(_find(objects, "ConfigMap", source["configMap"]["name"])["data"])
        check_config(files, workload)
    check_config(_find(objects, "ConfigMap", "demo-gateway-proxy")["data"], "demo-gateway")
