"""Istio v1 resources: the walkthrough's policies as an Istio expert would write them today."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_MESH, EXAMPLE_MESHES, GOLDEN
from golden_support import check_golden
from schema_support import validate_manifest

import sailplan
from sailplan.model import Duration
from sailplan.render.istio import istio_duration, render_istio
from sailplan.render.manifests import render_manifests
from sailplan.render.yaml_output import dump_all

SCENARIOS = [DEMO_MESH, *EXAMPLE_MESHES]

POLICIES = """
apiVersion: sailplan/v1
kind: Mesh
name: policies
dataPlane: istio
mtls: strict
services:
  reviews:
    port: 9080
    versions:
      v1: {image: reviews:1}
      v2: {image: reviews:2}
      v3: {image: reviews:3}
    routes:
      - name: jason
        match:
          - headers: {end-user: {exact: jason}}
            path: {prefix: /reviews}
          - method: POST
            query: {debug: {regex: "^(1|true)$"}}
        to: v2
        retries: {attempts: 3, perTryTimeout: 250ms, on: [gateway-error, connect-failure]}
      - split: {v1: 90, v3: 10}
        fault:
          delay: {fixed: 1500ms, percent: 12.5}
          abort: {status: 503, percent: 0.5}
        timeout: 2s
        mirror: {to: v2, percent: 5}
    policy:
      loadBalancer: {hashHeader: x-user}
      connectionPool: {maxConnections: 50, maxPendingRequests: 5}
      outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
ingress:
  hosts: [shop.example.com]
  routes:
    - match: {path: {prefix: /reviews}}
      service: reviews
