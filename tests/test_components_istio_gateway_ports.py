"""The Service of the Istio ingress gateway that `IstioControlPlane` installs exposes what the
meshes' Gateway servers listen on (Istio binds a server only to a port of that Service, IST0162),
including port 80 for `tls.httpsRedirect`; under Pulumi's mock engine."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi_support import register

import sailplan
from sailplan.components import IstioControlPlane, IstioControlPlaneArgs, Mesh, MeshArgs
from sailplan.render.manifests import render_manifests

CHART = "kubernetes:helm.sh/v4:Chart"
REDIRECT = {"name": "http-redirect", "port": 80, "protocol": "TCP", "targetPort": 8080}

HTTPS_MESH = """
apiVersion: sailplan/v1
kind: Mesh
name: shop
services:
  web:
    port: 8080
    versions:
      v1: {image: web:1}
ingress:
  port: 443
  hosts: [shop.example.com]
  tls: {secretName: shop-tls, httpsRedirect: true}
  routes:
    - service: web
"""


def _gateway_ports(engine: Any) -> list[dict[str, Any]]:
    (gateway,) = [r for r in engine.of_type(CHART) if r.name.endswith("-gateway")]
    ports: list[dict[str, Any]] = gateway.inputs["values"]["service"]["ports"]
    return ports


@pytest.mark.parametrize("port", [443, 8080])
def test_port_80_reaches_a_pod_port_of_its_own_beside_the_ingress_port(port: int) -> None:
    engine, _ = register(
        lambda: IstioControlPlane("istio", IstioControlPlaneArgs(gateway_port=port)).revision
    )
    assert _gateway_ports(engine) == [
        {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
        {"name": "http2", "port": port, "protocol": "TCP", "targetPort": 80},
        REDIRECT,
    ]


def test_an_ingress_on_port_80_is_the_only_port_80() -> None:
    engine, _ = register(lambda: IstioControlPlane("istio", IstioControlPlaneArgs()).revision)
    assert [p["port"] for p in _gateway_ports(engine)] == [15021, 80]


def test_a_mesh_redirecting_to_https_gets_its_plain_server_s_port_on_the_gateway() -> None:
    spec = sailplan.load_mesh_text(HTTPS_MESH)

    def build() -> pulumi.Output[Any]:
        return Mesh("shop", MeshArgs(spec=spec, data_plane="istio")).ingress_address

    engine, _ = register(build)
    ports = {p["port"]: p for p in _gateway_ports(engine)}
    # The Gateway's two servers, HTTPS on 443 and the redirect on 80, each on a Service port.
    (gateway,) = [m for m in render_manifests(spec, "istio") if m["kind"] == "Gateway"]
    servers = sorted(server["port"]["number"] for server in gateway["spec"]["servers"])
    assert servers == [80, 443]
    assert all(number in ports for number in servers)
    assert ports[80] == REDIRECT
    assert ports[443]["targetPort"] == 80