"""


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def policies() -> list[dict[str, Any]]:
    return render_istio(sailplan.load_mesh_text(POLICIES))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_golden(scenario: Path, update_golden: bool) -> None:
    manifests = render_manifests(sailplan.load_mesh(scenario), "istio")
    check_golden(GOLDEN / "istio" / f"{scenario.stem}.yaml", manifests, update_golden)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_every_object_validates_strictly(scenario: Path) -> None:
    for manifest in render_manifests(sailplan.load_mesh(scenario), "istio"):
        validate_manifest(manifest)


def test_policy_objects_validate_strictly(policies: list[dict[str, Any]]) -> None:
    for manifest in policies:
        validate_manifest(manifest)


def test_rerender_is_byte_identical() -> None:
    mesh = sailplan.load_mesh(DEMO_MESH)
    assert dump_all(render_manifests(mesh, "istio")) == dump_all(
        render_manifests(sailplan.load_mesh(DEMO_MESH), "istio")
    )


def test_80_20_split_targets_subsets_the_destination_rule_defines() -> None:
    objects = render_manifests(sailplan.load_mesh(DEMO_MESH), "istio")
    rule = _find(objects, "VirtualService", "service1")["spec"]["http"][0]
    assert rule["name"] == "canary"
    assert [(r["destination"]["subset"], r["weight"]) for r in rule["route"]] == [
        ("v1", 80),
        ("v2", 20),
    ]
    assert rule["route"][0]["destination"]["host"] == "service1.demo.svc.cluster.local"
    subsets = {
        s["name"]: s["labels"]
        for s in _find(objects, "DestinationRule", "service1")["spec"]["subsets"]
    }
    assert subsets == {"v1": {"version": "v1"}, "v2": {"version": "v2"}}


@pytest.mark.parametrize("scenario", [*SCENARIOS, None], ids=lambda p: p.stem if p else "policies")
def test_every_referenced_subset_exists(scenario: Path | None) -> None:
    mesh = sailplan.load_mesh(scenario) if scenario else sailplan.load_mesh_text(POLICIES)
    objects = render_istio(mesh)
    subsets = {
        (o["spec"]["host"], s["name"])
        for o in objects
        if o["kind"] == "DestinationRule"
        for s in o["spec"]["subsets"]
    }
    for vs in (o for o in objects if o["kind"] == "VirtualService"):
        for rule in vs["spec"]["http"]:
            targets = [r["destination"] for r in rule.get("route", [])] + (
                [rule["mirror"]] if "mirror" in rule else []
            )
            for destination in targets:
                if "subset" in destination:
                    assert (destination["host"], destination["subset"]) in subsets


def test_matches_map_to_uri_headers_method_and_query(policies: list[dict[str, Any]]) -> None:
    rule = _find(policies, "VirtualService", "reviews")["spec"]["http"][0]
    assert rule["match"] == [
        {"uri": {"prefix": "/reviews"}, "headers": {"end-user": {"exact": "jason"}}},
        {"method": {"exact": "POST"}, "queryParams": {"debug": {"regex": "^(1|true)$"}}},
    ]
    assert rule["route"] == [
        {
            "destination": {
                "host": "reviews.policies.svc.cluster.local",
                "port": {"number": 9080},
                "subset": "v2",
            }
        }
    ]


def test_retries_map_to_attempts_per_try_timeout_and_retry_on(
    policies: list[dict[str, Any]],
) -> None:
    rule = _find(policies, "VirtualService", "reviews")["spec"]["http"][0]
    assert rule["retries"] == {
        "attempts": 3,
        "perTryTimeout": "0.25s",
        "retryOn": "gateway-error,connect-failure",
    }


def test_fault_timeout_and_mirror(policies: list[dict[str, Any]]) -> None:
    rule = _find(policies, "VirtualService", "reviews")["spec"]["http"][1]
    assert rule["fault"] == {
        "delay": {"fixedDelay": "1.5s", "percentage": {"value": 12.5}},
        "abort": {"httpStatus": 503, "percentage": {"value": 0.5}},
    }
    assert rule["timeout"] == "2s"
    assert rule["mirror"]["subset"] == "v2"
    assert rule["mirrorPercentage"] == {"value": 5.0}
    assert "match" not in rule


def test_circuit_breaker_and_load_balancer(policies: list[dict[str, Any]]) -> None:
    policy = _find(policies, "DestinationRule", "reviews")["spec"]["trafficPolicy"]
    assert policy == {
        "loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}},
        "connectionPool": {"tcp": {"maxConnections": 50}, "http": {"http1MaxPendingRequests": 5}},
        "outlierDetection": {
            "consecutive5xxErrors": 3,
            "interval": "5s",
            "baseEjectionTime": "60s",
            "maxEjectionPercent": 50,
        },
    }


def test_ingress_virtual_service_carries_the_service_rules(policies: list[dict[str, Any]]) -> None:
    vs = _find(policies, "VirtualService", "policies-ingress")["spec"]
    assert vs["gateways"] == ["policies/policies-gateway"]
    assert vs["hosts"] == ["shop.example.com"]
    names = [rule["name"] for rule in vs["http"]]
    assert names == ["ingress-0-jason", "ingress-0-route-1"]
    # The service's first alternative narrows to /reviews; the second gains the ingress prefix.
    assert vs["http"][0]["match"] == [
        {"uri": {"prefix": "/reviews"}, "headers": {"end-user": {"exact": "jason"}}},
        {
            "uri": {"prefix": "/reviews"},
            "method": {"exact": "POST"},
            "queryParams": {"debug": {"regex": "^(1|true)$"}},
        },
    ]
    assert vs["http"][1]["fault"]["abort"]["httpStatus"] == 503
    assert vs["http"][1]["match"] == [{"uri": {"prefix": "/reviews"}}]


def test_gateway_selects_the_gateway_chart_pods(policies: list[dict[str, Any]]) -> None:
    gateway = _find(policies, "Gateway", "policies-gateway")["spec"]
    assert gateway["selector"] == {"istio": "ingressgateway"}
    assert gateway["servers"] == [
        {
            "port": {"number": 80, "name": "http-80", "protocol": "HTTP"},
            "hosts": ["shop.example.com"],
        }
    ]


def test_peer_authentication_follows_the_mesh_mtls(policies: list[dict[str, Any]]) -> None:
    assert _find(policies, "PeerAuthentication", "default")["spec"] == {"mtls": {"mode": "STRICT"}}


def test_unmatched_requests_fall_through_to_every_version() -> None:
    objects = render_istio(sailplan.load_mesh(DEMO_MESH))
    service2 = _find(objects, "VirtualService", "service2")["spec"]["http"]
    assert service2 == [
        {
            "name": "all-versions",
            "route": [
                {
                    "destination": {
                        "host": "service2.demo.svc.cluster.local",
                        "port": {"number": 8880},
                    }
                }
            ],
        }
    ]


def test_durations_are_strings_at_millisecond_precision() -> None:
    assert istio_duration(Duration(1)) == "0.001s"
    assert istio_duration(Duration(500)) == "0.5s"
    assert istio_duration(Duration(1234567)) == "1234.567s"
    assert istio_duration(Duration(3_600_000)) == "3600s"


def test_durations_written_as_istio_writes_them_render_and_validate() -> None:
    # Istio's Request Timeouts task writes `timeout: 0.5s`; Go durations such as 1m30s too.
    text = POLICIES.replace("timeout: 2s", "timeout: 0.5s").replace("fixed: 1500ms", "fixed: 1m30s")
    text = text.replace("perTryTimeout: 250ms", "perTryTimeout: 0.25s")
    objects = render_istio(sailplan.load_mesh_text(text))
    http = _find(objects, "VirtualService", "reviews")["spec"]["http"]
    assert http[0]["retries"]["perTryTimeout"] == "0.25s"
    assert http[1]["timeout"] == "0.5s"
    assert http[1]["fault"]["delay"]["fixedDelay"] == "90s"
    for manifest in objects:
        validate_manifest(manifest)


def test_the_circuit_breaking_task_renders_as_istio_writes_it() -> None:
    # istio.io Circuit Breaking task: DestinationRule httpbin's trafficPolicy.
    text = POLICIES.replace(
        "connectionPool: {maxConnections: 50, maxPendingRequests: 5}",
        "connectionPool: {maxConnections: 1, maxPendingRequests: 1, maxRequestsPerConnection: 1}",
    ).replace(
        "outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m, "
        "maxEjectionPercent: 50}",
        "outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, "
        "maxEjectionPercent: 100}",
    )
    objects = render_istio(sailplan.load_mesh_text(text))
    policy = _find(objects, "DestinationRule", "reviews")["spec"]["trafficPolicy"]
    assert policy["connectionPool"] == {
        "tcp": {"maxConnections": 1},
        "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1},
    }
    assert policy["outlierDetection"] == {
        "consecutive5xxErrors": 1,
        "interval": "1s",
        "baseEjectionTime": "180s",
        "maxEjectionPercent": 100,
    }
    for manifest in objects:
        validate_manifest(manifest)


def test_consecutive_gateway_errors_render_when_given() -> None:
    text = POLICIES.replace(
        "outlierDetection: {consecutive5xxErrors: 3,",
        "outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2,",
    )
    objects = render_istio(sailplan.load_mesh_text(text))
    policy = _find(objects, "DestinationRule", "reviews")["spec"]["trafficPolicy"]
    assert policy["outlierDetection"]["consecutiveGatewayErrors"] == 2
    for manifest in objects:
        validate_manifest(manifest)


def test_every_connection_pool_field_renders_to_its_istio_field() -> None:
    pool = (
        "connectionPool: {http2MaxRequests: 1000, maxRequestsPerConnection: 0, maxRetries: 3, "
        "connectTimeout: 0.25s, idleTimeout: 1m30s}"
    )
    text = POLICIES.replace("connectionPool: {maxConnections: 50, maxPendingRequests: 5}", pool)
    objects = render_istio(sailplan.load_mesh_text(text))
    policy = _find(objects, "DestinationRule", "reviews")["spec"]["trafficPolicy"]
    # No maxConnections and no pending queue given: Envoy's own limits stay.
    assert policy["connectionPool"] == {
        "tcp": {"connectTimeout": "0.25s"},
        "http": {
            "http2MaxRequests": 1000,
            "maxRequestsPerConnection": 0,
            "maxRetries": 3,
            "idleTimeout": "90s",
        },
    }
    for manifest in objects:
        validate_manifest(manifest)


def test_strict_mtls_renders_on_the_builtin_plane_too() -> None:
    # The builtin sidecars enforce it (tests/test_mtls.py): only TLS on their inbound port.
    mesh = sailplan.load_mesh_text(POLICIES)
    maps = [m for m in render_manifests(mesh, "builtin") if m["kind"] == "ConfigMap"]
    assert maps
    inbound = [m["data"]["10-inbound.cfg"] for m in maps if "10-inbound.cfg" in m["data"]]
    assert inbound
    for config in inbound:
        assert "bind 0.0.0.0:15006 ssl crt" in config


TCP = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
dataPlane: istio
services:
  db:
    port: 5432
    protocol: tcp
    versions: {v1: {image: pg:15}, v2: {image: pg:16}}
    routes: [{split: {v1: 90, v2: 10}}]
  cache:
    port: 6379
    protocol: tcp
    versions: {v1: {image: redis:7}}
"""


def test_a_tcp_split_becomes_a_tcp_route() -> None:
    """D5: the split of a tcp service was dropped (only a DestinationRule was rendered)."""
    objects = render_istio(sailplan.load_mesh_text(TCP))
    virtual_services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "VirtualService"}
    assert set(virtual_services) == {"db"}  # cache has no route: the Service spreads connections
    assert virtual_services["db"]["spec"] == {
        "hosts": ["db.shop.svc.cluster.local"],
        "tcp": [
            {
                "route": [
                    {
                        "destination": {
                            "host": "db.shop.svc.cluster.local",
                            "port": {"number": 5432},
                            "subset": "v1",
                        },
                        "weight": 90,
                    },
                    {
                        "destination": {
                            "host": "db.shop.svc.cluster.local",
                            "port": {"number": 5432},
                            "subset": "v2",
                        },
                        "weight": 10,
                    },
                ]
            }
        ],
    }
    for manifest in objects:
        validate_manifest(manifest)


def test_the_ingress_cannot_route_to_a_tcp_service() -> None:
    """D5: an ingress route to a tcp service was rendered as an HTTP route."""
    text = TCP + "ingress: {routes: [{service: db}]}\n"
    with pytest.raises(sailplan.SpecError) as error:
        sailplan.load_mesh_text(text)
    assert [f"{p.path}: {p.message}" for p in error.value.problems] == [
        "ingress.routes[0].service: 'db' speaks tcp, and the ingress routes HTTP requests; "
        "point the ingress at an http or grpc service"
    ]


def test_a_tcp_service_idle_timeout_is_the_tcp_pool_setting() -> None:
    text = TCP.replace(
        "versions: {v1: {image: redis:7}}",
        "versions: {v1: {image: redis:7}}\n"
        "    policy: {connectionPool: {maxConnections: 10, connectTimeout: 2s, idleTimeout: 10m}}",
    )
    objects = render_istio(sailplan.load_mesh_text(text))
    pool = _find(objects, "DestinationRule", "cache")["spec"]["trafficPolicy"]["connectionPool"]
    assert pool["tcp"] == {"maxConnections": 10, "connectTimeout": "2s", "idleTimeout": "600s"}
    for manifest in objects:
        validate_manifest(manifest)
